"""The image-tool command: output, progress on a terminal, exit codes, the emulator command."""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_tool.cli import EXIT_CODES, main
from image_tool.testing import FakeRelay, Reply


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRelay]:
    with FakeRelay(default_reply=Reply.success("markdown", pace=0.01)) as relay:
        monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
        monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
        yield relay


def test_generate_prints_links_and_revised_prompts(
    relay: FakeRelay, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "A cat in a tree", "--n", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.count(f"{relay.origin}/images/1024x1024/") == 2
    assert "revised prompt: A cat in a tree, vivid style, 1024x1024 frame" in out
    assert err == ""  # no progress drawn when stderr is not a terminal


def test_generate_saves_and_prints_json(
    relay: FakeRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "A cat", "--save", str(tmp_path), "--allow-private-downloads", "--json", "--stream"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    (image,) = result["images"]
    assert Path(image["path"]).parent == tmp_path
    assert Path(image["path"]).read_bytes().startswith(b"\x89PNG")
    assert "b64_json" not in image
    assert result["attempts"] == 1


def test_generate_edits_a_local_image(relay: FakeRelay, tmp_path: Path) -> None:
    from image_tool.testing import png_image

    picture = tmp_path / "cat.png"
    picture.write_bytes(png_image(8, 8, "cat"))
    assert main(["generate", "Give the cat a hat", "--image", str(picture)]) == 0
    (_, reference) = relay.requests[-1].json["messages"][0]["content"]
    assert reference["image_url"]["url"].startswith("data:image/png;base64,")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    relay.default_reply = Reply.success("markdown", pace=0.01)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["generate", "A cat", "--stream"]) == 0
    drawn = terminal.getvalue()
    assert "\r\x1b[K" in drawn
    assert "generating" in drawn
    assert "%" in drawn
    assert drawn.endswith("\r\x1b[K")  # the line is cleared before the result is printed
    assert "/images/" in capsys.readouterr().out


def test_progress_on_a_real_pseudo_terminal(relay: FakeRelay) -> None:
    relay.default_reply = Reply.success("markdown", pace=0.02)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "image_tool.cli", "generate", "A cat", "--stream"],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=os.environ.copy(),
    )
    os.close(terminal)
    stdout, _ = process.communicate(timeout=30)
    drawn = b""
    try:
        while chunk := os.read(controller, 4096):
            drawn += chunk
    except OSError:  # the terminal's other end closed
        pass
    os.close(controller)
    assert process.returncode == 0
    assert b"generating" in drawn
    assert b"/images/" in stdout


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply.unauthorized(), 3),
        (Reply.content_policy(), 4),
        (Reply.refusal(), 4),
        (Reply.rate_limited(), 5),
        (Reply.quota_exhausted(), 6),
        (Reply.model_unavailable(), 7),
        (Reply.server_error(), 10),
        (Reply.empty_link(), 11),
        (Reply.truncated_json(), 11),
    ],
)
def test_exit_codes(relay: FakeRelay, reply: Reply, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    relay.queue(reply)
    assert main(["generate", "A cat", "--max-retries", "0"]) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("image-tool: ")
    assert relay.api_key not in err


def test_timeout_and_unreachable_exit_codes(relay: FakeRelay, monkeypatch: pytest.MonkeyPatch) -> None:
    relay.queue(Reply.transport_fault("endless_stream"))
    assert main(["generate", "A cat", "--max-retries", "0", "--total-timeout", "0.3"]) == 8
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(["generate", "A cat", "--max-retries", "0"]) == 9


def test_every_error_kind_has_its_own_code() -> None:
    codes = [code for _, code, _ in EXIT_CODES]
    assert len(set(codes)) == len(codes)
    assert 0 not in codes
    assert 1 not in codes


def test_without_a_relay_it_says_how_to_configure_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "A cat"]) == 2
    err = capsys.readouterr().err
    assert "export IMAGE_TOOL_API_KEY" in err
    assert "image-tool fake-relay" in err


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["generate", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for words in ("examples:", "--save", "--stream", "--json", "exit codes:", "IMAGE_TOOL_BASE_URL"):
        assert words in text


def test_fake_relay_command_serves_the_emulator(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "image_tool.cli", "fake-relay", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        base_url = first.split("serving ", 1)[1].split(" ", 1)[0]
        instructions = [process.stdout.readline() for _ in range(3)]
        assert instructions[0].strip() == f"export IMAGE_TOOL_BASE_URL={base_url}"
        env = {**os.environ, "IMAGE_TOOL_BASE_URL": base_url, "IMAGE_TOOL_API_KEY": "fake-relay-key"}
        generated = subprocess.run(
            [sys.executable, "-m", "image_tool.cli", "generate", "A cat", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert json.loads(generated.stdout)["images"][0]["url"].startswith(base_url.removesuffix("/v1"))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
    assert process.returncode == 0


def test_mcp_command_needs_a_relay(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp", "--save-dir", "images"]) == 2  # no relay configured: it says which variables
    assert "IMAGE_TOOL_API_KEY" in capsys.readouterr().err


def test_a_bad_image_argument_is_a_usage_error(
    relay: FakeRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["generate", "Edit it", "--image", str(tmp_path / "notes.txt")]) == 2
    assert "not a PNG, JPEG, WebP or GIF image" in capsys.readouterr().err
    assert relay.requests == []
