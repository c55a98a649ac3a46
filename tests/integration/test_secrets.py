"""The API key never appears in cassettes, reprs, logs, errors, traces or serialized tools."""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumps
from pydantic import ValidationError

from image_tool import APIError, GenerationProgress, ImageClient, ImageGenerationTool
from image_tool._io.logs import KEY_FILTER, LOGGERS
from image_tool._wire.redaction import REDACTED
from image_tool.settings import ClientSettings, Fallback
from image_tool.testing import FakeRelay, Reply
from image_tool.tool import PROGRESS_EVENT

from ..conftest import CASSETTES, FAKE_RELAY_KEY, REPLAY_KEY
from ..helpers import tool_call

SECRET = "sk-live-0123456789abcdefSECRET"
CASSETTE_FILES = sorted(CASSETTES.rglob("*.yaml"))


def test_there_are_cassettes() -> None:
    assert len(CASSETTE_FILES) > 20


@pytest.mark.parametrize("path", CASSETTE_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_cassette_holds_no_secret(path: Path) -> None:
    text = path.read_text()
    assert "authorization" not in text.lower()
    assert "Bearer" not in text
    assert FAKE_RELAY_KEY not in text
    assert REPLAY_KEY not in text
    assert not re.search(r"sk-[A-Za-z0-9]{16,}", text)
    for variable in ("IMAGE_TOOL_API_KEY", "OPENAI_API_KEY"):
        if key := os.environ.get(variable):
            assert key not in text
    assert "127.0.0.1" not in text  # the recording relay's address is rewritten too


class RecordEverything(BaseCallbackHandler):
    """Keeps every argument LangChain's tracing hands to callbacks."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        self.seen.append(repr((serialized, input_str, kwargs)))

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.seen.append(repr((output, kwargs)))

    def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append(repr((error, kwargs)))

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.seen.append(repr((name, data, kwargs)))


@pytest.fixture
def secret_relay() -> Any:
    with FakeRelay(api_key=SECRET) as relay:
        yield relay


def test_key_stays_out_of_everything(secret_relay: FakeRelay, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tool = ImageGenerationTool(api_key=SECRET, base_url=secret_relay.base_url)
    tracer = RecordEverything()
    secret_relay.queue(Reply(), Reply.server_error(), Reply.error(401, f"Invalid token {SECRET}"))
    messages = [tool.invoke(tool_call(prompt="A cat"), config={"callbacks": [tracer]}) for _ in range(3)]
    tool.client.close()
    assert [message.status for message in messages] == ["success", "error", "error"]
    places = {
        "repr(tool)": repr(tool),
        "str(tool)": str(tool),
        "repr(client)": repr(tool.client),
        "client.model_dump_json()": tool.client.model_dump_json(),
        "serialized tool": dumps(tool),
        "logs": caplog.text,
        "traces": "\n".join(tracer.seen),
        "tool messages": "\n".join(repr(message) for message in messages),
    }
    assert len(tracer.seen) == 6
    assert "DEBUG" in caplog.text or caplog.records
    for place, text in places.items():
        assert SECRET not in text, f"the key leaked into {place}"


def test_client_errors_redact_an_echoed_key(secret_relay: FakeRelay) -> None:
    secret_relay.queue(Reply.error(500, f"upstream rejected key {SECRET}"))
    client = ImageClient(api_key=SECRET, base_url=secret_relay.base_url)
    with client, pytest.raises(APIError) as caught:
        client.generate("A cat")
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def keyed_progress(relay: FakeRelay) -> Reply:
    """A completion whose progress line (and preview link) holds the key: streamed, FakeRelay
    sends text a dozen characters an event, so the key reaches the client split across events."""
    origin = relay.origin
    return Reply.completion(
        f">🏃 进度 13....57 key={SECRET} 61....73....[100]({origin}/previews/{SECRET}.png)\n\n"
        f"✅ 生成完成\n\n![cat]({origin}/images/1024x1024/0123456789abcdef.png)"
    )


def test_a_key_split_across_events_stays_out_of_progress(secret_relay: FakeRelay) -> None:
    secret_relay.queue(keyed_progress(secret_relay))
    updates: list[GenerationProgress] = []
    with ImageClient(api_key=SECRET, base_url=secret_relay.base_url, stream=True) as client:
        result = client.generate("A cat", on_progress=updates.append)
    texts = [update.text for update in updates]
    assert any(f"key={REDACTED} 61" in text for text in texts), texts  # the key reached a line whole
    for update in updates:
        assert SECRET[:5] not in update.model_dump_json()  # nor its first part, while it arrived
    assert SECRET not in result.model_dump_json()


def test_a_key_echoed_in_a_header_stays_out_of_debug_logs(
    secret_relay: FakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_relay.queue(Reply(headers={"X-Echo": SECRET}), Reply(headers={"X-Echo": SECRET}))
    with ImageClient(api_key=SECRET, base_url=secret_relay.base_url) as client:
        client.generate("A cat")
        client.generate("A cat")  # a second client's filter is the same one, put back at most
    echoes = [record for record in caplog.records if "X-Echo" in record.getMessage()]
    assert echoes and all(record.name.startswith("httpcore2.") for record in echoes)
    assert all(REDACTED in record.getMessage() for record in echoes)
    assert SECRET not in caplog.text


def test_the_log_filter_leaves_the_logging_configuration_alone_and_fails_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    before = [(each.level, list(each.handlers), each.propagate) for each in loggers]
    for key in (SECRET, "another-relay-key-0123456789", SECRET):
        ImageClient(api_key=key, base_url="https://relay.example/v1")
    assert [(each.level, list(each.handlers), each.propagate) for each in loggers] == before
    assert all(each.filters.count(KEY_FILTER) == 1 for each in loggers)
    http = logging.getLogger("httpcore2.http11")
    http.debug("headers %s and %r", SECRET, b"another-relay-key-0123456789")
    http.debug("unrenderable %d", "not a number")  # dropped, not shown with its arguments
    try:
        raise ValueError(f"rejected {SECRET}")
    except ValueError:
        logging.getLogger("image_tool").warning("failed", exc_info=True)
    assert [record.getMessage() for record in caplog.records] == [
        f"headers {REDACTED} and b'{REDACTED}'",
        "failed",
    ]
    assert "ValueError: rejected [redacted]" in caplog.text
    assert SECRET not in caplog.text and "another-relay-key" not in caplog.text


@pytest.mark.parametrize(
    "build",
    [
        lambda: Fallback.model_validate({"base_url": "https://relay.example/v1", "apikey": SECRET}),
        lambda: Fallback.model_validate({"base_url": "https://relay.example/v1", "api_key": [SECRET]}),
        lambda: ClientSettings.model_validate(
            {"fallbacks": [{"base_url": "https://x.example", "apikey": SECRET}]}
        ),
    ],
    ids=["misspelled", "wrong-type", "nested"],
)
def test_settings_errors_hide_what_was_given(build: Callable[[], object]) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert SECRET not in str(caught.value.errors(include_input=False))


def test_a_fallback_never_shows_its_key() -> None:
    fallback = Fallback(base_url="https://relay.example/v1", api_key=SECRET)
    shown = [repr(fallback), str(fallback), fallback.model_dump_json(), repr(fallback.model_dump())]
    assert not [text for text in shown if SECRET in text]


class EveryRecord(logging.Handler):
    """Every record as a handler would write it: message, traceback and stack."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def every_logger_at_debug() -> Iterator[EveryRecord]:
    """Root and every logger that exists at DEBUG, each handing its records to one handler;
    restored afterwards."""
    existing = logging.Logger.manager.loggerDict.values()
    loggers = [logging.getLogger(), *(each for each in existing if isinstance(each, logging.Logger))]
    saved = [(each, each.level) for each in loggers]
    handler = EveryRecord()
    watched = [each for each in loggers if each is logging.getLogger() or not each.propagate]
    for each in loggers:
        each.setLevel(logging.DEBUG)
    for each in watched:
        each.addHandler(handler)
    try:
        yield handler
    finally:
        for each in watched:
            each.removeHandler(handler)
        for each, level in saved:
            each.setLevel(level)


def test_no_key_anywhere_in_a_run_at_debug(
    secret_relay: FakeRelay, every_logger_at_debug: EveryRecord, tmp_path: Path
) -> None:
    # The key in the body, split across stream events, and in a header; then in an error.
    streamed = replace(keyed_progress(secret_relay), headers={"X-Echo": SECRET})
    failure = Reply.error(401, f"Invalid token {SECRET}", headers={"X-Echo": SECRET})
    secret_relay.queue(streamed, streamed, failure, failure)
    tool = ImageGenerationTool(
        api_key=SECRET,
        base_url=secret_relay.base_url,
        stream=True,
        save_dir=tmp_path,
        allow_private_downloads=True,
        max_retries=0,
    )
    updates: list[GenerationProgress] = []
    result = tool.client.generate("A cat", on_progress=updates.append)
    tracer = RecordEverything()  # the tool's custom events, its result and its error
    messages = [tool.invoke(tool_call(prompt="A cat"), config={"callbacks": [tracer]}) for _ in range(2)]
    with pytest.raises(APIError) as caught:
        tool.client.generate("A cat")
    tool.client.close()
    saved_files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert saved_files and [message.status for message in messages] == ["success", "error"]
    assert any(PROGRESS_EVENT in seen for seen in tracer.seen)
    assert any("X-Echo" in text for text in every_logger_at_debug.texts)  # the header was logged
    assert any(REDACTED in update.text for update in updates)  # the key reached the progress line
    places = {
        "logs": "\n".join(every_logger_at_debug.texts),
        "exception": "".join(traceback.format_exception(caught.value)) + repr(caught.value),
        "on_progress": "\n".join(update.model_dump_json() for update in updates),
        "custom events and traces": "\n".join(tracer.seen),
        "result": result.model_dump_json() + repr(result),
        "tool messages": "\n".join(repr(message) for message in messages),
        "file names": "\n".join(str(path) for path in saved_files),
    }
    for place, text in places.items():
        assert SECRET not in text, f"the key leaked into {place}"
    for path in saved_files:
        assert SECRET.encode() not in path.read_bytes(), f"the key leaked into {path}"
