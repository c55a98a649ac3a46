"""ImageClient: building the request, sending it (sync and async), retries, reading the answer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
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

from ._io.connection import refuse_httpx, resolve_connection
from ._io.pooling import LoopPools, SyncPool
from ._policy.failover import (
    Cooldowns,
    cost_of,
    fails_over,
    fallbacks_from_environment,
    most_per_image,
    settings_of,
)
from ._policy.limits import AdaptiveLimit, Slot
from ._policy.retries import Deadline, aretried, retried
from ._version import __version__
from ._wire.body import ACCEPT_ENCODING, UnreadableBodyError, araw_chunks, raw_chunks, received_encoding
from ._wire.redaction import scrub
from ._wire.request import ImageRequest, build_request
from .catalog import ModelFamily, family_of
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    ImageToolError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
)
from .models import (
    DEFAULT_N,
    AspectRatio,
    Background,
    GeneratedImage,
    GenerationProgress,
    ImageGenerationResult,
    ImageQuality,
    ImageSize,
    ImageStyle,
    Moderation,
    OutputFormat,
)
from .settings import ClientSettings

# Reading answers and saving images are loaded by the first call that needs them, which keeps
# `import image_tool` quick (benchmarks/run.py, import times).
if TYPE_CHECKING:
    from ._io.storage import SaveOptions
    from ._wire.answer import AnswerReader

logger = logging.getLogger("image_tool")

_PER_RELAY = frozenset(
    {"api_key", "base_url", "name", "price_per_image", "price_per_million_tokens", "fallbacks"}
    | {"http_client", "http_async_client"}  # a fallback gets pools of its own
)

OFF_LOOP_BYTES = 1024 * 1024
"""An async answer larger than this is parsed on a worker thread, not on the event loop."""

_SAVING = GenerationProgress(stage="saving", text="saving images")
ProgressCallback = Callable[[GenerationProgress], object]
"""Receives each progress update of a streamed generation; async callers may pass a coroutine function."""


@dataclass
class _Exchange:
    answered: bool = False
    """Whether a successful answer had begun (a 2xx status arrived): the generation may be billed."""
    status_code: int | None = None


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

    _sync_pool: SyncPool = PrivateAttr()
    _loop_pools: LoopPools = PrivateAttr()
    _fallback_clients: list[ImageClient] = PrivateAttr()
    _cooldowns: Cooldowns = PrivateAttr()
    _adaptive: AdaptiveLimit | None = PrivateAttr()
    _headers: httpx2.Headers | None = PrivateAttr(default=None)

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
        self._sync_pool = SyncPool(max_concurrency=self.max_concurrency, injected=self.http_client)
        self._loop_pools = LoopPools(max_concurrency=self.max_concurrency, injected=self.http_async_client)
        # Each fallback relay gets a client of its own (its own pools), with this one's settings.
        self._fallback_clients = []
        if self.fallbacks:
            shared = [name for name in ClientSettings.model_fields if name not in _PER_RELAY]
            inherited = {name: getattr(self, name) for name in shared}
            self._fallback_clients = [ImageClient(**settings_of(f, inherited)) for f in self.fallbacks]
        self._cooldowns = Cooldowns()
        self._adaptive = (
            AdaptiveLimit(initial=min(8, self.max_concurrency), maximum=self.max_concurrency)
            if self.adaptive_concurrency
            else None
        )

    @property
    def display_name(self) -> str:
        """This relay as results name it: ``name``, else its host."""
        return self.name or _host(self.base_url)

    @property
    def most_per_image(self) -> float | None:
        """The most one image may cost on any of the relays; ``None`` when one has no price."""
        prices = [
            most_per_image(client.price_per_image, client.price_per_million_tokens) for client in self._relays
        ]
        return None if None in prices else max(price for price in prices if price is not None)

    @property
    def _relays(self) -> list[ImageClient]:
        return [self, *self._fallback_clients]

    @property
    def family(self) -> ModelFamily:
        """What the model takes, and the endpoint that draws it."""
        return family_of(self.model, self.api)

    @property
    def endpoint(self) -> str:
        """The URL a generation is posted to (an Images API edit goes to ``/images/edits``)."""
        return f"{self.base_url}/{'chat/completions' if self.family.api == 'chat' else 'images/generations'}"

    def generate(
        self,
        prompt: str,
        *,
        n: int = DEFAULT_N,
        size: ImageSize | None = None,
        quality: ImageQuality | None = None,
        style: ImageStyle | None = None,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        output_compression: int | None = None,
        moderation: Moderation | None = None,
        aspect_ratio: AspectRatio | None = None,
        user: str | None = None,
        image_urls: Sequence[str] = (),
        mask: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ImageGenerationResult:
        """Generate ``n`` images for ``prompt``.

        The drawing options (``size`` to ``aspect_ratio``) are those the model takes
        (``image_tool.catalog``); one it does not take raises ``InvalidRequestError`` naming the
        values it does, and ``None`` leaves an option to the model's default. ``user`` is the end
        user's id, for abuse monitoring. ``image_urls`` are earlier images to edit or draw from
        (http(s) links or ``data:`` URLs; the Images API takes ``data:`` URLs only), and ``mask``
        a PNG ``data:`` URL whose transparent pixels mark where to draw. With ``stream=True``,
        ``on_progress`` receives each ``GenerationProgress`` while the relay works, previews
        included. With ``save_dir``, every image is saved before this returns; an image that
        could not be saved keeps its link and says why in ``save_error``. Raises only the errors
        of ``image_tool.errors``.
        """
        options = {
            "size": size,
            "quality": quality,
            "style": style,
            "background": background,
            "output_format": output_format,
            "output_compression": output_compression,
            "moderation": moderation,
            "aspect_ratio": aspect_ratio,
        }
        with self._only_image_tool_errors():
            failures: list[ImageToolError] = []
            for index in self._cooldowns.order(len(self._relays)):
                relay = self._relays[index]
                try:
                    result = relay._generate_here(prompt, n, options, user, image_urls, mask, on_progress)
                except ImageToolError as error:
                    self._fail_over(index, error, failures)
                    continue
                self._cooldowns.clear(index)
                return result
            raise _last_relay_failure(failures)

    async def agenerate(
        self,
        prompt: str,
        *,
        n: int = DEFAULT_N,
        size: ImageSize | None = None,
        quality: ImageQuality | None = None,
        style: ImageStyle | None = None,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        output_compression: int | None = None,
        moderation: Moderation | None = None,
        aspect_ratio: AspectRatio | None = None,
        user: str | None = None,
        image_urls: Sequence[str] = (),
        mask: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ImageGenerationResult:
        """Async twin of ``generate``, on httpx2's AsyncClient: it never blocks the event loop.

        ``on_progress`` may be a plain function or a coroutine function.
        """
        options = {
            "size": size,
            "quality": quality,
            "style": style,
            "background": background,
            "output_format": output_format,
            "output_compression": output_compression,
            "moderation": moderation,
            "aspect_ratio": aspect_ratio,
        }
        with self._only_image_tool_errors():
            failures: list[ImageToolError] = []
            for index in self._cooldowns.order(len(self._relays)):
                relay = self._relays[index]
                try:
                    result = await relay._agenerate_here(
                        prompt, n, options, user, image_urls, mask, on_progress
                    )
                except ImageToolError as error:
                    self._fail_over(index, error, failures)
                    continue
                self._cooldowns.clear(index)
                return result
            raise _last_relay_failure(failures)

    def close(self) -> None:
        """Close the pooled sync connections (an injected ``http_client`` stays open)."""
        self._sync_pool.close()
        for fallback in self._fallback_clients:
            fallback.close()

    async def aclose(self) -> None:
        """Close the pooled async connections of the running event loop."""
        await self._loop_pools.aclose_current()
        for fallback in self._fallback_clients:
            await fallback.aclose()

    def _generate_here(
        self,
        prompt: str,
        n: int,
        options: Mapping[str, object | None],
        user: str | None,
        image_urls: Sequence[str],
        mask: str | None,
        on_progress: ProgressCallback | None,
    ) -> ImageGenerationResult:
        """One generation on this relay alone, retries and saving included."""
        request = self._request(prompt, n, options, user, image_urls, mask)
        with Deadline(self.total_timeout) as deadline:
            attempt = functools.partial(self._attempt, request, deadline, on_progress)
            result, attempts = retried(attempt, self.max_retries, deadline)
            result = self._finished(result, n, attempts)
            if self.save_dir is not None and result.images:
                from ._io.storage import save_images

                _report(on_progress, [_SAVING])
                result = save_images(
                    result,
                    self._save_options(self.save_dir),
                    functools.partial(
                        self._sync_pool.downloads, public_only=not self.allow_private_downloads
                    ),
                    self._sync_pool.download_slots,
                )
        return result

    async def _agenerate_here(
        self,
        prompt: str,
        n: int,
        options: Mapping[str, object | None],
        user: str | None,
        image_urls: Sequence[str],
        mask: str | None,
        on_progress: ProgressCallback | None,
    ) -> ImageGenerationResult:
        """Async twin of ``_generate_here``."""
        request = self._request(prompt, n, options, user, image_urls, mask)
        with Deadline(self.total_timeout) as deadline:
            aattempt = functools.partial(self._aattempt, request, deadline, on_progress)
            result, attempts = await aretried(aattempt, self.max_retries, deadline)
            result = self._finished(result, n, attempts)
            if self.save_dir is not None and result.images:
                from ._io.storage import asave_images

                await _areport(on_progress, [_SAVING])
                pool = await self._loop_pools.current()
                downloads = functools.partial(
                    pool.download_client, public_only=not self.allow_private_downloads
                )
                saving = self._save_options(self.save_dir)
                result = await asave_images(result, saving, downloads, pool.download_slots)
        return result

    def _fail_over(self, index: int, error: ImageToolError, failures: list[ImageToolError]) -> None:
        """Note why relay ``index`` failed, and rest it; re-raise ``error`` when no other relay may
        be tried after it. A request a fallback's model cannot take skips that relay alone."""
        if isinstance(error, InvalidRequestError) and self._fallback_clients:
            failures.append(error)
            return
        if not fails_over(error):
            raise error
        failures.append(error)
        retry_after = error.retry_after if isinstance(error, APIStatusError) else None
        self._cooldowns.rest(index, max(self.cooldown, retry_after or 0.0))
        if self._fallback_clients:
            logger.warning(
                "The relay %s failed (%s): trying the next", self._relays[index].display_name, error
            )

    def _finished(self, result: ImageGenerationResult, n: int, attempts: int) -> ImageGenerationResult:
        """The result as the caller gets it: at most the ``n`` images asked for (a relay may send a
        thousand), its texts without anything shaped like a key, the attempts it took, the relay
        that answered and what it cost."""
        secret = self._secret
        kept = result.images[:n]
        images = [_scrubbed(image, secret) for image in kept]
        finished = result.model_copy(
            update={
                "model": scrub(result.model, secret),
                "images": images,
                "attempts": attempts,
                "dropped_images": len(result.images) - len(kept),
                "target": self.display_name,
            }
        )
        finished.cost = cost_of(finished, self.price_per_image, self.price_per_million_tokens)
        return finished

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def _secret(self) -> str:
        return self.api_key.get_secret_value()

    def _request(
        self,
        prompt: str,
        n: int,
        options: Mapping[str, object | None],
        user: str | None,
        image_urls: Sequence[str],
        mask: str | None,
    ) -> ImageRequest:
        return build_request(
            self.model,
            self.family,
            prompt,
            n=n,
            options=options,
            user=user,
            stream=self.stream,
            partial_images=self.partial_images,
            image_urls=image_urls,
            mask=mask,
        )

    def _attempt(
        self, request: ImageRequest, deadline: Deadline, on_progress: ProgressCallback | None
    ) -> ImageGenerationResult:
        """One request, sync: the answer read as it arrives, whole or as a stream of events."""
        client, exchange = self._sync_pool.http(), _Exchange()
        url, options = self._request_options(request, deadline)
        with (
            self._adaptive.sync_slot() if self._adaptive else contextlib.nullcontext() as slot,
            self._sync_pool.slots,
            self._calling(deadline, exchange, slot),
        ):
            sent = client.build_request("POST", url, **options)
            response = self._sync_pool.send(client, sent, within=deadline.remaining())
            try:
                answer = self._answer(url, response, exchange)
                for raw in raw_chunks(response):
                    _report(on_progress, answer.feed(raw))
                    deadline.check()
                updates, result = answer.finish()
                _report(on_progress, updates)
                return result
            finally:
                response.close()

    async def _aattempt(
        self, request: ImageRequest, deadline: Deadline, on_progress: ProgressCallback | None
    ) -> ImageGenerationResult:
        """One request, async twin of ``_attempt``."""
        pool, exchange = await self._loop_pools.current(), _Exchange()
        url, options = self._request_options(request, deadline)
        async with self._adaptive.slot() if self._adaptive else contextlib.nullcontext() as slot, pool.slots:
            # Every wait ends with the call (a relay dripping its headers never ends a read timeout).
            with self._calling(deadline, exchange, slot), pool.http() as http:
                async with asyncio.timeout(deadline.remaining()):
                    # send(stream=True), not stream(): no async generator held by each call in flight.
                    response = await http.send(http.build_request("POST", url, **options), stream=True)
                    try:
                        answer = self._answer(url, response, exchange)
                        async for raw in araw_chunks(response):
                            await _areport(on_progress, answer.feed(raw))
                            deadline.check()
                        large = answer.size > OFF_LOOP_BYTES  # parsed off the event loop
                        updates, result = await asyncio.to_thread(answer.finish) if large else answer.finish()
                        await _areport(on_progress, updates)
                        return result
                    finally:
                        await response.aclose()

    def _answer(self, url: httpx2.URL, response: httpx2.Response, exchange: _Exchange) -> AnswerReader:
        from ._wire.answer import AnswerReader

        exchange.status_code = response.status_code
        exchange.answered = response.is_success
        content_type = response.headers.get("content-type", "")
        logger.debug("HTTP %d from %s (%s)", response.status_code, url, content_type or "no type")
        # Server-sent events: said so, or asked for and answered with anything but JSON.
        streamed = "event-stream" in content_type or (self.stream and "json" not in content_type)
        return AnswerReader(
            response.status_code,
            response.headers,
            received_encoding(response),
            streamed=response.is_success and streamed,
            requested_model=self.model,
            secret=self._secret,
        )

    def _request_options(
        self, request: ImageRequest, deadline: Deadline
    ) -> tuple[httpx2.URL, dict[str, Any]]:
        # The URL and headers are parsed once, not by httpx2 on every request.
        url = _endpoint(self.base_url, request.path)
        if self._headers is None:
            self._headers = httpx2.Headers(
                {
                    "User-Agent": f"image-tool/{__version__}",
                    "Accept-Encoding": ACCEPT_ENCODING,
                    **self.default_headers,
                    "Authorization": f"Bearer {self._secret}",
                }
            )
        return url, {
            **request.body(),
            "headers": self._headers,
            # Each limit cut to what is left of the call (the deadline is checked between chunks).
            "timeout": _within(httpx2.Timeout(self.timeout), deadline),
        }

    def _save_options(self, save_dir: Path) -> SaveOptions:
        from ._io.storage import SaveOptions

        return SaveOptions(save_dir, self.max_image_bytes)

    @contextmanager
    def _calling(self, deadline: Deadline, exchange: _Exchange, slot: Slot | None) -> Iterator[None]:
        """Turn every failure of one request into the typed error, marked with whether the answer
        had begun (then it is never retried), and without the key; tell the adaptive limit (when
        there is one) of a 429 or saturation, with its Retry-After."""
        try:
            yield
        except Exception as error:
            failure = self._failure(error, deadline, exchange)
            if failure is None:
                raise
            failure.redact(self._secret)
            failure.answer_started = exchange.answered
            if isinstance(failure, RateLimitError) and slot is not None:
                slot.throttled(failure.retry_after)
            if failure is error:
                raise
            raise failure from error

    def _failure(self, error: Exception, deadline: Deadline, exchange: _Exchange) -> APIError | None:
        """The typed error for what went wrong in one request; ``None`` for anything unforeseen."""
        if isinstance(error, APIError):
            return error
        if isinstance(error, UnreadableBodyError):
            return MalformedResponseError(
                f"The relay's answer is {error}; it was not read.", status_code=exchange.status_code
            )
        if isinstance(error, httpx2.TimeoutException | TimeoutError):  # TimeoutError: the deadline's
            limit, setting = (
                (f"total timeout of {deadline.seconds:g} s", "total_timeout")
                if deadline.expired()
                else (_timeout_hit(error, self.timeout), "timeout")
            )
            return APITimeoutError(
                f"The relay at {self.base_url} did not answer in time ({limit}). Generations can take "
                f"minutes: raise ImageClient({setting}=...) if this one needs longer."
            )
        if isinstance(error, httpx2.TransportError):
            reason = str(error) or type(error).__name__
            if exchange.status_code is not None:
                return APIConnectionError(
                    f"The connection to the relay at {self.base_url} broke and its answer was cut "
                    f"before it finished: {reason}"
                )
            return APIConnectionError(f"Could not reach the relay at {self.base_url}: {reason}")
        if isinstance(error, httpx2.HTTPError):  # a body httpx2 itself could not decode, say
            reason = str(error) or type(error).__name__
            return MalformedResponseError(
                f"The relay's answer could not be read: {reason}", status_code=exchange.status_code
            )
        return None

    @contextmanager
    def _only_image_tool_errors(self) -> Iterator[None]:
        """Whatever fails, the caller gets an ``image_tool.errors`` exception; the unforeseen as an
        ``APIError`` chained to its cause."""
        try:
            yield
        except ImageToolError:
            raise
        except Exception as error:
            message = f"The generation failed unexpectedly: {type(error).__name__}: {error}"
            raise APIError(scrub(message, self._secret)) from error


@functools.lru_cache(maxsize=64)
def _host(url: str) -> str:
    return httpx2.URL(url).host


@functools.lru_cache(maxsize=256)
def _endpoint(base_url: str, path: str) -> httpx2.URL:
    return httpx2.URL(f"{base_url}{path}")


def _within(timeout: httpx2.Timeout, deadline: Deadline) -> httpx2.Timeout:
    """Each of the attempt's limits, shortened to what is left of the call's total."""
    remaining = deadline.remaining()
    if remaining is None:
        return timeout

    def cap(limit: float | None) -> float:
        return remaining if limit is None else min(limit, remaining)

    return httpx2.Timeout(
        connect=cap(timeout.connect), read=cap(timeout.read), write=cap(timeout.write), pool=cap(timeout.pool)
    )


def _scrubbed(image: GeneratedImage, secret: str) -> GeneratedImage:
    """``image`` without anything shaped like a key in its link or revised prompt."""
    url = scrub(image.url, secret) if image.url else image.url
    revised_prompt = scrub(image.revised_prompt, secret) if image.revised_prompt else None
    if url == image.url and revised_prompt == image.revised_prompt:
        return image
    return image.model_copy(update={"url": url, "revised_prompt": revised_prompt})


def _last_relay_failure(failures: list[ImageToolError]) -> ImageToolError:
    """What a call that no relay could serve raises: the last relay's own failure (a request
    none of the relays' models could take: the first of those)."""
    relay_failures = [error for error in failures if not isinstance(error, InvalidRequestError)]
    return relay_failures[-1] if relay_failures else failures[0]


def _report(on_progress: ProgressCallback | None, updates: Iterable[GenerationProgress]) -> None:
    """Hands each update to ``on_progress`` (``updates`` is consumed either way: reading the
    answer may be what produces them). A failing callback must not cost the generation: it
    is logged and passed over."""
    for update in updates:
        if on_progress is not None:
            try:
                on_progress(update)
            except Exception:
                logger.warning("The progress callback failed", exc_info=True)


async def _areport(on_progress: ProgressCallback | None, updates: Iterable[GenerationProgress]) -> None:
    """Async twin of ``_report``: ``on_progress`` may be a coroutine function."""
    for update in updates:
        if on_progress is not None:
            try:
                outcome = on_progress(update)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.warning("The progress callback failed", exc_info=True)


def _timeout_hit(error: Exception, timeout: float | httpx2.Timeout | None) -> str:
    limits = httpx2.Timeout(timeout)
    if isinstance(error, httpx2.ConnectTimeout):
        return f"connect timeout of {limits.connect} s"
    if isinstance(error, httpx2.WriteTimeout):
        return f"write timeout of {limits.write} s"
    if isinstance(error, httpx2.PoolTimeout):
        return f"pool timeout of {limits.pool} s"
    return f"read timeout of {limits.read} s"
