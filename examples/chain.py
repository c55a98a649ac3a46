"""LangChain chains: a model writes the image prompt and the tool draws it; then a batch at once.

    python -m examples.chain

Offline by default (FakeRelay and a scripted chat model); with IMAGE_TOOL_API_KEY and
IMAGE_TOOL_BASE_URL set, a real chat model on the same relay (pip install langchain-openai).
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from examples._support import chat_model, relay_settings
from image_tool import ImageGenerationTool

SCRIPT = [AIMessage("An art-deco travel poster of Lisbon: yellow tram, tiled facades, evening sun")]


def main() -> int:
    with relay_settings() as settings:
        tool = ImageGenerationTool(**settings)
        poster = (
            ChatPromptTemplate.from_template(
                "Write a one-sentence image prompt for a travel poster of {city}."
            )
            | chat_model(SCRIPT)
            | StrOutputParser()
            | (lambda prompt: {"prompt": prompt, "size": "1024x1792"})
            | tool
        )
        print(poster.invoke({"city": "Lisbon"}))

        prompts: list[Any] = [
            {"prompt": f"A watercolour of {animal}"} for animal in ("a fox", "a heron", "an owl")
        ]
        started = time.perf_counter()
        drawn = tool.batch(prompts, config={"max_concurrency": 3})
        print(f"\nbatch of {len(drawn)} in {time.perf_counter() - started:.2f} s:")
        for text in drawn:
            print(text.splitlines()[1])
        tool.client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
