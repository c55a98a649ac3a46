"""The README's main job, examples/quickstart.py, works offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples import quickstart
from image_tool.testing import FakeRelay


@pytest.fixture(autouse=True)
def _in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the demo saves its images under ./generated-images


def test_quickstart_without_a_relay_uses_fake_relay(capsys: pytest.CaptureFixture[str]) -> None:
    assert quickstart.main(["A paper boat on a pond"]) == 0
    output = capsys.readouterr().out
    assert "No relay configured" in output and "using FakeRelay" in output
    assert "status=success" in output
    assert "Revised prompt: A paper boat on a pond" in output
    assert "/images/1024x1024/" in output
    (saved,) = Path("generated-images").iterdir()
    assert f"saved={saved}" in output


def test_quickstart_with_a_relay_configured_calls_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeRelay(api_key="configured-key") as relay:
        monkeypatch.setenv("IMAGE_TOOL_API_KEY", "configured-key")
        monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
        assert quickstart.main([]) == 0
        assert len(relay.requests) == 1
        base_url = relay.base_url
    output = capsys.readouterr().out
    assert f"Calling the relay at {base_url}" in output
    assert "FakeRelay" not in output
