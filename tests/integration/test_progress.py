"""Progress of a streamed generation reaches callers: custom events, callbacks, LangGraph's stream."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from image_tool import PROGRESS_EVENT, ImageGenerationTool
from image_tool.testing import Reply

from ..conftest import RelayTarget
from ..helpers import calls_generate_image, scripted, tool_call, tool_node_graph


@pytest.fixture
def streaming_tool(relay: RelayTarget) -> ImageGenerationTool:
    relay.queue(Reply.success("markdown", pace=0.002))
    return ImageGenerationTool(api_key=relay.api_key, base_url=relay.base_url, stream=True)


@pytest.mark.vcr
@pytest.mark.emulator_only
async def test_astream_events_shows_progress_before_the_result(streaming_tool: ImageGenerationTool) -> None:
    events = [event async for event in streaming_tool.astream_events(tool_call(prompt="A cat"), version="v2")]
    kinds = [event["event"] for event in events]
    progress: list[dict[str, Any]] = [
        dict(event["data"]) for event in events if event["event"] == "on_custom_event"
    ]
    assert all(event["name"] == PROGRESS_EVENT for event in events if event["event"] == "on_custom_event")
    assert kinds.index("on_custom_event") < kinds.index("on_tool_end")
    assert progress[0]["stage"] == "queued"
    done = {"stage": "done", "percent": 100, "text": "✅ 生成完成", "preview_url": None, "preview_b64": None}
    assert progress[-1] == done
    previews = [update["preview_url"] for update in progress if update["preview_url"]]
    assert previews and previews[0].endswith(".png")  # the relay's preview link, passed on
    assert any(update["percent"] and 0 < update["percent"] < 100 for update in progress)
    message = events[-1]["data"]["output"]
    assert isinstance(message, ToolMessage)
    assert message.status == "success"
    assert "排队" not in message.content  # progress never reaches the model's context


class ProgressHandler(BaseCallbackHandler):
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    def on_custom_event(
        self, name: str, data: Any, *, run_id: UUID, tags: list[str] | None = None, **kwargs: Any
    ) -> None:
        if name == PROGRESS_EVENT:
            self.updates.append(data)


@pytest.mark.vcr
@pytest.mark.emulator_only
def test_sync_invoke_reports_progress_to_callback_handlers(streaming_tool: ImageGenerationTool) -> None:
    handler = ProgressHandler()
    message = streaming_tool.invoke(tool_call(prompt="A cat"), config={"callbacks": [handler]})
    assert message.status == "success"
    assert [update["stage"] for update in handler.updates][:: len(handler.updates) - 1] == ["queued", "done"]


@pytest.mark.vcr
@pytest.mark.emulator_only
def test_langgraph_custom_stream_carries_progress(streaming_tool: ImageGenerationTool) -> None:
    model = scripted(calls_generate_image(prompt="A cat"), AIMessage(content="Here it is."))
    graph = tool_node_graph(streaming_tool, model)
    chunks = list(graph.stream({"messages": [HumanMessage("Draw a cat")]}, stream_mode=["custom", "values"]))
    custom = [data[PROGRESS_EVENT] for mode, data in chunks if mode == "custom"]
    assert custom[0]["stage"] == "queued"
    assert custom[-1]["stage"] == "done"
    final = [data for mode, data in chunks if mode == "values"][-1]
    assert final["messages"][-1].content == "Here it is."


def test_a_plain_call_reports_no_progress(fake_relay: Any) -> None:
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url)
    fake_relay.queue(Reply.success("markdown"))
    handler = ProgressHandler()
    assert tool.invoke(tool_call(prompt="A cat"), config={"callbacks": [handler]}).status == "success"
    tool.client.close()
    assert handler.updates == []
