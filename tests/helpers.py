"""Small builders shared by the tests."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from image_tool import ImageClient, ImageGenerationResult
from image_tool.testing import ScriptedChatModel, calls_tool

DEPRECATED_MODULES = {"image_tool.limits": "image_tool._policy.limits"}
"""Old module paths kept as shims that warn, and the modules whose names each still offers."""


async def call(client: ImageClient, asynchronous: bool, **arguments: Any) -> ImageGenerationResult:
    """``generate`` or ``agenerate`` with the same arguments (a prompt of "A cat" unless given)."""
    arguments = {"prompt": "A cat", **arguments}
    if asynchronous:
        async with client:
            return await client.agenerate(**arguments)
    with client:
        return await asyncio.to_thread(lambda: client.generate(**arguments))


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


def wait_until(
    condition: Callable[[], bool], message: str = "timed out waiting", timeout: float = 30.0
) -> None:
    """Polls ``condition`` until it holds, failing with ``message`` after ``timeout`` seconds: a
    guard that only a broken behaviour waits out, never a guess of how long something takes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.005)


@contextmanager
def ctrl_c_enabled() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt inside the block, and in the Python children started in it.

    A test run may begin with SIGINT ignored: a background job of a non-interactive shell does
    (``pytest &`` in a script), its children inherit that, and Python then installs no
    KeyboardInterrupt. A test's Ctrl-C would be lost, and the test would wait for an exit that
    never comes. A handler, unlike an ignored signal, is reset to the default at exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: set outside Python, which cannot put it back
            signal.signal(signal.SIGINT, previous)


@contextmanager
def fake_relay_command(*options: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """``image-tool fake-relay --port 0 OPTIONS`` running: the process, the base URL and the line
    that gave it. Stopped with Ctrl-C, which it must take as a clean exit."""
    command = [sys.executable, "-m", "image_tool.cli", "fake-relay", "--port", "0", *options]
    with ctrl_c_enabled():
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603  # our own command
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "serving " in first, f"fake-relay did not start: {first!r}"
        yield process, first.split("serving ", 1)[1].split(" ", 1)[0], first
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)  # a clean exit takes well under a second: only a hang waits it out
        except subprocess.TimeoutExpired:
            process.kill()  # not left running after the test
            process.wait()
            raise
        finally:
            if process.stdout:
                process.stdout.close()
    assert process.returncode == 0
