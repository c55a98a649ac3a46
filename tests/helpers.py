"""Small builders shared by the tests."""

from __future__ import annotations

from typing import Any


def tool_call(**args: Any) -> dict[str, Any]:
    """A model's call of generate_image, as LangChain hands it to the tool."""
    return {"name": "generate_image", "args": args, "id": "call_1", "type": "tool_call"}
