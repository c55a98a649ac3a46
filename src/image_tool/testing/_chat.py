"""ScriptedChatModel: a chat model that answers from a script, for offline agent tests and demos."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field, PrivateAttr, SkipValidation

Turn = AIMessage | Callable[[Sequence[BaseMessage]], AIMessage]
"""A scripted answer, or a function of the conversation so far (to reuse a tool's result)."""


class ScriptedChatModel(BaseChatModel):
    """Answers each call with the next turn of its script; binding tools changes nothing.

    ```python
    model = ScriptedChatModel(script=[calls_tool("generate_image", prompt="A cat"), AIMessage("Done.")])
    agent = create_agent(model, tools=[ImageGenerationTool(...)])
    ```
    """

    script: Annotated[list[Turn], SkipValidation()] = Field(default_factory=list)
    _position: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self._position >= len(self.script):
            raise IndexError("ScriptedChatModel has no turn left in its script")
        turn = self.script[self._position]
        self._position += 1
        message = turn if isinstance(turn, AIMessage) else turn(messages)
        return ChatResult(generations=[ChatGeneration(message=message)])


def calls_tool(name: str, call_id: str = "call_1", **args: Any) -> AIMessage:
    """A model turn that calls one tool."""
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )
