"""The API key never appears in cassettes, reprs, logs, errors, traces or serialized tools."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumps

from image_tool import APIError, ImageClient, ImageGenerationTool
from image_tool.testing import FakeRelay, Reply

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
