"""What every example needs: a relay (yours, or FakeRelay), and a chat model (real, or scripted)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from image_tool.testing import FakeRelay, Reply, ScriptedChatModel, Turn


def relay_is_configured() -> bool:
    return bool(os.environ.get("IMAGE_TOOL_API_KEY") and os.environ.get("IMAGE_TOOL_BASE_URL"))


@contextmanager
def relay_settings() -> Iterator[dict[str, Any]]:
    """ImageClient settings: your relay's (from the environment), else FakeRelay's, said aloud."""
    if relay_is_configured():
        print(f"Using the relay at {os.environ['IMAGE_TOOL_BASE_URL']}.")
        yield {}
        return
    # Markdown answers, as most relays give them, with progress text when streamed.
    with FakeRelay(default_reply=Reply.success("markdown", pace=0.01)) as relay:
        print(f"No relay configured: using FakeRelay at {relay.base_url} and a scripted chat model.")
        yield {"api_key": relay.api_key, "base_url": relay.base_url, "allow_private_downloads": True}


def chat_model(script: Sequence[Turn]) -> BaseChatModel:
    """A real chat model on the same relay when it is configured (langchain-openai), else the script."""
    if not relay_is_configured():
        return ScriptedChatModel(script=list(script))
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=os.environ.get("IMAGE_TOOL_CHAT_MODEL", "gpt-4o-mini"),
        base_url=os.environ["IMAGE_TOOL_BASE_URL"],
        api_key=SecretStr(os.environ["IMAGE_TOOL_API_KEY"]),
    )
