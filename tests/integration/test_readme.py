"""Every Python snippet of the README and of the documentation site (docs/*.md) runs: against FakeRelay,
with a scripted stand-in for ChatOpenAI. Shell, JSON and text blocks are not run."""

from __future__ import annotations

import logging
import re
import sys
import types
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import base as tool_base
from pydantic import PrivateAttr

from image_tool import ImageClient
from image_tool.testing import FakeRelay, Reply, ScriptedChatModel, calls_tool

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def python_snippets(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)


SNIPPETS = [
    pytest.param(page, snippet, id=f"{page.relative_to(ROOT).with_suffix('')}_{index}")
    for page in PAGES
    for index, snippet in enumerate(python_snippets(page))
]


class FakeChatOpenAI(ScriptedChatModel):
    """Writes an image prompt when asked plainly; with tools bound, calls generate_image once."""

    _with_tools: ScriptedChatModel = PrivateAttr()

    def __init__(self, **settings: Any) -> None:
        super().__init__(script=[AIMessage("An art-deco travel poster of Lisbon, yellow tram at dusk")])
        self._with_tools = ScriptedChatModel(
            script=[calls_tool("generate_image", prompt="A lighthouse at dawn"), AIMessage("Here it is.")]
        )

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self._with_tools


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, quick_polls: None) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "langchain_openai", types.SimpleNamespace(ChatOpenAI=FakeChatOpenAI))
    with FakeRelay(default_reply=Reply.success("markdown")) as relay:
        monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
        monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
        yield


@pytest.fixture
def call_failures(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Every failure of a generation during the test: raised by the client, or turned by a tool into
    an error message for the model (invalid arguments, a failed call, a spent budget)."""
    failures: list[BaseException] = []

    def raising(generate: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(generate)
        def sync(*args: Any, **kwargs: Any) -> Any:
            try:
                return generate(*args, **kwargs)
            except BaseException as error:
                failures.append(error)
                raise

        @wraps(generate)
        async def asynchronous(*args: Any, **kwargs: Any) -> Any:
            try:
                return await generate(*args, **kwargs)
            except BaseException as error:
                failures.append(error)
                raise

        return asynchronous if generate is ImageClient.agenerate else sync

    def handling(handle: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(handle)
        def recorded(error: BaseException, *args: Any, **kwargs: Any) -> Any:
            failures.append(error)
            return handle(error, *args, **kwargs)

        return recorded

    monkeypatch.setattr(ImageClient, "generate", raising(ImageClient.generate))
    monkeypatch.setattr(ImageClient, "agenerate", raising(ImageClient.agenerate))
    # Where BaseTool turns an exception into the error message a model reads.
    for handler in ("_handle_validation_error", "_handle_tool_error"):
        monkeypatch.setattr(tool_base, handler, handling(getattr(tool_base, handler)))
    return failures


def test_the_pages_have_snippets() -> None:
    assert len(python_snippets(README)) >= 2
    assert len(SNIPPETS) >= 25
    for page in ("index", "getting-started", "configuration", "tool", "client", "errors", "testing"):
        assert python_snippets(ROOT / "docs" / f"{page}.md"), f"docs/{page}.md lost its snippets"
    # The API reference is generated from the docstrings: it has no snippet of its own to test.
    assert not python_snippets(ROOT / "docs" / "reference.md")


@pytest.mark.parametrize(("page", "snippet"), SNIPPETS)
def test_snippet_runs(
    page: Path,
    snippet: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    call_failures: list[BaseException],
) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    try:
        # An exception fails the test here, with the page's name in its traceback.
        exec(compile(snippet, str(page.relative_to(ROOT)), "exec"), namespace)  # noqa: S102 - our own pages
    finally:
        for value in namespace.values():  # close what the snippet opened
            client = value if isinstance(value, ImageClient) else getattr(value, "client", None)
            if client is not None and hasattr(client, "close"):
                client.close()
    output = capsys.readouterr()

    # A snippet that prints shows something; nothing went wrong on the side (a thread, a logger).
    if "print(" in snippet:
        assert output.out.strip(), "the snippet printed nothing"
    assert "Traceback" not in output.err
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    # Every generation succeeded, including those a tool would have turned into an error message for
    # the model, unless the snippet scripted failures on a FakeRelay of its own.
    if "relay.queue(" not in snippet:
        assert not call_failures, f"a generation failed: {call_failures!r}"
