"""ImageClient: the settings of a relay checked at construction, and each call handed to the core
that runs it (``_async/generation.py``, and ``_sync/`` made from it)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

import httpx2
from pydantic import (
    ConfigDict,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from ._call import Call, ProgressCallback, Relay
from ._io.connection import refuse_httpx, resolve_connection
from ._io.pooling import AsyncPools, SyncPool
from ._policy.failover import Cooldowns, fallbacks_from_environment, most_per_image, settings_of
from ._policy.limits import AdaptiveLimit
from ._wire.request import extra_body_problem
from .catalog import ModelFamily, family_of
from .errors import ConfigurationError
from .models import (
    DEFAULT_N,
    AspectRatio,
    Background,
    ImageGenerationResult,
    ImageQuality,
    ImageResolution,
    ImageSize,
    ImageStyle,
    Moderation,
    OutputFormat,
)
from .settings import ClientSettings

# The cores are loaded by the first client made, not by `import image_tool`.
if TYPE_CHECKING:
    from ._async.generation import AsyncGeneration
    from ._async.tasks import AsyncTasks
    from ._sync.generation import SyncGeneration
    from ._sync.tasks import SyncTasks

__all__ = ["ImageClient", "ProgressCallback"]

_PER_RELAY = frozenset(
    {"api_key", "base_url", "name", "price_per_image", "price_per_million_tokens", "fallbacks"}
    | {"http_client", "http_async_client"}  # a fallback gets pools of its own
)


class ImageClient(ClientSettings):
    """Generates images through an OpenAI-compatible relay: its ``/chat/completions`` endpoint
    (chat relays and gateways) or its Images API, whichever draws the model (``image_tool.catalog``).

    Setup:
        Set ``IMAGE_TOOL_API_KEY`` and ``IMAGE_TOOL_BASE_URL``, or pass ``api_key`` and ``base_url``.

    Invoke:
        ```python
        client = ImageClient(save_dir="images")
        result = client.generate("A lighthouse at dawn", size="1792x1024")
        result = await client.agenerate("A lighthouse at dawn")
        print(result.images[0].url, result.images[0].path, result.images[0].revised_prompt)
        ```

    Failures raise the typed errors of ``image_tool.errors``, after ``max_retries`` retries of
    those that are safe to retry. The settings are ``ClientSettings``'s (``image_tool.settings``).
    """

    model_config = ConfigDict(extra="forbid")

    _sync: SyncGeneration = PrivateAttr()
    _async: AsyncGeneration = PrivateAttr()
    _sync_tasks: SyncTasks = PrivateAttr()
    _async_tasks: AsyncTasks = PrivateAttr()

    @model_validator(mode="wrap")
    @classmethod
    def _invalid_settings_are_configuration_errors(
        cls, data: Any, handler: ValidatorFunctionWrapHandler
    ) -> Any:
        try:
            return handler(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in issue['loc']) or 'settings'}: {issue['msg']}"
                for issue in error.errors()
            )
            # The values are left out: one of them may be the key.
            raise ConfigurationError(f"Invalid ImageClient settings: {problems}.") from None

    @model_validator(mode="before")
    @classmethod
    def _resolve_connection(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for setting in ("http_client", "http_async_client", "timeout"):
            refuse_httpx(setting, data.get(setting))
        api_key = data.get("api_key")
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        key, url = resolve_connection(
            api_key, data.get("base_url"), allow_insecure_http=bool(data.get("allow_insecure_http"))
        )
        fallbacks = data.get("fallbacks")
        return {
            **data,
            "api_key": key,
            "base_url": url,
            "fallbacks": fallbacks_from_environment() if fallbacks is None else fallbacks,
        }

    def model_post_init(self, context: Any, /) -> None:
        from ._async.generation import AsyncGeneration
        from ._async.tasks import AsyncTasks
        from ._sync.generation import SyncGeneration
        from ._sync.tasks import SyncTasks

        if problem := extra_body_problem(self.extra_body, self.family.api):
            raise ConfigurationError(problem)
        if self.image_jobs and self.family.api != "images":
            raise ConfigurationError(
                f"image_jobs=True draws on the Images API, and {self.model} is drawn on the "
                f"{self.family.api} endpoint: choose an Images API model (gpt-image-1), or api='images'."
            )
        # Each fallback relay gets a client of its own (its own pools), with this one's settings.
        fallbacks: list[ImageClient] = []
        if self.fallbacks:
            shared = [name for name in ClientSettings.model_fields if name not in _PER_RELAY]
            inherited = {name: getattr(self, name) for name in shared}
            fallbacks = [ImageClient(**settings_of(fallback, inherited)) for fallback in self.fallbacks]
        limit, cooldowns, relay = self.max_concurrency, Cooldowns(), Relay(self)
        adaptive = AdaptiveLimit(initial=min(8, limit), maximum=limit) if self.adaptive_concurrency else None
        sync_pools = SyncPool(max_concurrency=limit, injected=self.http_client)
        sync_fallbacks = [fallback._sync for fallback in fallbacks]
        self._sync = SyncGeneration(relay, sync_pools, sync_fallbacks, cooldowns, adaptive)
        async_pools = AsyncPools(max_concurrency=limit, injected=self.http_async_client)
        async_fallbacks = [fallback._async for fallback in fallbacks]
        self._async = AsyncGeneration(relay, async_pools, async_fallbacks, cooldowns, adaptive)
        self._sync_tasks = SyncTasks(relay, sync_pools, self._sync)
        self._async_tasks = AsyncTasks(relay, async_pools, self._async)

    @property
    def display_name(self) -> str:
        """This relay as results name it: ``name``, else its host."""
        return self.name or _host(self.base_url)

    @property
    def most_per_image(self) -> float | None:
        """The most one image may cost on any of the relays; ``None`` when one has no price."""
        relays = [relay.client for relay in self._sync.relays]
        prices = [most_per_image(relay.price_per_image, relay.price_per_million_tokens) for relay in relays]
        return None if None in prices else max(price for price in prices if price is not None)

    @property
    def family(self) -> ModelFamily:
        """What the model takes, and the endpoint that draws it."""
        return family_of(self.model, self.api)

    @property
    def endpoint(self) -> str:
        """The URL a generation is posted to (an Images API edit goes to ``/images/edits``)."""
        if self.family.api == "midjourney":  # at the relay's root, beside /v1
            from ._wire import midjourney

            return f"{midjourney.base_of(self.base_url)}{midjourney.SUBMIT_IMAGINE}"
        return f"{self.base_url}/{'chat/completions' if self.family.api == 'chat' else 'images/generations'}"

    def generate(
        self,
        prompt: str,
        *,
        n: int = DEFAULT_N,
        size: ImageSize | str | None = None,
        quality: ImageQuality | None = None,
        style: ImageStyle | None = None,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        output_compression: int | None = None,
        moderation: Moderation | None = None,
        aspect_ratio: AspectRatio | None = None,
        image_size: ImageResolution | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        user: str | None = None,
        image_urls: Sequence[str] = (),
        mask: str | None = None,
        on_progress: ProgressCallback | None = None,
        max_images: int | None = None,
        on_sending: Callable[[], object] | None = None,
        on_task: Callable[[str], object] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> ImageGenerationResult:
        """Generate ``n`` images for ``prompt``.

        The drawing options (``size`` to ``negative_prompt``) are those the model takes
        (``image_tool.catalog``); one it does not take raises ``InvalidRequestError`` naming the
        values it does, and ``None`` leaves an option to the model's default. ``size`` is one of
        the model's sizes, or for gpt-image-2 any ``WxH`` that keeps its rule
        (``catalog.CUSTOM_SIZE_RULE``). ``extra_body`` holds provider options for this call, over the
        client's ``extra_body`` key by key: one the catalog knows for the model is checked as its
        keyword is, any other is sent as it is (docs/models.md). ``user`` is the end
        user's id, for abuse monitoring. ``image_urls`` are earlier images to edit or draw from
        (http(s) links or ``data:`` URLs; the Images API takes ``data:`` URLs only), and ``mask``
        a PNG ``data:`` URL whose transparent pixels mark where to draw. With ``stream=True``,
        ``on_progress`` receives each ``GenerationProgress`` while the relay works, previews
        included. A relay may draw more than ``n`` images, and bill them: up to four times ``n``
        are kept (at most 16), or ``max_images`` when it is lower; ``dropped_images`` counts the
        rest, which are never downloaded. ``on_sending`` is called right before each attempt's
        request goes out, after any wait for a slot or a rate limit's pause (a durable batch
        records it: from then on the image may be billed); an exception from it stops the call,
        nothing sent. ``on_task`` is called with the relay's task id once a model drawn as a task
        (Midjourney) is submitted: a durable batch records it, to poll it again after a crash
        (``follow_task``). With ``save_dir``, every image kept is saved before this returns; an image
        that could not be saved keeps its link and says why in ``save_error``. Raises only the
        errors of ``image_tool.errors``.
        """
        call = Call.of(locals())
        if self.family.api == "midjourney":
            return self._sync_tasks.imagine(call)
        return self._sync_tasks.draw(call) if self.image_jobs else self._sync.generate(call)

    def run_action(
        self,
        task_id: str,
        action: str,
        *,
        on_progress: ProgressCallback | None = None,
        on_sending: Callable[[], object] | None = None,
    ) -> ImageGenerationResult:
        """Do ``action`` on the images of the relay's task ``task_id`` (a Midjourney grid's
        ``result.task_id``), one of its ``result.actions``: ``U1``-``U4`` upscales one image,
        ``V1``-``V4`` draws variations of one, ``reroll`` draws the grid again. One paid task,
        polled until it ends, as ``generate``'s."""
        return self._sync_tasks.act(task_id, action, _action_call(task_id, action, on_progress, on_sending))

    def follow_task(
        self, task_id: str, *, on_progress: ProgressCallback | None = None
    ) -> ImageGenerationResult:
        """Poll the relay's task ``task_id``, submitted earlier (a run that stopped while it was
        drawn), until it ends, and return its images, saved as ``generate``'s are. Nothing is
        submitted, so nothing more is paid."""
        return self._sync_tasks.follow(task_id, _action_call(task_id, "follow", on_progress, None))

    async def agenerate(
        self,
        prompt: str,
        *,
        n: int = DEFAULT_N,
        size: ImageSize | str | None = None,
        quality: ImageQuality | None = None,
        style: ImageStyle | None = None,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        output_compression: int | None = None,
        moderation: Moderation | None = None,
        aspect_ratio: AspectRatio | None = None,
        image_size: ImageResolution | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        user: str | None = None,
        image_urls: Sequence[str] = (),
        mask: str | None = None,
        on_progress: ProgressCallback | None = None,
        max_images: int | None = None,
        on_sending: Callable[[], object] | None = None,
        on_task: Callable[[str], object] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> ImageGenerationResult:
        """Async twin of ``generate``, on httpx2's AsyncClient: it never blocks the event loop.

        ``on_progress``, ``on_sending`` and ``on_task`` may be plain functions or coroutine functions.
        """
        call = Call.of(locals())
        if self.family.api == "midjourney":
            return await self._async_tasks.imagine(call)
        return await (self._async_tasks.draw(call) if self.image_jobs else self._async.generate(call))

    async def arun_action(
        self,
        task_id: str,
        action: str,
        *,
        on_progress: ProgressCallback | None = None,
        on_sending: Callable[[], object] | None = None,
    ) -> ImageGenerationResult:
        """Async twin of ``run_action``."""
        call = _action_call(task_id, action, on_progress, on_sending)
        return await self._async_tasks.act(task_id, action, call)

    async def afollow_task(
        self, task_id: str, *, on_progress: ProgressCallback | None = None
    ) -> ImageGenerationResult:
        """Async twin of ``follow_task``."""
        return await self._async_tasks.follow(task_id, _action_call(task_id, "follow", on_progress, None))

    def close(self) -> None:
        """Close the pooled sync connections (an injected ``http_client`` stays open)."""
        self._sync.close()

    async def aclose(self) -> None:
        """Close the pooled async connections of the running event loop."""
        await self._async.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@functools.lru_cache(maxsize=64)
def _host(url: str) -> str:
    return httpx2.URL(url).host


def _action_call(
    task_id: str, action: str, on_progress: ProgressCallback | None, on_sending: Callable[[], object] | None
) -> Call:
    return Call(f"{action} of task {task_id}", 1, {}, None, (), None, on_progress, on_sending=on_sending)
