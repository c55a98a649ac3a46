"""Small builders shared by the tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from image_tool.testing import ScriptedChatModel, calls_tool


def tool_call(**args: Any) -> dict[str, Any]:
    """A model's call of generate_image, as LangChain hands it to the tool."""
    return {"name": "generate_image", "args": args, "id": "call_1", "type": "tool_call"}


def scripted(*turns: AIMessage) -> ScriptedChatModel:
    return ScriptedChatModel(script=list(turns))


def calls_generate_image(**args: Any) -> AIMessage:
    return calls_tool("generate_image", **args)


def tool_node_graph(tool: BaseTool, model: ScriptedChatModel) -> Any:
    """A model node and LangGraph's ToolNode with its default error handling."""

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([tool]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile()


@contextmanager
def fake_relay_command(*options: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """``image-tool fake-relay --port 0 OPTIONS`` running: the process, the base URL and the line
    that gave it. Stopped with Ctrl-C, which it must take as a clean exit."""
    command = [sys.executable, "-m", "image_tool.cli", "fake-relay", "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603  # our own command
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        yield process, first.split("serving ", 1)[1].split(" ", 1)[0], first
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
    assert process.returncode == 0
