"""Every Python snippet of the README runs: against FakeRelay, with a scripted stand-in for ChatOpenAI."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from pydantic import PrivateAttr

from image_tool.testing import FakeRelay, Reply, ScriptedChatModel, calls_tool

README = Path(__file__).resolve().parent.parent / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


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
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "langchain_openai", types.SimpleNamespace(ChatOpenAI=FakeChatOpenAI))
    with FakeRelay(default_reply=Reply.success("markdown")) as relay:
        monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
        monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
        yield


def test_the_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 8


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet_{index}" for index in range(len(SNIPPETS))])
def test_snippet_runs(snippet: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    output = capsys.readouterr().out
    assert "Traceback" not in output
    for value in namespace.values():  # close what the snippet opened
        client = getattr(value, "client", None)
        if client is not None and hasattr(client, "close"):
            client.close()
