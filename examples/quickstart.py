"""Generate an image through ImageGenerationTool, the way an agent calls it.

    python examples/quickstart.py "A lighthouse on a cliff at dawn"

With IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL set, it calls your relay. Without them it starts
FakeRelay, image-tool's built-in emulator, on 127.0.0.1, and says so. Either way the images are
saved in ./generated-images before their links expire.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

from langchain_core.messages import ToolMessage

from image_tool import ConfigurationError, ImageGenerationResult, ImageGenerationTool
from image_tool.testing import FakeRelay

SAVE_DIR = Path("generated-images")
DEFAULT_PROMPT = "A lighthouse on a cliff at dawn, waves breaking below, watercolour"


def main(argv: list[str]) -> int:
    prompt = " ".join(argv) or DEFAULT_PROMPT
    with ExitStack() as stack:
        try:
            tool = ImageGenerationTool(save_dir=SAVE_DIR)
            print(f"Calling the relay at {tool.client.base_url} (model {tool.client.model}).")
        except ConfigurationError:
            relay = stack.enter_context(FakeRelay())
            print(
                "No relay configured (set IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL to use yours):\n"
                f"using FakeRelay, the built-in emulator, at {relay.base_url}.\n"
            )
            tool = ImageGenerationTool(
                api_key=relay.api_key,
                base_url=relay.base_url,
                save_dir=SAVE_DIR,
                allow_private_downloads=True,
            )
        stack.callback(tool.client.close)

        print(f"generate_image(prompt={prompt!r}) ... (a real relay can take a minute or more)\n")
        message = tool.invoke(
            {"name": "generate_image", "args": {"prompt": prompt}, "id": "1", "type": "tool_call"}
        )
        assert isinstance(message, ToolMessage)
        print(f"What the model reads (status={message.status}):\n{message.content}\n")
        if not isinstance(message.artifact, ImageGenerationResult):
            return 1
        print(f"What the application gets (the artifact): {len(message.artifact.images)} image(s)")
        for image in message.artifact.images:
            print(f"  url={image.url}\n  saved={image.path or image.save_error}")
            print(f"  revised_prompt={image.revised_prompt!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
