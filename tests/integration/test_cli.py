"""The image-tool command: output, progress on a terminal, exit codes, the emulator command."""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_tool import errors
from image_tool._cli.displays import ProgressDisplay
from image_tool._cli.terms import EXIT_CODES, exit_code
from image_tool.cli import main
from image_tool.client import ImageClient
from image_tool.models import MAX_IMAGES, MAX_PROMPT_LENGTH, GenerationProgress
from image_tool.testing import FakeRelay, Reply

from ..helpers import ctrl_c_enabled, fake_relay_command, wait_until


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


def test_generate_sends_extra_body_and_the_new_options(
    relay: FakeRelay, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = '{"provider": {"order": ["openai"]}, "watermark": false}'
    argv = [
        "generate",
        "A cat",
        "--model",
        "gpt-image-2",
        "--size",
        "1024x768",
        "--extra-body",
        extra,
        "--json",
    ]
    assert main(argv) == 0
    assert relay.requests[-1].json == {
        "model": "gpt-image-2",
        "prompt": "A cat",
        "n": 1,
        "size": "1024x768",
        "provider": {"order": ["openai"]},
        "watermark": False,
    }
    capsys.readouterr()
    assert main(["generate", "A cat", "--model", "black-forest-labs/flux.2-pro", "--seed", "7"]) == 0
    assert relay.requests[-1].json["seed"] == 7
    assert main(["generate", "A cat", "--model", "nano-banana-pro", "--image-size", "4K"]) == 0
    assert relay.requests[-1].json["image_config"] == {"image_size": "4K"}


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (
            ["--extra-body", '{"model": "dall-e-3"}'],
            "extra_body may not set 'model', which image-tool sets itself: use the model setting (--model).",
        ),
        (["--model", "gpt-image-2", "--size", "1000x1000"], "multiples of 16"),
        (
            ["--model", "mj_imagine", "--negative-prompt", " "],
            "negative_prompt is text, 1 to 1000 characters",
        ),
        (["--model", "gpt-image-1", "--seed", "3"], "gpt-image-1 does not take seed"),
    ],
)
def test_what_the_model_cannot_take_exits_2_and_nothing_is_sent(
    relay: FakeRelay, arguments: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "A cat", *arguments]) == 2
    _, err = capsys.readouterr()
    assert says in err
    assert err.count("\n") == 1
    assert relay.requests == []


def test_batch_sends_extra_body_with_every_prompt(
    relay: FakeRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    lines = [{"id": "a", "prompt": "A cat", "seed": 3}, {"id": "b", "prompt": "A dog"}]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    argv = ["batch", str(prompts), "--out", str(tmp_path / "run"), "--model", "black-forest-labs/flux.2-pro"]
    assert main([*argv, "--extra-body", '{"provider": {"sort": "price"}}', "--allow-private-downloads"]) == 0
    bodies = {
        request.json["messages"][0]["content"]: request.json
        for request in relay.requests
        if request.method == "POST"
    }
    assert {prompt: body["provider"] for prompt, body in bodies.items()} == {
        "A cat": {"sort": "price"},
        "A dog": {"sort": "price"},
    }
    assert (bodies["A cat"]["seed"], "seed" in bodies["A dog"]) == (3, False)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Paced to generate for ~0.8 s: the line is redrawn every 0.1 s, several times even when loaded.
    relay.default_reply = Reply.success("markdown", pace=0.02)
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


def test_timeout_and_unreachable_exit_codes(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    relay.queue(Reply.transport_fault("endless_stream"))
    assert main(["generate", "A cat", "--max-retries", "0", "--total-timeout", "0.3"]) == 8
    err = capsys.readouterr().err
    assert "raise --total-timeout" in err  # the flag, not the library's setting
    assert "ImageClient(" not in err
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(["generate", "A cat", "--max-retries", "0"]) == 9


def test_every_error_kind_has_its_own_code() -> None:
    # Usage errors share 2: a bad setting and a bad argument are both fixed by the caller.
    usage = {kind for kind, code, _ in EXIT_CODES if code == 2}
    assert usage == {errors.ConfigurationError, errors.InvalidRequestError}
    codes = [code for _, code, _ in EXIT_CODES if code != 2]
    assert len(set(codes)) == len(codes)
    assert 0 not in codes
    assert 1 not in codes


def test_exit_codes_of_failures_found_before_sending_and_after() -> None:
    assert exit_code(errors.InvalidRequestError("the prompt is empty")) == 2
    assert exit_code(errors.ReferenceImageError("not an image")) == 2
    assert exit_code(errors.SaveError("disk full")) == 12
    assert exit_code(KeyboardInterrupt()) == 130


def test_an_invalid_request_from_the_library_is_a_usage_error(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise errors.InvalidRequestError("the prompt is empty")

    monkeypatch.setattr(ImageClient, "generate", refuse)
    assert main(["generate", "A cat"]) == 2
    assert capsys.readouterr().err == "image-tool: the prompt is empty\n"


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
    for _, code, meaning in EXIT_CODES:
        assert f"  {code:<3} {meaning}\n" in text + "\n"
    assert "12  generated, but not saved (see --save)" in text


def test_fake_relay_command_serves_the_emulator(tmp_path: Path) -> None:
    with fake_relay_command() as (process, base_url, _):
        assert process.stdout is not None
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


def test_fake_relay_command_stops_cleanly_as_soon_as_its_banner_is_read() -> None:
    for _ in range(5):  # Ctrl-C right after the banner: a handler set up later loses that race
        with fake_relay_command("--pace", "0"):
            pass


def test_fake_relay_command_plays_a_busy_relay() -> None:
    with (
        fake_relay_command("--quota-images", "1") as (_, base_url, _first),
        ImageClient(api_key="fake-relay-key", base_url=base_url, max_retries=0) as client,
    ):
        client.generate("A cat")
        with pytest.raises(errors.QuotaExceededError):
            client.generate("A second cat")


def test_mcp_command_needs_a_relay(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp", "--save-dir", "images"]) == 2  # no relay configured: it says which variables
    assert "IMAGE_TOOL_API_KEY" in capsys.readouterr().err


def test_the_mcp_command_takes_the_servers_own_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    import image_tool.mcp_server

    received: list[argparse.Namespace] = []

    def serve(args: argparse.Namespace) -> int:
        received.append(args)
        return 0

    monkeypatch.setattr(image_tool.mcp_server, "serve", serve)
    command = ["mcp", "--model", "mj_imagine", "--extra-body", '{"botType": "NIJI_JOURNEY"}']
    assert main([*command, "--transport", "http", "--port", "0", "--client-images-per-minute", "5"]) == 0
    (args,) = received
    assert (args.model, args.extra_body, args.transport) == (
        "mj_imagine",
        {"botType": "NIJI_JOURNEY"},
        "http",
    )
    assert (args.port, args.client_images_per_minute, args.images_per_minute) == (0, 5, None)


def test_a_bad_image_argument_is_a_usage_error(
    relay: FakeRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["generate", "Edit it", "--image", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("image-tool: --image ")
    assert "not a PNG, JPEG, WebP or GIF image" in err
    assert err.count("\n") == 1
    assert relay.requests == []


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ([""], "argument prompt: empty"),
        (["  \n "], "argument prompt: empty"),
        (["a" * (MAX_PROMPT_LENGTH + 1)], f"argument prompt: {MAX_PROMPT_LENGTH + 1} characters"),
        (["A cat", "--n", "0"], f"argument --n: expected a whole number from 1 to {MAX_IMAGES}, not '0'"),
        (["A cat", "--n", str(MAX_IMAGES + 1)], "argument --n: expected a whole number from 1"),
        (["A cat", "--n", "two"], "argument --n: expected a whole number"),
        (["A cat", "--max-retries", "-1"], "argument --max-retries: expected a whole number, 0 or more"),
        (["A cat", "--max-retries", "1.5"], "argument --max-retries: expected a whole number"),
        (["A cat", "--total-timeout", "0"], "argument --total-timeout: expected a number of seconds above 0"),
        (["A cat", "--total-timeout", "-5"], "argument --total-timeout: expected a number of seconds"),
        (["A cat", "--total-timeout", "nan"], "argument --total-timeout: expected a number of seconds"),
        (["A cat", "--size", "huge"], "argument --size: expected one of 1024x1024, 1024x1792"),
        (["A cat", "--image-size", "8K"], "argument --image-size: invalid choice: '8K'"),
        (["A cat", "--seed", "-1"], "argument --seed: expected a whole number from 0 to 4294967295"),
        (["A cat", "--extra-body", "{seed: 7}"], "argument --extra-body: not JSON (Expecting property name"),
        (["A cat", "--extra-body", "[1]"], "argument --extra-body: a JSON object is needed"),
        ([], "the following arguments are required: prompt"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors_and_nothing_is_sent(
    relay: FakeRelay, arguments: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["generate", *arguments])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"image-tool: error: {error}")
    assert err.endswith(" (see image-tool generate --help)\n")
    assert err.count("\n") == 1
    assert relay.requests == []


def test_arguments_at_their_limits_are_sent(relay: FakeRelay, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = "a" * MAX_PROMPT_LENGTH
    argv = [
        "generate",
        f"  {prompt}\n",
        "--n",
        str(MAX_IMAGES),
        "--max-retries",
        "0",
        "--total-timeout",
        "30",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.count("/images/") == MAX_IMAGES
    sent = relay.requests[-1].json
    assert sent["messages"][0]["content"] == prompt  # sent as checked: stripped
    assert sent["n"] == MAX_IMAGES


def test_an_unknown_command_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["paint", "A cat"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("image-tool: error: argument COMMAND: invalid choice: 'paint'")
    assert err.count("\n") == 1


def test_ctrl_c_clears_the_progress_line_and_exits_130(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        wait_until(lambda: "waiting for the relay" in terminal.getvalue())  # drawn
        raise KeyboardInterrupt

    monkeypatch.setattr(ImageClient, "generate", interrupted)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["generate", "A cat"]) == 130
    drawn = terminal.getvalue()
    assert "waiting for the relay" in drawn
    assert drawn.endswith("\r\x1b[Kimage-tool: interrupted\n")


def test_ctrl_c_stops_a_generation_at_once_with_one_line() -> None:
    # The relay answers after 30 s: a command that waited for it instead would exit some 29 s after
    # Ctrl-C. It exits in a fraction of a second; 10 s leaves room for a loaded machine.
    with FakeRelay(default_reply=Reply.slow(30)) as relay:
        env = {**os.environ, "IMAGE_TOOL_API_KEY": relay.api_key, "IMAGE_TOOL_BASE_URL": relay.base_url}
        with ctrl_c_enabled():
            process = subprocess.Popen(
                [sys.executable, "-m", "image_tool.cli", "generate", "A cat", "--stream"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
            )
        try:
            wait_until(lambda: relay.in_flight > 0)  # the request is on its way
            time.sleep(1)
            process.send_signal(signal.SIGINT)
            interrupted = time.monotonic()
            out, err = process.communicate(timeout=60)
            took = time.monotonic() - interrupted
        finally:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert err == "image-tool: interrupted\n"
    assert out == ""
    assert took < 10, f"it took {took:.1f} s to stop"


def test_images_refused_by_the_save_are_printed_reported_and_exit_12(
    relay: FakeRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # FakeRelay serves its images from 127.0.0.1: without --allow-private-downloads they are refused.
    assert main(["generate", "A cat", "--n", "2", "--save", str(tmp_path)]) == 12
    out, err = capsys.readouterr()
    assert out.count(f"{relay.origin}/images/") == 2
    lines = err.splitlines()
    assert len(lines) == 2
    for number, line in enumerate(lines, start=1):
        assert line.startswith(f"image-tool: image {number} was not saved to {tmp_path} (--save): refused")
        assert "--allow-private-downloads" in line
        assert "allow_private_downloads" not in line
    assert list(tmp_path.iterdir()) == []


def test_json_keeps_each_save_error_and_exits_12(
    relay: FakeRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "A cat", "--save", str(tmp_path), "--json"]) == 12
    out, err = capsys.readouterr()
    (image,) = json.loads(out)["images"]
    assert image["url"].startswith(f"{relay.origin}/images/")
    assert image["path"] is None
    assert "--allow-private-downloads" in image["save_error"]
    assert err.startswith("image-tool: image 1 was not saved to ")


def test_a_save_directory_that_cannot_be_made_is_refused_before_anything_is_sent(
    relay: FakeRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It used to be generated (and billed), then not saved: exit 12. The folder is checked first.
    (tmp_path / "file.txt").write_text("a file, not a directory")
    target = tmp_path / "file.txt" / "sub"
    assert main(["generate", "A cat", "--save", str(target), "--allow-private-downloads"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"image-tool: cannot write to --save {target}: ")
    assert err.count("\n") == 1
    assert relay.requests == []


def test_the_progress_line_says_saving_images_while_downloading() -> None:
    screen = io.StringIO()
    with ProgressDisplay(screen) as display:
        display.update(GenerationProgress(stage="generating", percent=57))
        wait_until(lambda: "generating 57%" in screen.getvalue())
        display.update(GenerationProgress(stage="done", percent=100))
        display.update(GenerationProgress(stage="saving"))
        wait_until(lambda: "saving images" in screen.getvalue())
    drawn = screen.getvalue()
    last = drawn.removesuffix("\r\x1b[K").rsplit("\r\x1b[K", 1)[-1]
    assert "saving images" in last
    assert "done 100%" not in drawn.split("generating 57%", 1)[1]
    assert drawn.endswith("\r\x1b[K")
