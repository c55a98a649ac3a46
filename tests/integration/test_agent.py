"""The tool inside real agent loops: langchain's create_agent and a LangGraph ToolNode graph."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from image_tool import ImageGenerationResult, ImageGenerationTool
from image_tool.testing import FakeRelay, Reply

from ..conftest import RelayTarget
from ..helpers import calls_generate_image, scripted, tool_node_graph


def tool_messages(state: dict[str, Any]) -> list[ToolMessage]:
    return [message for message in state["messages"] if isinstance(message, ToolMessage)]


@pytest.mark.vcr
def test_create_agent_generates_images_mid_conversation(tool: ImageGenerationTool) -> None:
    model = scripted(
        calls_generate_image(prompt="A cosy reading nook with a sleeping cat", n=2, style="natural"),
        AIMessage(content="Here are two pictures of the reading nook."),
    )
    agent = create_agent(model, tools=[tool])
    state = agent.invoke({"messages": [HumanMessage("Draw me a cosy reading nook, two options")]})
    (message,) = tool_messages(state)
    assert message.status == "success"
    assert isinstance(message.artifact, ImageGenerationResult)
    assert len(message.artifact.images) == 2
    for image in message.artifact.images:
        assert image.url and image.url in message.content
        assert image.revised_prompt and image.revised_prompt in message.content
    assert state["messages"][-1].content == "Here are two pictures of the reading nook."


@pytest.mark.vcr
async def test_create_agent_async(tool: ImageGenerationTool) -> None:
    model = scripted(calls_generate_image(prompt="A lighthouse at dawn"), AIMessage(content="Done."))
    state = await create_agent(model, tools=[tool]).ainvoke({"messages": [HumanMessage("A lighthouse")]})
    (message,) = tool_messages(state)
    assert message.status == "success"
    assert message.artifact.images[0].url in message.content


@pytest.mark.vcr
@pytest.mark.emulator_only
def test_tool_node_graph_survives_a_policy_refusal_and_recovers(
    tool: ImageGenerationTool, relay: RelayTarget
) -> None:
    relay.queue(Reply.content_policy())
    model = scripted(
        calls_generate_image(prompt="A violent battle scene"),
        calls_generate_image(prompt="Two knights saluting each other before a tournament"),
        AIMessage(content="I drew a friendlier tournament scene."),
    )
    state = tool_node_graph(tool, model).invoke({"messages": [HumanMessage("Draw a battle")]})
    refused, drawn = tool_messages(state)
    assert refused.status == "error"
    assert "content policy" in refused.content and "Rephrase" in refused.content
    assert drawn.status == "success"
    assert drawn.artifact.images


@pytest.mark.parametrize(
    "failure", [Reply.unauthorized(), Reply.rate_limited(), Reply.server_error(), Reply(body=b"{}")]
)
def test_tool_node_graph_never_crashes_on_api_failures(fake_relay: FakeRelay, failure: Reply) -> None:
    fake_relay.queue(failure)
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url, max_retries=0)
    model = scripted(calls_generate_image(prompt="A cat"), AIMessage(content="Sorry, no image today."))
    state = tool_node_graph(tool, model).invoke({"messages": [HumanMessage("Draw a cat")]})
    tool.client.close()
    (message,) = tool_messages(state)
    assert message.status == "error"
    assert state["messages"][-1].content == "Sorry, no image today."


def test_tool_node_graph_returns_invalid_arguments_to_the_model() -> None:
    tool = ImageGenerationTool(api_key="k", base_url="http://127.0.0.1:9/v1")  # never reached
    model = scripted(
        calls_generate_image(prompt="A cat", size="4000x4000"), AIMessage(content="Let me fix that.")
    )
    state = tool_node_graph(tool, model).invoke({"messages": [HumanMessage("Draw a huge cat")]})
    (message,) = tool_messages(state)
    assert message.status == "error"
    assert isinstance(message.content, str)
    assert message.content.startswith("Invalid arguments for generate_image: size:")
    assert "'1024x1024', '1024x1792' or '1792x1024'" in message.content


def test_create_agent_passes_the_end_user_of_each_run(fake_relay: FakeRelay) -> None:
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url)
    model = scripted(calls_generate_image(prompt="A lighthouse"), AIMessage(content="Done."))
    agent = create_agent(model, tools=[tool])
    agent.invoke(
        {"messages": [HumanMessage("Draw a lighthouse")]},
        config={"configurable": {"image_tool_user": "end-user-42"}},
    )
    tool.client.close()
    assert fake_relay.requests[0].json["user"] == "end-user-42"


def test_batch_runs_calls_concurrently(fake_relay: FakeRelay) -> None:
    fake_relay.queue(*[Reply.slow(1.0)] * 6)  # long enough for all six to arrive on a loaded machine
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url)
    texts = tool.batch([{"prompt": f"Cat {index}"} for index in range(6)], config={"max_concurrency": 6})
    tool.client.close()
    assert all(text.startswith("Generated 1 image") for text in texts)
    assert fake_relay.max_in_flight == 6


async def test_abatch_runs_calls_concurrently(fake_relay: FakeRelay) -> None:
    fake_relay.queue(*[Reply.slow(1.0)] * 8)
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url)
    texts = await tool.abatch(
        [{"prompt": f"Cat {index}"} for index in range(8)], config={"max_concurrency": 4}
    )
    await tool.client.aclose()
    assert len(texts) == 8
    assert fake_relay.max_in_flight == 4  # max_concurrency is honoured, and reached
