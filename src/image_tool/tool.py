"""ImageGenerationTool: the client as a LangChain tool, with arguments and answers written for a model."""

# No `from __future__ import annotations` here: LangChain reads _run/_arun's type hints on every
# call, and evaluating string annotations each time doubled the tool's overhead.
import asyncio
import base64
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# LangChain's tools module first: it loads quicker so (docs/performance.md, choices in the code).
from langchain_core.tools import ArgsSchema, BaseTool, ToolException

# isort: split
from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    CallbackManagerForToolRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.runnables import RunnableConfig, patch_config
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from ._io.references import reference_urls
from ._policy.budget import Budget
from ._tool.advice import describe_failure, describe_invalid_arguments, describe_result
from ._tool.arguments import GenerateImageInput, arguments_for
from ._tool.image_ids import Conversation, ImageIds
from ._wire.imagetypes import base64_mime_type, mime_type
from .catalog import OPTION_NAMES
from .client import ImageClient
from .errors import ConfigurationError, ImageToolError, InvalidRequestError
from .models import GeneratedImage, GenerationProgress, ImageGenerationResult
from .settings import ClientSettings

if TYPE_CHECKING:
    from .settings import ToolKeywords, takes_keywords_of

MAX_SHOWN_BYTES = 1_000_000
"""A saved image larger than this is shown to the model by its link, not inline."""
logger = logging.getLogger("image_tool")

PROGRESS_EVENT = "image_generation_progress"
"""Name of the custom event (and LangGraph custom-stream key) that carries streamed progress."""
USER_CONFIG_KEY = "image_tool_user"
"""Key in ``config["configurable"]`` that sets the end user's id for one run."""
THREAD_CONFIG_KEY = "thread_id"
"""Key in ``config["configurable"]`` of the conversation (LangGraph's thread) the image ids belong to."""


def image_block(image: GeneratedImage) -> dict[str, Any] | None:
    """A standard image content block: a saved file up to ``MAX_SHOWN_BYTES`` inline, else the URL."""
    if image.path is not None:
        try:
            if image.path.stat().st_size <= MAX_SHOWN_BYTES:
                data = image.path.read_bytes()
                encoded = base64.b64encode(data).decode()
                return {"type": "image", "base64": encoded, "mime_type": mime_type(data[:16])}
        except OSError:
            pass  # removed since it was saved: the link (or inline copy) still shows it
    if image.url:
        return {"type": "image", "url": image.url}
    if image.b64_json and len(image.b64_json) <= MAX_SHOWN_BYTES * 4 // 3:
        return {"type": "image", "base64": image.b64_json, "mime_type": base64_mime_type(image.b64_json)}
    return None


class ImageGenerationTool(BaseTool):
    """Generates images from a text prompt, for an agent.

    Setup:
        Set ``IMAGE_TOOL_API_KEY`` and ``IMAGE_TOOL_BASE_URL``.

    Instantiate:
        ```python
        tool = ImageGenerationTool()                          # from the environment
        tool = ImageGenerationTool(api_key="...", base_url="https://relay.example.com/v1")
        tool = ImageGenerationTool(client=ImageClient(...), user="end-user-42")
        ```

    Invoke:
        ```python
        message = tool.invoke(
            {"name": "generate_image", "args": {"prompt": "A cat in a tree"},
             "id": "call_1", "type": "tool_call"}
        )
        message.content    # URLs and revised prompts, for the model
        message.artifact   # the ImageGenerationResult
        ```

    A failure comes back as a ``ToolMessage`` with ``status="error"`` and a sentence telling the
    model what to do; it never raises into the agent.
    """

    model_config = ConfigDict(defer_build=True)

    name: str = "generate_image"
    description: str = (
        "Generate images from a text description. Use it when the user asks you to draw, create, "
        "illustrate, design or picture something (a photo, illustration, logo, poster, scene). "
        "Returns the URL of each image and the prompt the service actually drew (it may revise "
        "yours). Give the user the URLs; they expire after a while. A generation can take a "
        "minute or more."
    )
    args_schema: ArgsSchema | None = GenerateImageInput
    """The arguments the model sees: by default those the client's model takes
    (``image_tool._tool.arguments``); ``GenerateImageInput`` for the vendor's gpt-4o-image."""
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Callable[..., Any] | None = True
    handle_validation_error: bool | str | Callable[..., str] | None = describe_invalid_arguments

    client: ImageClient = Field(default_factory=ImageClient)
    """The client that makes the calls. Default: one built from the client's settings given to
    the tool as keywords (``api_key``, ``base_url``, ``model``, ``timeout``...: every field of
    ``ClientSettings``), else from the environment."""
    user: str | None = None
    """The end user's id, sent for abuse monitoring. Set by the application, never by the model;
    ``config={"configurable": {"image_tool_user": ...}}`` overrides it for one run."""
    max_images: int | None = Field(default=None, ge=0)
    """How many images this tool may generate over its life (``None``: no limit). Past it the
    model is told plainly that the budget is spent; a runaway agent cannot spend more."""
    max_cost: float | None = Field(default=None, ge=0)
    """How much this tool may spend over its life, in the relays' prices (``price_per_image`` or
    ``price_per_million_tokens``, which every relay of the client must then have). Each call
    reserves its worst case and settles at what the answer cost."""
    max_images_per_user: int | None = Field(default=None, ge=0)
    """How many images each end user (``user``, or ``image_tool_user`` in the run's config) may
    generate through this tool, within ``max_images`` for all of them together."""
    max_cost_per_user: float | None = Field(default=None, ge=0)
    """How much each end user may spend, within ``max_cost`` for all of them together."""

    image_dirs: list[Path] | None = None
    """Directories whose image files the model may pass in ``image_urls`` (for edits of saved
    images). Default: the client's ``save_dir``. Files anywhere else are refused."""
    show_images: bool = False
    """Also return the images to the model as image content blocks, for vision models: the saved
    file (up to 1 MB, base64), else the URL. Off by default: text-only models and context stay safe."""

    _budget: Budget = PrivateAttr()
    _user_budgets: dict[str | None, Budget] = PrivateAttr(default_factory=dict)
    _user_budgets_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _ids: ImageIds = PrivateAttr()

    if TYPE_CHECKING:
        # Type checkers see every keyword the tool takes: its own fields and the client's
        # settings (ToolKeywords), each declared once.
        @takes_keywords_of(ToolKeywords)
        def __init__(self, **keywords: Any) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _client_from_settings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        settings = {key: data[key] for key in ClientSettings.model_fields if key in data}
        if not settings:
            return data
        if data.get("client") is not None:
            raise ConfigurationError(
                f"Pass either client= or client settings ({', '.join(settings)}), not both."
            )
        rest = {key: value for key, value in data.items() if key not in settings}
        return {**rest, "client": ImageClient(**settings)}

    @model_validator(mode="after")
    def _arguments_and_budget(self) -> "ImageGenerationTool":
        if "args_schema" not in self.model_fields_set:
            self.args_schema = arguments_for(self.client.family)
        per_image = self.client.most_per_image
        if (self.max_cost is not None or self.max_cost_per_user is not None) and per_image is None:
            raise ConfigurationError(
                "max_cost and max_cost_per_user need the relays' prices: set price_per_image or "
                "price_per_million_tokens on the client and on each of its fallbacks."
            )
        self._budget = Budget(self.max_images, self.max_cost, per_image)
        self._ids = ImageIds(self.client.save_dir)
        return self

    # Both return (content, artifact): ``(str | list[str | dict], ImageGenerationResult)``. Annotated
    # ``Any``, as BaseTool's are: LangChain evaluates these hints on every call (docs/performance.md,
    # choices in the code). ``prompt`` comes first: a plain string input (``invoke("A cat")``)
    # is passed as the one positional argument.
    def _run(
        self,
        prompt: str,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **arguments: Any,
    ) -> Any:
        call, conversation = self._call(prompt, arguments), self._conversation(config)
        on_progress = self._on_progress(config, run_manager, dispatch_custom_event)
        budget = self._budget_of(conversation[1])
        with _failures_as_advice(), budget.spending(call.get("n", 1)) as spending:
            if task_action := self._task_action(call, conversation):
                result = self.client.run_action(
                    *task_action, on_progress=on_progress, on_sending=spending.sending
                )
            else:
                prompt, keywords = self._with_references(call, conversation)
                room, user = spending.room(), conversation[1]
                result = self.client.generate(
                    prompt,
                    **keywords,
                    user=user,
                    on_progress=on_progress,
                    max_images=room,
                    on_sending=spending.sending,
                )
            result = _kept(result, spending.settle(len(result.images), result.cost))
        return self._content(result, self._named(conversation, result), budget), result

    async def _arun(
        self,
        prompt: str,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **arguments: Any,
    ) -> Any:
        call, conversation = self._call(prompt, arguments), self._conversation(config)
        on_progress = self._on_progress(config, run_manager, adispatch_custom_event)
        # Files (references, saved images, the ids' index) are read and written off the event loop.
        on_disk = self._ids.on_disk(conversation)
        budget = self._budget_of(conversation[1])
        with _failures_as_advice(), budget.spending(call.get("n", 1)) as spending:
            action_on_disk = on_disk and call.get("action")
            if task_action := await _maybe_off_loop(action_on_disk, self._task_action, call, conversation):
                result = await self.client.arun_action(
                    *task_action, on_progress=on_progress, on_sending=spending.sending
                )
            else:
                local = call.get("image_urls") or call.get("mask")
                prompt, keywords = await _maybe_off_loop(local, self._with_references, call, conversation)
                room, user = spending.room(), conversation[1]
                result = await self.client.agenerate(
                    prompt,
                    **keywords,
                    user=user,
                    on_progress=on_progress,
                    max_images=room,
                    on_sending=spending.sending,
                )
            result = _kept(result, spending.settle(len(result.images), result.cost))
        ids = await _maybe_off_loop(on_disk, self._named, conversation, result)
        return self._content(result, ids, budget), result

    def _on_progress(
        self,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
        dispatch: Callable[..., object],
    ) -> Callable[[GenerationProgress], object] | None:
        """What hands each progress update of a streamed answer (the only kind that reports any)
        to LangChain's custom events of this run (``dispatch``: ``adispatch_custom_event`` when
        async, whose coroutine the client awaits) and to LangGraph's ``custom`` stream."""
        if not self.client.stream:
            return None
        events, stream_writer = _progress_channels(config, run_manager)

        def on_progress(update: GenerationProgress) -> object:
            payload = update.model_dump()
            if stream_writer is not None:
                stream_writer({PROGRESS_EVENT: payload})
            return None if events is None else dispatch(PROGRESS_EVENT, payload, config=events)

        return on_progress

    @property
    def argument_model(self) -> type[BaseModel]:
        """The pydantic model of the arguments the model sees (``args_schema``'s, when it is one)."""
        schema = self.args_schema
        return schema if isinstance(schema, type) and issubclass(schema, BaseModel) else GenerateImageInput

    def _call(self, prompt: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The model's arguments with every default filled in (LangChain validated them, and
        passes on only those the model gave)."""
        return dict(self.argument_model.model_construct(prompt=prompt, **arguments))

    def _with_references(
        self, call: dict[str, Any], conversation: Conversation
    ) -> tuple[str, dict[str, Any]]:
        """The prompt, and ``generate``'s keywords: the options the model chose, and the images to
        edit (and the mask) as URLs: an image id of this conversation as its saved file or link,
        another local file only from the allowed directories."""
        allowed = self.image_dirs if self.image_dirs is not None else [self.client.save_dir]
        directories = [directory for directory in allowed if directory]
        keywords = {name: call[name] for name in ("n", *OPTION_NAMES) if name in call}
        references = [self._ids.resolve(conversation, value) for value in call.get("image_urls") or []]
        keywords["image_urls"] = reference_urls(references, directories)
        if call.get("mask"):
            keywords["mask"] = reference_urls([self._ids.resolve(conversation, call["mask"])], directories)[0]
        return call["prompt"], keywords

    def _task_action(self, call: dict[str, Any], conversation: Conversation) -> tuple[str, str] | None:
        """``(task_id, action)`` when the model asked for an action on a grid (Midjourney); the
        grid may be named by its image id."""
        action, task_id = call.get("action"), call.get("task_id")
        if not action:
            return None
        if not task_id:
            raise InvalidRequestError(
                f"action {action!r} needs the task_id (or image id) this tool reported for the grid."
            )
        return self._ids.task_of(conversation, task_id), action

    def _named(self, conversation: Conversation, result: ImageGenerationResult) -> list[str]:
        """The ids of ``result``'s images in ``conversation``; none when naming failed (logged):
        the images, paid for, are returned all the same."""
        try:
            return self._ids.name(conversation, result.images, result.task_id)
        except Exception:
            logger.error("generate_image could not name its images", exc_info=True)
            return []

    def _conversation(self, config: RunnableConfig | None) -> Conversation:
        """Whose image ids these are: the run's LangGraph thread, and its end user."""
        thread_id = (config or {}).get("configurable", {}).get(THREAD_CONFIG_KEY)
        return (None if thread_id is None else str(thread_id)), self._user(config)

    def _budget_of(self, user: str | None) -> Budget:
        """The budget a call of ``user`` spends: the user's own, within the tool's; the tool's
        alone without limits per user."""
        if self.max_images_per_user is None and self.max_cost_per_user is None:
            return self._budget
        with self._user_budgets_lock:
            budget = self._user_budgets.get(user)
            if budget is None:
                limits = (self.max_images_per_user, self.max_cost_per_user, self._budget.per_image)
                budget = self._user_budgets[user] = Budget(*limits, outer=self._budget)
        return budget

    def _content(
        self, result: ImageGenerationResult, ids: list[str], budget: Budget
    ) -> str | list[str | dict[str, Any]]:
        """The text for the model; with ``show_images``, the images too, as image content blocks."""
        text = describe_result(result, ids, *budget.left())
        if not self.show_images:
            return text
        return [{"type": "text", "text": text}, *filter(None, map(image_block, result.images))]

    def _user(self, config: RunnableConfig | None) -> str | None:
        # ``run``/``arun`` called without a config pass None.
        per_run = (config or {}).get("configurable", {}).get(USER_CONFIG_KEY)
        return str(per_run) if per_run is not None else self.user


def _kept(result: ImageGenerationResult, count: int) -> ImageGenerationResult:
    """``result`` with at most ``count`` images, the rest counted as dropped."""
    if count >= len(result.images):
        return result
    dropped = result.dropped_images + len(result.images) - count
    return result.model_copy(update={"images": result.images[:count], "dropped_images": dropped})


async def _maybe_off_loop(off_loop: object, function: Callable[..., Any], *arguments: Any) -> Any:
    """``function(*arguments)``, on a worker thread when ``off_loop`` (it reads or writes files)."""
    return await asyncio.to_thread(function, *arguments) if off_loop else function(*arguments)


@contextmanager
def _failures_as_advice() -> Iterator[None]:
    """Every failure of a call becomes a ``ToolException`` with advice for the model, so that no
    failure of any kind crashes an agent's graph."""
    try:
        yield
    except ToolException:
        raise
    except Exception as error:
        if not isinstance(error, ImageToolError):
            logger.error("generate_image failed unexpectedly", exc_info=True)
        raise ToolException(describe_failure(error)) from error


def _progress_channels(
    config: RunnableConfig | None,
    run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
) -> tuple[RunnableConfig | None, Callable[[Any], None] | None]:
    """Where a run's progress goes: LangChain custom events of this tool run (seen by callback
    handlers and ``astream_events``), and LangGraph's ``custom`` stream when inside a graph."""
    events = patch_config(config, callbacks=run_manager.get_child()) if run_manager else None
    get_stream_writer = _langgraph_stream_writer()
    try:
        writer = get_stream_writer() if get_stream_writer else None
    except (RuntimeError, KeyError):  # not inside a LangGraph graph
        writer = None
    return events, writer


@functools.cache
def _langgraph_stream_writer() -> Callable[[], Callable[[Any], None]] | None:
    """LangGraph's ``get_stream_writer``, when LangGraph is installed (it is optional)."""
    try:
        from langgraph.config import get_stream_writer
    except ImportError:
        return None
    return get_stream_writer
