"""An agent (langchain's create_agent) that draws an image, then edits it on the next request.

    python -m examples.agent

Offline by default (FakeRelay and a scripted chat model); with IMAGE_TOOL_API_KEY and
IMAGE_TOOL_BASE_URL set, a real chat model on the same relay (pip install langchain-openai).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from examples._support import chat_model, relay_settings
from image_tool import ImageGenerationResult, ImageGenerationTool
from image_tool.testing import Turn, calls_tool

SAVE_DIR = Path("generated-images")


def edit_last_image(messages: Sequence[BaseMessage]) -> AIMessage:
    """What a model does on "make the cat wear a hat": pass the earlier image as a reference."""
    artifact = [message for message in messages if isinstance(message, ToolMessage)][-1].artifact
    # A checkpointer stores the artifact as plain data: model_validate reads either form.
    last_image = ImageGenerationResult.model_validate(artifact).images[0]
    reference = str(last_image.path or last_image.url)
    return calls_tool(
        "generate_image", "call_2", prompt="The same cat, now wearing a red hat", image_urls=[reference]
    )


SCRIPT: list[Turn] = [
    calls_tool("generate_image", prompt="A ginger cat asleep on a green velvet sofa, warm light"),
    AIMessage("Here is your cat on the sofa."),
    edit_last_image,
    AIMessage("Done: the same cat, now with a red hat."),
]


def main() -> int:
    with relay_settings() as settings:
        tool = ImageGenerationTool(save_dir=SAVE_DIR, **settings)
        agent = create_agent(
            chat_model(SCRIPT), tools=[tool], system_prompt="You draw pictures for the user."
        )
        messages: list[BaseMessage] = []
        for request in ["Draw a cat sleeping on a sofa.", "Make the cat wear a red hat."]:
            print(f"\nuser: {request}")
            inputs: Any = {"messages": [*messages, HumanMessage(request)]}
            state = agent.invoke(inputs)
            new = state["messages"][len(messages) + 1 :]
            messages = state["messages"]
            for message in new:
                if isinstance(message, ToolMessage):
                    print(f"[generate_image, {message.status}]\n{message.content}")
            print(f"assistant: {messages[-1].content}")
        tool.client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
