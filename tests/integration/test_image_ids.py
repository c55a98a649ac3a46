"""Short image ids (img_1, img_2...): shown to the model, passed back instead of a link, scoped to
one conversation (a LangGraph thread and its user), and kept beside the saved images."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from image_tool import ImageGenerationTool
from image_tool.testing import FakeRelay, Reply, ScriptedChatModel

from ..helpers import calls_generate_image, tool_call


@pytest.fixture
def tool(fake_relay: FakeRelay, tmp_path: Path) -> Iterator[ImageGenerationTool]:
    tool = make_tool(fake_relay, tmp_path / "saved")
    yield tool
    tool.client.close()


def make_tool(relay: FakeRelay, save_dir: Path | None, **settings: Any) -> ImageGenerationTool:
    return ImageGenerationTool(
        api_key=relay.api_key,
        base_url=relay.base_url,
        save_dir=save_dir,
        allow_private_downloads=True,
        max_retries=0,
        **settings,
    )


def in_thread(thread_id: str, user: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if user is not None:
        configurable["image_tool_user"] = user
    return {"configurable": configurable}


def invoke(tool: ImageGenerationTool, config: RunnableConfig | None = None, **args: Any) -> ToolMessage:
    message = tool.invoke(tool_call(**args), config)
    assert isinstance(message, ToolMessage)
    return message


def sent_references(relay: FakeRelay) -> list[str]:
    """The images the last generation sent to the relay, as it received them."""
    last = [request for request in relay.requests if request.method == "POST"][-1]
    return [part["image_url"]["url"] for part in last.json["messages"][0]["content"][1:]]


def data_url_of(path: Path) -> str:
    return f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"


def test_an_agent_edits_img_1_in_a_later_turn_without_copying_a_link(
    fake_relay: FakeRelay, tool: ImageGenerationTool
) -> None:
    """Two turns of one LangGraph thread: the model reads "img_1" in the first and names it in the second."""

    def edit_the_first(messages: Sequence[BaseMessage]) -> AIMessage:
        shown = "\n".join(str(message.content) for message in messages if isinstance(message, ToolMessage))
        assert re.search(r"^img_1: http", shown, re.MULTILINE), shown
        return calls_generate_image(prompt="The same cat, with a red hat", image_urls=["img_1"])

    model = ScriptedChatModel(
        script=[
            calls_generate_image(prompt="A cat on a sofa"),
            AIMessage("Here is your cat."),
            edit_the_first,
            AIMessage("I gave the cat a red hat."),
        ]
    )
    agent = create_agent(model, tools=[tool], checkpointer=InMemorySaver())
    agent.invoke({"messages": [HumanMessage("Draw a cat")]}, in_thread("chat-1"))
    state = agent.invoke({"messages": [HumanMessage("Give it a red hat")]}, in_thread("chat-1"))

    first, edit = [message for message in state["messages"] if isinstance(message, ToolMessage)]
    assert edit.status == "success", edit.content
    assert "img_2:" in edit.text and "img_1" not in edit.text.split("\n")[1]
    # The saved file travelled, not a link the model copied. (The first turn's artifact comes back
    # from the checkpoint as the dict it was stored as.)
    assert sent_references(fake_relay) == [data_url_of(Path(first.artifact["images"][0]["path"]))]


async def test_async_ids_follow_the_thread(fake_relay: FakeRelay, tool: ImageGenerationTool) -> None:
    first = await tool.ainvoke(tool_call(prompt="A cat", n=2), in_thread("chat-1"))
    assert "img_1:" in first.content and "img_2:" in first.content
    edit = await tool.ainvoke(tool_call(prompt="Only the second", image_urls=["img_2"]), in_thread("chat-1"))
    assert edit.status == "success", edit.content
    assert sent_references(fake_relay) == [data_url_of(first.artifact.images[1].path)]
    assert "img_3:" in edit.content


def test_two_threads_never_see_each_others_ids(fake_relay: FakeRelay, tool: ImageGenerationTool) -> None:
    ours = invoke(tool, in_thread("alice-chat"), prompt="A red fox")
    refused = invoke(tool, in_thread("bob-chat"), prompt="Edit it", image_urls=["img_1"])
    assert refused.status == "error"
    assert "img_1 is not known" in refused.content and "pass the image again" in refused.content
    posts = [request for request in fake_relay.requests if request.method == "POST"]
    assert len(posts) == 1  # the refused call sent nothing

    theirs = invoke(tool, in_thread("bob-chat"), prompt="A blue whale")
    assert "img_1:" in theirs.content  # each thread counts from 1
    invoke(tool, in_thread("bob-chat"), prompt="Bigger", image_urls=["img_1"])
    assert sent_references(fake_relay) == [data_url_of(theirs.artifact.images[0].path)]
    assert ours.artifact.images[0].path != theirs.artifact.images[0].path


def test_the_same_thread_of_another_user_is_another_conversation(tool: ImageGenerationTool) -> None:
    invoke(tool, in_thread("shared-id", user="alice"), prompt="A red fox")
    refused = invoke(tool, in_thread("shared-id", user="bob"), prompt="Edit", image_urls=["img_1"])
    assert refused.status == "error" and "img_1 is not known" in refused.content


def test_an_unknown_id_is_an_argument_error_the_model_can_act_on(tool: ImageGenerationTool) -> None:
    invoke(tool, in_thread("chat-1"), prompt="A cat", n=2)
    refused = invoke(tool, in_thread("chat-1"), prompt="Edit", image_urls=["img_7"])
    assert refused.status == "error"
    assert refused.text.startswith("Invalid image_urls: img_7 is not an image of this conversation")
    assert "img_1 to img_2" in refused.content


def test_ids_outlive_a_restart_from_what_was_saved(fake_relay: FakeRelay, tmp_path: Path) -> None:
    before = make_tool(fake_relay, tmp_path / "saved")
    shown = invoke(before, in_thread("chat-1"), prompt="A cat", n=2)
    before.client.close()

    after = make_tool(fake_relay, tmp_path / "saved")  # a new process would build the same tool
    edit = invoke(after, in_thread("chat-1"), prompt="The second, at night", image_urls=["img_2"])
    assert edit.status == "success", edit.content
    assert sent_references(fake_relay) == [data_url_of(shown.artifact.images[1].path)]
    assert "img_3:" in edit.content  # the count goes on
    assert invoke(after, in_thread("chat-2"), prompt="Edit", image_urls=["img_1"]).status == "error"
    after.client.close()


def test_without_save_dir_an_id_is_a_link_and_a_restart_forgets_it(fake_relay: FakeRelay) -> None:
    before = make_tool(fake_relay, None)
    link = invoke(before, in_thread("chat-1"), prompt="A cat").artifact.images[0].url
    invoke(before, in_thread("chat-1"), prompt="Edit", image_urls=["img_1"])
    assert sent_references(fake_relay) == [link]

    after = make_tool(fake_relay, None)
    refused = invoke(after, in_thread("chat-1"), prompt="Edit", image_urls=["img_1"])
    assert refused.status == "error"
    assert "only with save_dir set" in refused.content and "pass the image again" in refused.content
    before.client.close()
    after.client.close()


def test_calls_outside_a_thread_share_the_tools_own_ids(
    fake_relay: FakeRelay, tool: ImageGenerationTool
) -> None:
    link = invoke(tool, prompt="A cat").artifact.images[0]
    assert invoke(tool, prompt="With a hat", image_urls=["IMG_1 "]).status == "success"
    assert sent_references(fake_relay) == [data_url_of(link.path)]
    assert invoke(tool, in_thread("chat-1"), prompt="Edit", image_urls=["img_1"]).status == "error"


def test_an_id_whose_file_is_gone_falls_back_to_its_link(
    fake_relay: FakeRelay, tool: ImageGenerationTool
) -> None:
    image = invoke(tool, in_thread("chat-1"), prompt="A cat").artifact.images[0]
    image.path.unlink()
    assert invoke(tool, in_thread("chat-1"), prompt="Edit", image_urls=["img_1"]).status == "success"
    assert sent_references(fake_relay) == [image.url]


def test_an_inline_image_never_saved_asks_for_the_image_again(fake_relay: FakeRelay) -> None:
    tool = make_tool(fake_relay, None)
    fake_relay.queue(Reply.success(image_format="b64_json"))
    assert "img_1:" in invoke(tool, in_thread("chat-1"), prompt="A cat").content
    refused = invoke(tool, in_thread("chat-1"), prompt="Edit", image_urls=["img_1"])
    assert refused.status == "error" and "was not saved and has no link" in refused.content
    tool.client.close()


def test_a_mask_may_be_named_by_id(fake_relay: FakeRelay, tmp_path: Path) -> None:
    tool = make_tool(fake_relay, tmp_path, model="gpt-image-1")
    invoke(tool, in_thread("chat-1"), prompt="A room", n=2)
    edit = invoke(tool, in_thread("chat-1"), prompt="Paint the wall", image_urls=["img_1"], mask="img_2")
    assert edit.status == "success", edit.content
    (sent,) = [request for request in fake_relay.requests if request.path.endswith("/images/edits")]
    assert b'name="mask"' in sent.body and b'name="image[]"' in sent.body
    tool.client.close()


@pytest.mark.usefixtures("quick_polls")
def test_a_midjourney_grid_is_acted_on_by_its_image_id() -> None:
    with FakeRelay(profile="new-api") as relay:
        tool = ImageGenerationTool(api_key=relay.api_key, base_url=relay.base_url, model="mj_imagine")
        grid = invoke(tool, in_thread("chat-1"), prompt="A lighthouse")
        assert "img_1:" in grid.content and "(or 'img_1')" in grid.content
        upscaled = invoke(tool, in_thread("chat-1"), prompt="Upscale", task_id="img_1", action="U2")
        assert upscaled.status == "success", upscaled.content
        (action,) = [request.json for request in relay.requests if request.path == "/mj/submit/action"]
        assert action["taskId"] == grid.artifact.task_id and "upsample::2" in action["customId"]
        not_a_grid = invoke(tool, in_thread("chat-1"), prompt="Again", task_id="img_9", action="U1")
        assert (
            not_a_grid.status == "error"
            and "img_9 is not an image of this conversation" in not_a_grid.content
        )
        tool.client.close()


async def test_the_mcp_server_edits_by_id(tmp_path: Path) -> None:
    pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")
    from mcp.types import TextContent

    from .test_mcp import connect

    with FakeRelay() as relay:
        async with connect(relay, "--save-dir", str(tmp_path), "--allow-private-downloads") as client:
            first = await client.call_tool("generate_image", {"prompt": "A cat"})
            edit = await client.call_tool("generate_image", {"prompt": "A red hat", "image_urls": ["img_1"]})
            unknown = await client.call_tool("generate_image", {"prompt": "Hm", "image_urls": ["img_5"]})
        posts = [request for request in relay.requests if request.method == "POST"]
        assert len(posts) == 2  # the unknown id sent nothing
        saved = Path(first.structured_content["images"][0]["path"])
        assert posts[-1].json["messages"][0]["content"][1]["image_url"]["url"] == data_url_of(saved)

    def text(result: Any) -> str:
        return "\n".join(item.text for item in result.content if isinstance(item, TextContent))

    assert "img_1:" in text(first) and not edit.is_error and "img_2:" in text(edit)
    assert unknown.is_error and "img_5 is not an image of this conversation" in text(unknown)
