"""Failures at the command line are one line and an exit code, never a traceback; and the messages
of a refused key or a wrong address name the setting to check, through the client and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from image_tool import errors
from image_tool.cli import main
from image_tool.client import ImageClient
from image_tool.testing import FakeRelay, Reply


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRelay]:
    with FakeRelay(default_reply=Reply.success("markdown")) as relay:
        monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
        monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
        yield relay


def one_line(text: str) -> str:
    assert text.count("\n") == 1 and text.endswith("\n"), text
    assert "Traceback" not in text
    return text


# fake-relay


def test_fake_relay_on_a_busy_port_says_so_and_how_to_pick_another(
    relay: FakeRelay, capsys: pytest.CaptureFixture[str]
) -> None:
    port = urlsplit(relay.base_url).port
    assert main(["fake-relay", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err) == (
        f"image-tool: port {port} is already in use. Pick another with --port PORT, or --port 0 for any "
        "free port.\n"
    )


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--port", "65536"], "argument --port: expected a whole number from 0 to 65535, not '65536'"),
        (["--port", "-1"], "argument --port: expected a whole number from 0 to 65535, not '-1'"),
        (["--rate-limit", "0"], "argument --rate-limit: expected a number of requests a second above 0"),
        (["--pace", "inf"], "argument --pace: expected a number of seconds, 0 or more, not 'inf'"),
        (["--latency", "-1"], "argument --latency: expected a number of seconds, 0 or more, not '-1'"),
    ],
)
def test_fake_relay_arguments_out_of_range_are_one_line_usage_errors(
    arguments: list[str], error: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def serve(relay: FakeRelay) -> FakeRelay:  # a value let through would serve until Ctrl-C
        raise AssertionError(f"fake-relay started with {arguments}")

    monkeypatch.setattr(FakeRelay, "start", serve)
    with pytest.raises(SystemExit) as exited:
        main(["fake-relay", *arguments])
    assert exited.value.code == 2
    assert one_line(capsys.readouterr().err).startswith(f"image-tool: error: {error}")


# generate --save: checked before anything is sent


@pytest.mark.parametrize("where", ["under a file", "a file"])
def test_a_save_folder_that_cannot_be_written_fails_before_anything_is_sent(
    relay: FakeRelay, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A folder under a regular file cannot be made, even by root (permission bits would not stop it).
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    target = blocker / "images" if where == "under a file" else blocker
    argv = ["generate", "A cat", "--save", str(target), "--allow-private-downloads"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    reason = "Not a directory" if where == "under a file" else "it is a file, not a folder"
    assert one_line(err) == f"image-tool: cannot write to --save {target}: {reason}. Nothing was sent.\n"
    assert relay.requests == []


def test_a_missing_save_folder_is_made(relay: FakeRelay, tmp_path: Path) -> None:
    target = tmp_path / "new" / "images"
    assert main(["generate", "A cat", "--save", str(target), "--allow-private-downloads"]) == 0
    (saved,) = target.iterdir()
    assert saved.read_bytes().startswith(b"\x89PNG")


def test_a_bad_mask_is_named_as_the_mask(
    relay: FakeRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    argv = ["generate", "Edit it", "--image", "https://example.com/cat.png", "--mask"]
    assert main([*argv, str(tmp_path / "notes.txt")]) == 2
    assert one_line(capsys.readouterr().err).startswith("image-tool: --mask ")
    assert relay.requests == []


# A refused key and a wrong address name the setting to check


def test_a_wrong_base_url_names_the_setting_through_the_client(relay: FakeRelay) -> None:
    for api in ("chat", "images"):  # the relay's origin without /v1: no such endpoint there
        with (
            ImageClient(api_key=relay.api_key, base_url=relay.origin, api=api, max_retries=0) as client,
            pytest.raises(errors.APIStatusError) as raised,
        ):
            client.generate("A cat")
        assert type(raised.value) is errors.APIStatusError
        assert raised.value.status_code == 404
        message = str(raised.value)
        for words in ("base_url=", "IMAGE_TOOL_BASE_URL", "/chat/completions", "/images/generations", "/v1"):
            assert words in message


def test_a_refused_key_names_the_setting_through_the_client_and_never_the_key(relay: FakeRelay) -> None:
    wrong_key = "sk-wrong-key-0123456789abcdef"
    with (
        ImageClient(api_key=wrong_key, base_url=relay.base_url, max_retries=0) as client,
        pytest.raises(errors.AuthenticationError) as raised,
    ):
        client.generate("A cat")
    message = str(raised.value)
    assert "api_key=" in message and "IMAGE_TOOL_API_KEY" in message
    assert wrong_key not in message
    relay.queue(Reply.unauthorized())  # the relay's own 401, with its request id
    with (
        ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=0) as client,
        pytest.raises(errors.AuthenticationError) as raised,
    ):
        client.generate("A cat")
    assert "IMAGE_TOOL_API_KEY" in str(raised.value)
    assert relay.api_key not in str(raised.value)
    assert raised.value.request_id == "20260311-fake"


def test_a_wrong_base_url_at_the_command_line_names_the_variable(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.origin)
    assert main(["generate", "A cat", "--max-retries", "0"]) == 10
    err = one_line(capsys.readouterr().err)
    assert err.startswith("image-tool: Invalid URL (POST /chat/completions). Check the base URL: ")
    assert "IMAGE_TOOL_BASE_URL" in err and "/v1" in err
    assert "base_url=" not in err  # the command has no such flag: only the variable is named


def test_a_refused_key_at_the_command_line_names_the_variable_and_never_the_key(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong_key = "sk-wrong-key-0123456789abcdef"
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", wrong_key)
    assert main(["generate", "A cat", "--max-retries", "0"]) == 3
    err = one_line(capsys.readouterr().err)
    assert err.startswith("image-tool: Invalid token. Check the API key: IMAGE_TOOL_API_KEY ")
    assert "api_key=" not in err
    assert wrong_key not in err


def test_a_request_the_relay_never_answered_names_the_flag_that_retries_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeRelay() as relay:
        monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
        monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
        relay.queue(Reply.transport_fault("drop_unanswered"), Reply.transport_fault("drop_unanswered"))
        assert main(["generate", "A cat"]) == 9  # EXIT_CODES: APIConnectionError
        err = capsys.readouterr().err
        assert "may have been generated" in err and "--retry-unanswered retries" in err
        assert len(err.strip().splitlines()) == 1
        assert main(["generate", "A cat", "--retry-unanswered"]) == 0
        assert relay.generated == 3  # one drop, then one drop and a success
