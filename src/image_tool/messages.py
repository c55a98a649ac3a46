"""Images that tools return, moved out of tool messages into a user message.

OpenAI's Chat Completions API takes images only in user messages, and langchain-openai sends the
image blocks of a ``ToolMessage`` as ``image_url`` parts of the ``role: "tool"`` message, which the
API answers with 400 "Image URLs are only allowed for messages with role 'user'". Anthropic, Gemini
and OpenAI's Responses API take images in tool results as they are (docs/images-to-the-model.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

IMAGE_BLOCK_TYPES = frozenset({"image", "image_url"})
"""Standard image blocks, and OpenAI's own ``image_url`` parts."""
IMAGES_FOLLOW = "(the images follow in the next message)"
"""What a tool message says in place of the images it gave away."""


def move_images_to_user_message(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation with the image blocks of tool messages moved into one user message, right
    after the last tool message of each turn (tool calls must be answered before anything else).

    Each block moves as it is, with its own MIME type or URL; the tool message keeps its text and
    says where the images went. Messages without images come back unchanged. For a chain:
    ``RunnableLambda(move_images_to_user_message) | ChatOpenAI(...)``.
    """
    moved: list[BaseMessage] = []
    images: list[str | dict[str, Any]] = []  # of the tool messages since the last other message
    for message in messages:
        if isinstance(message, ToolMessage):
            message, found = _without_images(message)
            images.extend(found)
        elif images:
            moved.append(HumanMessage(images))
            images = []
        moved.append(message)
    if images:
        moved.append(HumanMessage(images))
    return moved


def _without_images(message: ToolMessage) -> tuple[ToolMessage, list[str | dict[str, Any]]]:
    """The tool message without its image blocks, and those blocks under a line naming the call."""
    if isinstance(message.content, str):
        return message, []
    kept: list[str | dict[str, Any]] = []
    images: list[str | dict[str, Any]] = []
    for block in message.content:
        is_image = isinstance(block, dict) and block.get("type") in IMAGE_BLOCK_TYPES
        (images if is_image else kept).append(block)
    if not images:
        return message, []
    kept.append({"type": "text", "text": IMAGES_FOLLOW})
    caller = f"{message.name or 'the tool'} (call {message.tool_call_id})"
    heading: dict[str, Any] = {"type": "text", "text": f"The images returned by {caller}:"}
    return message.model_copy(update={"content": kept}), [heading, *images]
