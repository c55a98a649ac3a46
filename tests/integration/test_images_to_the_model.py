"""Images of a tool message on their way back to the model: what each provider package sends (built
offline, never sent), and ImagesToUserMessageMiddleware / move_images_to_user_message, which move
them into a user message for OpenAI's Chat Completions API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI
from pydantic import Field

from image_tool import ImageGenerationTool, move_images_to_user_message
from image_tool.agents import ImagesToUserMessageMiddleware
from image_tool.messages import IMAGES_FOLLOW
from image_tool.testing import FakeRelay, ScriptedChatModel

from ..helpers import calls_generate_image, tool_call

NOWHERE = "http://127.0.0.1:9/v1"  # the discard port: the payloads are built, never sent


class RecordingChatModel(ScriptedChatModel):
    """A scripted model that keeps the messages of each call."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


@pytest.fixture
def showing(fake_relay: FakeRelay, tmp_path: Path) -> Iterator[ImageGenerationTool]:
    """Shows each image saved, as base64."""
    tool = ImageGenerationTool(
        api_key=fake_relay.api_key,
        base_url=fake_relay.base_url,
        save_dir=tmp_path,
        allow_private_downloads=True,
        show_images=True,
    )
    yield tool
    tool.client.close()


@pytest.fixture(params=["base64", "url"])
def shown(request: pytest.FixtureRequest, fake_relay: FakeRelay, tmp_path: Path) -> ToolMessage:
    """The tool's own message: a saved image inline (base64), or an unsaved one by its URL."""
    saving = request.param == "base64"
    tool = ImageGenerationTool(
        api_key=fake_relay.api_key,
        base_url=fake_relay.base_url,
        save_dir=tmp_path if saving else None,
        allow_private_downloads=saving,
        show_images=True,
    )
    message = tool.invoke(tool_call(prompt="A cat"))
    tool.client.close()
    assert isinstance(message, ToolMessage)
    assert request.param in text_and_image(message)[1]
    return message


def conversation(*tool_messages: ToolMessage) -> list[BaseMessage]:
    calls = [tool_call(prompt="A cat") | {"id": message.tool_call_id} for message in tool_messages]
    return [HumanMessage("Draw a cat"), AIMessage("", tool_calls=calls), *tool_messages]


def text_and_image(message: BaseMessage) -> tuple[str, dict[str, Any]]:
    assert isinstance(message.content, list)
    text, image = message.content
    assert isinstance(text, dict) and isinstance(image, dict)
    return text["text"], image


def data_url(image: dict[str, Any]) -> str:
    """The URL OpenAI is sent for a standard image block."""
    return image["url"] if "url" in image else f"data:{image['mime_type']};base64,{image['base64']}"


def openai_chat() -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o", api_key="dummy", base_url=NOWHERE)  # type: ignore[arg-type]


# What the provider packages send for a tool message with images (pinned, so an upgrade that changes
# it is noticed; docs/images-to-the-model.md explains what each provider makes of it).


def test_openai_chat_sends_the_images_as_image_url_parts_of_the_tool_message(shown: ToolMessage) -> None:
    text, image = text_and_image(shown)
    payload = openai_chat()._get_request_payload(conversation(shown))
    assert payload["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": data_url(image)}},
        ],
    }


def test_openai_responses_sends_the_images_as_input_images_of_the_function_output(shown: ToolMessage) -> None:
    text, image = text_and_image(shown)
    model = ChatOpenAI(model="gpt-4o", api_key="dummy", base_url=NOWHERE, use_responses_api=True)  # type: ignore[arg-type]
    payload = model._get_request_payload(conversation(shown))
    assert payload["input"][-1] == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": [
            {"type": "input_text", "text": text},
            {"type": "input_image", "image_url": data_url(image)},
        ],
    }


def test_anthropic_sends_the_images_as_image_blocks_of_the_tool_result(shown: ToolMessage) -> None:
    text, image = text_and_image(shown)
    source = (
        {"type": "url", "url": image["url"]}
        if "url" in image
        else {"type": "base64", "media_type": image["mime_type"], "data": image["base64"]}
    )
    model = ChatAnthropic(model_name="claude-sonnet-4-5", api_key="dummy", base_url=NOWHERE)  # type: ignore[arg-type, call-arg]
    payload = model._get_request_payload(conversation(shown))
    assert payload["messages"][-1] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "call_1",
                "is_error": False,
                "content": [{"type": "text", "text": text}, {"type": "image", "source": source}],
            }
        ],
    }


# move_images_to_user_message


def test_the_images_of_one_turn_follow_its_last_tool_message_with_their_own_mime_types() -> None:
    jpeg = {"type": "image", "base64": "/9j/4AAQ", "mime_type": "image/jpeg"}
    link = {"type": "image", "url": "https://relay.example/a.webp"}
    first = ToolMessage([{"type": "text", "text": "One"}, jpeg], tool_call_id="call_1", name="generate_image")
    second = ToolMessage([link], tool_call_id="call_2", name="generate_image")
    plain = ToolMessage("No image", tool_call_id="call_3")
    messages = [*conversation(first, second, plain), AIMessage("Here they are."), HumanMessage("Thanks")]

    moved = move_images_to_user_message(messages)

    assert moved[:2] == messages[:2]
    assert moved[2].content == [{"type": "text", "text": "One"}, {"type": "text", "text": IMAGES_FOLLOW}]
    assert moved[3].content == [{"type": "text", "text": IMAGES_FOLLOW}]
    assert moved[4] is plain
    assert isinstance(moved[5], HumanMessage)
    assert moved[5].content == [
        {"type": "text", "text": "The images returned by generate_image (call call_1):"},
        jpeg,
        {"type": "text", "text": "The images returned by generate_image (call call_2):"},
        link,
    ]
    assert moved[6:] == messages[5:]
    assert first.content == [{"type": "text", "text": "One"}, jpeg]  # the messages given stay as they were

    payload = openai_chat()._get_request_payload(moved)
    assert payload["messages"][5]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"},
    }
    assert payload["messages"][5]["content"][3] == {"type": "image_url", "image_url": {"url": link["url"]}}


def test_messages_without_images_are_unchanged() -> None:
    messages = [*conversation(ToolMessage("Saved at a.png", tool_call_id="call_1")), AIMessage("Done.")]
    assert move_images_to_user_message(messages) == messages


def test_in_a_chain_before_the_model(shown: ToolMessage) -> None:
    model = RecordingChatModel(script=[AIMessage("A cat.")])
    chain = RunnableLambda(move_images_to_user_message) | model
    assert chain.invoke(conversation(shown)).content == "A cat."
    *_, tool_message, user_message = model.seen[0]
    assert isinstance(tool_message, ToolMessage) and isinstance(user_message, HumanMessage)
    assert user_message.content[1] == shown.content[1]


# ImagesToUserMessageMiddleware in create_agent


def agent_model() -> RecordingChatModel:
    return RecordingChatModel(script=[calls_generate_image(prompt="A cat"), AIMessage("A cat on a sofa.")])


def assert_images_follow_the_tool_message(model: RecordingChatModel, state: dict[str, Any]) -> None:
    """The second model call saw the images in a user message, the state kept them in the tool's."""
    *_, kept, answer = state["messages"]
    assert answer.content == "A cat on a sofa."
    text, image = text_and_image(kept)
    assert image["mime_type"] == "image/png"

    _, second_call = model.seen
    tool_at = next(index for index, message in enumerate(second_call) if isinstance(message, ToolMessage))
    tool_message, user_message = second_call[tool_at : tool_at + 2]
    assert tool_message.content == [{"type": "text", "text": text}, {"type": "text", "text": IMAGES_FOLLOW}]
    assert isinstance(user_message, HumanMessage)
    assert user_message.content[1:] == [image]
    assert len(second_call) == tool_at + 2

    # What OpenAI's Chat Completions API is then sent: images in the user message only.
    sent = openai_chat()._get_request_payload(second_call)["messages"]
    image_parts = {
        message["role"]: [part for part in message["content"] if part["type"] == "image_url"]
        for message in sent
        if isinstance(message["content"], list)
    }
    assert image_parts == {"tool": [], "user": [{"type": "image_url", "image_url": {"url": data_url(image)}}]}


def test_create_agent_shows_the_images_in_a_user_message(showing: ImageGenerationTool) -> None:
    model = agent_model()
    agent = create_agent(model, tools=[showing], middleware=[ImagesToUserMessageMiddleware()])
    state = agent.invoke({"messages": [HumanMessage("Draw a cat")]})
    assert_images_follow_the_tool_message(model, state)


async def test_create_agent_async_shows_the_images_in_a_user_message(showing: ImageGenerationTool) -> None:
    model = agent_model()
    agent = create_agent(model, tools=[showing], middleware=[ImagesToUserMessageMiddleware()])
    state = await agent.ainvoke({"messages": [HumanMessage("Draw a cat")]})
    assert_images_follow_the_tool_message(model, state)


def test_without_the_middleware_the_images_stay_in_the_tool_message(showing: ImageGenerationTool) -> None:
    model = agent_model()
    state = create_agent(model, tools=[showing]).invoke({"messages": [HumanMessage("Draw a cat")]})
    second_call = model.seen[1]
    assert isinstance(second_call[-1], ToolMessage)
    assert second_call[-1].content == state["messages"][2].content
    assert text_and_image(second_call[-1])[1]["type"] == "image"
    sent = openai_chat()._get_request_payload(second_call)["messages"]
    assert sent[-1]["role"] == "tool"
    assert sent[-1]["content"][1]["type"] == "image_url"
