"""Middleware for langchain's ``create_agent`` (``pip install 'image-tool[agents]'``).

```python
agent = create_agent(
    ChatOpenAI(model="gpt-4o"),
    tools=[ImageGenerationTool(show_images=True)],
    middleware=[ImagesToUserMessageMiddleware()],
)
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, AnyMessage

from .messages import move_images_to_user_message

__all__ = ["ImagesToUserMessageMiddleware"]


class ImagesToUserMessageMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Shows the model the images of tool messages in a user message, for OpenAI's Chat
    Completions API, which takes images only from the user.

    Only the model call sees the change (``move_images_to_user_message``); the agent's state keeps
    the tool messages as the tools returned them.
    """

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage:
        return handler(_with_images_moved(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        return await handler(_with_images_moved(request))


def _with_images_moved(request: ModelRequest[Any]) -> ModelRequest[Any]:
    # The messages are the request's own, or copies of its tool messages, or new user messages.
    messages = cast("list[AnyMessage]", move_images_to_user_message(request.messages))
    return request.override(messages=messages)
