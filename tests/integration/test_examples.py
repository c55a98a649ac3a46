"""The README's main job, examples/quickstart.py, works offline."""

from __future__ import annotations

import importlib
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


@pytest.mark.parametrize("name", ["agent", "langgraph_agent", "chain"])
def test_every_example_runs_offline(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(f"examples.{name}")
    assert module.main() == 0
    output = capsys.readouterr().out
    assert "using FakeRelay" in output
    assert "/images/" in output
    assert "error" not in output


def test_the_agents_edit_the_image_they_drew(capsys: pytest.CaptureFixture[str]) -> None:
    from examples import agent

    assert agent.main() == 0
    output = capsys.readouterr().out
    assert output.count("[generate_image, success]") == 2
    assert "The same cat, now wearing a red hat" in output
    assert len(list(Path("generated-images").iterdir())) == 2


def test_examples_are_all_covered() -> None:
    examples = {
        path.stem for path in Path(quickstart.__file__).parent.glob("*.py") if not path.stem.startswith("_")
    }
    assert examples == {"quickstart", "agent", "langgraph_agent", "chain"}
