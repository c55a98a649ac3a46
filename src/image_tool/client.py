"""ImageClient: settings, building the request, sending it (sync and async), reading the answer."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_serializer,
    model_validator,
)
from tenacity import AsyncRetrying, Retrying
from typing_extensions import Self

from ._version import __version__
from .config import resolve_connection
from .errors import APIConnectionError, APIError, APITimeoutError, MalformedResponseError, error_from_response
from .models import (
    DEFAULT_MODEL,
    DEFAULT_N,
    DEFAULT_QUALITY,
    DEFAULT_SIZE,
    DEFAULT_STYLE,
    GenerationProgress,
    ImageGenerationResult,
    ImageQuality,
    ImageSize,
    ImageStyle,
)
from .parsing import parse_result
from .retries import Deadline, retry_policy
from .storage import SaveOptions, asave_images, save_images
from .streaming import StreamReader

logger = logging.getLogger("image_tool")

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
"""Generations take from seconds to several minutes: ten minutes to answer, ten seconds to connect."""
DEFAULT_TOTAL_TIMEOUT = 1200.0
"""Twenty minutes for a whole call, retries included."""
MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""An answer past this size (several inline images are a few MB) is refused, not held in memory."""

ProgressCallback = Callable[[GenerationProgress], object]
"""Receives each progress update of a streamed generation; async callers may pass a coroutine function."""

# httpx queues calls beyond 100 connections; max_concurrency is the cap that counts.
_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100)
SHARD_SIZE = 16
"""Requests one AsyncClient carries at once. httpx scans its whole pool on every event, so one
client with hundreds of connections spends more time scanning than waiting: 500 concurrent calls
took 4.5 s through one client, 1.9-2.2 s spread over clients of 8 to 32 (16 was best)."""


@dataclass
class _Shard:
    client: httpx.AsyncClient
    in_flight: int = 0


@dataclass
class _LoopPool:
    """What one event loop needs: its AsyncClients (shards), a cap, and the closer that ends with it."""

    shards: list[_Shard]
    slots: asyncio.Semaphore
    closer: AsyncGenerator[None, None]
    verify: ssl.SSLContext | None
    """For new shards; ``None`` when the client was injected (it is never sharded)."""

    @property
    def client(self) -> httpx.AsyncClient:
        return self.shards[0].client

    @contextmanager
    def lease(self) -> Iterator[httpx.AsyncClient]:
        """The least busy client, a new one when all carry ``SHARD_SIZE`` requests."""
        shard = min(self.shards, key=lambda shard: shard.in_flight)
        if shard.in_flight >= SHARD_SIZE and self.verify is not None:
            shard = _Shard(httpx.AsyncClient(verify=self.verify, limits=_LIMITS))
            self.shards.append(shard)
        shard.in_flight += 1
        try:
            yield shard.client
        finally:
            shard.in_flight -= 1


@dataclass
class _Exchange:
    answered: bool = False
    """Whether the relay's answer had begun (headers received) when the exchange failed."""


class ImageClient(BaseModel):
    """Generates images through an OpenAI-compatible relay's ``/chat/completions`` endpoint.

    Setup:
        Set ``IMAGE_TOOL_API_KEY`` and ``IMAGE_TOOL_BASE_URL``, or pass ``api_key`` and ``base_url``.

    Invoke:
        .. code-block:: python

            client = ImageClient(save_dir="images")
            result = client.generate("A lighthouse at dawn", size="1792x1024")
            result = await client.agenerate("A lighthouse at dawn")
            print(result.images[0].url, result.images[0].path, result.images[0].revised_prompt)

    Failures raise the typed errors of ``image_tool.errors``, after ``max_retries`` retries of
    those that are safe to retry.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    api_key: SecretStr = Field(default=SecretStr(""))
    """The relay's API key. Default: ``IMAGE_TOOL_API_KEY`` (or ``OPENAI_API_KEY``, paired)."""
    base_url: str = ""
    """The relay's base URL, e.g. ``https://relay.example.com/v1``. Default:
    ``IMAGE_TOOL_BASE_URL`` (or ``OPENAI_BASE_URL``, paired with ``OPENAI_API_KEY``)."""
    model: str = DEFAULT_MODEL
    """The image model to ask the relay for."""
    timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT
    """Seconds, or an ``httpx.Timeout`` with separate connect/read/write/pool limits, per attempt."""
    total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT
    """Seconds a whole call may take, retries and streaming included; ``None`` for no limit."""
    max_retries: int = Field(default=2, ge=0)
    """Retries of failures that are safe to retry (connection failures, timeouts before any
    answer, 429, 502/503/504), with exponential backoff and jitter, or the relay's Retry-After."""
    max_concurrency: int = Field(default=512, ge=1)
    """Requests this client runs at once (per event loop); more wait for a free slot."""
    default_headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent with every request."""
    stream: bool = False
    """Ask for a streamed answer (server-sent events), so progress can be reported while it runs."""
    save_dir: Path | None = None
    """Save every image here as soon as the answer arrives (downloaded, or decoded from base64)."""
    allow_private_downloads: bool = False
    """Download images from loopback and private addresses too (for local relays and FakeRelay)."""
    max_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    """Largest image saved; a larger download is abandoned."""
    allow_insecure_http: bool = False
    """Send the key over plain http to a host that is not loopback (refused by default)."""
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    """An httpx client for sync calls; its owner closes it. Default: one pooled client."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)
    """An httpx client for async calls, bound to one event loop; its owner closes it.
    Default: one pooled client per event loop."""

    _sync_client: httpx.Client | None = PrivateAttr(default=None)
    _sync_slots: threading.BoundedSemaphore = PrivateAttr()
    _async_pools: dict[asyncio.AbstractEventLoop, _LoopPool] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    if TYPE_CHECKING:
        # What type checkers see: the key may be a plain str; unset settings come from the environment.
        def __init__(
            self,
            *,
            api_key: str | SecretStr | None = None,
            base_url: str | None = None,
            model: str = DEFAULT_MODEL,
            timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
            total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
            max_retries: int = 2,
            max_concurrency: int = 512,
            default_headers: dict[str, str] | None = None,
            stream: bool = False,
            save_dir: str | Path | None = None,
            allow_private_downloads: bool = False,
            max_image_bytes: int = ...,
            allow_insecure_http: bool = False,
            http_client: httpx.Client | None = None,
            http_async_client: httpx.AsyncClient | None = None,
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _resolve_connection(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        api_key = data.get("api_key")
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        key, url = resolve_connection(
            api_key, data.get("base_url"), allow_insecure_http=bool(data.get("allow_insecure_http"))
        )
        return {**data, "api_key": key, "base_url": url}

    def model_post_init(self, context: Any, /) -> None:
        self._sync_slots = threading.BoundedSemaphore(self.max_concurrency)

    @field_serializer("timeout")
    def _serialize_timeout(
        self, timeout: float | httpx.Timeout | None
    ) -> float | dict[str, float | None] | None:
        return timeout.as_dict() if isinstance(timeout, httpx.Timeout) else timeout

    @property
    def endpoint(self) -> str:
        """The URL every generation is posted to."""
        return f"{self.base_url}/chat/completions"

    def generate(
        self,
        prompt: str,
        *,
        n: int = DEFAULT_N,
        size: ImageSize = DEFAULT_SIZE,
        quality: ImageQuality = DEFAULT_QUALITY,
        style: ImageStyle = DEFAULT_STYLE,
        user: str | None = None,
        image_urls: Sequence[str] = (),
        on_progress: ProgressCallback | None = None,
    ) -> ImageGenerationResult:
        """Generate ``n`` images for ``prompt``.

        ``user`` is the end user's id, for abuse monitoring. ``image_urls`` are earlier images to edit
        or draw from (http(s) links or ``data:`` URLs). With ``stream=True``, ``on_progress``
        receives each ``GenerationProgress`` while the relay works. With ``save_dir``, every image
        is saved before this returns.
        """
        payload = build_payload(
            self.model,
            prompt,
            n=n,
            size=size,
            quality=quality,
            style=style,
            user=user,
            stream=self.stream,
            image_urls=image_urls,
        )
        deadline = Deadline(self.total_timeout)
        retrying = retry_policy(Retrying, self.max_retries, deadline)
        result: ImageGenerationResult = retrying(self._attempt, payload, deadline, on_progress)
        result = result.model_copy(update={"attempts": retrying.statistics["attempt_number"]})
        if self.save_dir is not None:
            result = save_images(result, self._save_options(self.save_dir), self._sync_http())
        return result

    async def agenerate(
        self,
        prompt: str,
        *,
        n: int = DEFAULT_N,
        size: ImageSize = DEFAULT_SIZE,
        quality: ImageQuality = DEFAULT_QUALITY,
        style: ImageStyle = DEFAULT_STYLE,
        user: str | None = None,
        image_urls: Sequence[str] = (),
        on_progress: ProgressCallback | None = None,
    ) -> ImageGenerationResult:
        """Async twin of ``generate``, on httpx's AsyncClient: it never blocks the event loop.

        ``on_progress`` may be a plain function or a coroutine function.
        """
        payload = build_payload(
            self.model,
            prompt,
            n=n,
            size=size,
            quality=quality,
            style=style,
            user=user,
            stream=self.stream,
            image_urls=image_urls,
        )
        deadline = Deadline(self.total_timeout)
        retrying = retry_policy(AsyncRetrying, self.max_retries, deadline)
        result: ImageGenerationResult = await retrying(self._aattempt, payload, deadline, on_progress)
        result = result.model_copy(update={"attempts": retrying.statistics["attempt_number"]})
        if self.save_dir is not None:
            pool = await self._async_pool()
            result = await asave_images(result, self._save_options(self.save_dir), pool.client)
        return result

    def close(self) -> None:
        """Close the pooled sync connections (an injected ``http_client`` stays open)."""
        with self._lock:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the pooled async connections of the running event loop."""
        pool = self._async_pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.closer.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _attempt(
        self, payload: dict[str, Any], deadline: Deadline, on_progress: ProgressCallback | None
    ) -> ImageGenerationResult:
        """One request, sync: the answer read whole, or as a stream of events."""
        client, exchange = self._sync_http(), _Exchange()
        options = self._request_options(payload, deadline)
        with (
            self._sync_slots,
            self._calling(deadline, exchange),
            client.stream("POST", self.endpoint, **options) as response,
        ):
            exchange.answered = True
            if not self._is_event_stream(response):
                return self._read(response, _capped(response.iter_bytes(), deadline))
            reader = StreamReader(self.model)
            for line in _capped_lines(response.iter_lines(), deadline):
                _report(on_progress, reader.feed(line))
            result = reader.result()
            _report(on_progress, reader.final_progress())
            return result

    async def _aattempt(
        self, payload: dict[str, Any], deadline: Deadline, on_progress: ProgressCallback | None
    ) -> ImageGenerationResult:
        """One request, async twin of ``_attempt``."""
        pool, exchange = await self._async_pool(), _Exchange()
        options = self._request_options(payload, deadline)
        async with pool.slots:
            with self._calling(deadline, exchange), pool.lease() as client:
                async with client.stream("POST", self.endpoint, **options) as response:
                    exchange.answered = True
                    if not self._is_event_stream(response):
                        return self._read(response, await _acapped(response.aiter_bytes(), deadline))
                    reader = StreamReader(self.model)
                    async for line in _acapped_lines(response.aiter_lines(), deadline):
                        await _areport(on_progress, reader.feed(line))
                    result = reader.result()
                    await _areport(on_progress, reader.final_progress())
                    return result

    def _request_options(self, payload: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        headers = {
            "User-Agent": f"image-tool/{__version__}",
            **self.default_headers,
            "Authorization": f"Bearer {self.api_key.get_secret_value()}",
        }
        return {
            "json": payload,
            "headers": headers,
            "timeout": _within(httpx.Timeout(self.timeout), deadline),
        }

    def _save_options(self, save_dir: Path) -> SaveOptions:
        return SaveOptions(save_dir, self.allow_private_downloads, self.max_image_bytes)

    def _sync_http(self) -> httpx.Client:
        if self.http_client is not None:
            return self.http_client
        with self._lock:
            if self._sync_client is None:
                self._sync_client = httpx.Client(verify=shared_ssl_context(), limits=_LIMITS)
                # A client dropped without close() still closes its connections.
                weakref.finalize(self, self._sync_client.close)
            return self._sync_client

    async def _async_pool(self) -> _LoopPool:
        # An AsyncClient's connections belong to the loop that opened them: one pool per loop.
        loop = asyncio.get_running_loop()
        if (pool := self._async_pools.get(loop)) is not None:
            return pool
        verify = None
        if self.http_async_client is not None:
            shards = [_Shard(self.http_async_client)]
        else:
            # Loading the CA bundle blocks for tens of milliseconds: do it off the loop.
            verify = await asyncio.to_thread(shared_ssl_context)
            if (pool := self._async_pools.get(loop)) is not None:  # another task made it meanwhile
                return pool
            shards = [_Shard(httpx.AsyncClient(verify=verify, limits=_LIMITS))]
        for dead in [other for other in self._async_pools if other.is_closed()]:
            del self._async_pools[dead]
        closer = _closed_with_loop(shards if verify is not None else [])
        pool = _LoopPool(shards, asyncio.Semaphore(self.max_concurrency), closer, verify)
        self._async_pools[loop] = pool
        await closer.__anext__()  # started, so the loop finalises it at shutdown
        return pool

    @contextmanager
    def _calling(self, deadline: Deadline, exchange: _Exchange) -> Iterator[None]:
        """Turn httpx's transport errors into ours (naming the limit hit), and keep the key out."""
        try:
            yield
        except httpx.TimeoutException as error:
            limit, setting = (
                (f"total timeout of {deadline.seconds:g} s", "total_timeout")
                if deadline.expired()
                else (_timeout_hit(error, self.timeout), "timeout")
            )
            raise APITimeoutError(
                f"The relay at {self.base_url} did not answer in time ({limit}). Generations can take "
                f"minutes: raise ImageClient({setting}=...) if this one needs longer.",
                answer_started=exchange.answered,
            ) from error
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            message = (
                f"The connection to the relay at {self.base_url} broke: {reason}"
                if exchange.answered
                else f"Could not reach the relay at {self.base_url}: {reason}"
            )
            raise APIConnectionError(message) from error
        except APIError as error:
            error.redact(self.api_key.get_secret_value())
            raise

    def _is_event_stream(self, response: httpx.Response) -> bool:
        """Server-sent events: said so, or asked for and answered with anything but JSON."""
        content_type = response.headers.get("content-type", "")
        streamed = "event-stream" in content_type or (self.stream and "json" not in content_type)
        logger.debug("HTTP %d from %s (%s)", response.status_code, self.endpoint, content_type or "no type")
        return response.is_success and streamed

    def _read(self, response: httpx.Response, body: bytes) -> ImageGenerationResult:
        if not response.is_success:
            raise error_from_response(response.status_code, body, response.headers)
        return parse_result(body, requested_model=self.model)


def build_payload(
    model: str,
    prompt: str,
    *,
    n: int,
    size: ImageSize,
    quality: ImageQuality,
    style: ImageStyle,
    user: str | None,
    stream: bool = False,
    image_urls: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON body of a generation request: the prompt is the single user message, with the
    reference images (for edits) as the standard multi-part content."""
    content: str | list[dict[str, Any]] = prompt
    if image_urls:
        references = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
        content = [{"type": "text", "text": prompt}, *references]
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "n": n,
        "size": size,
        "quality": quality,
        "style": style,
    }
    if user is not None:
        payload["user"] = user
    if stream:
        payload["stream"] = True
    return payload


async def _closed_with_loop(shards: list[_Shard]) -> AsyncGenerator[None, None]:
    """Closes the clients of ``shards`` (ours; an injected client is not listed) when their event
    loop shuts down.

    ``asyncio.run`` (and ``asyncio.Runner``) finalise every async generator still open before
    closing the loop, so a pool left open by its user is closed cleanly, on its own loop.
    """
    try:
        yield
    finally:
        for shard in shards:
            await shard.client.aclose()


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context for every client: building one loads the CA bundle."""
    return httpx.create_ssl_context()


def _within(timeout: httpx.Timeout, deadline: Deadline) -> httpx.Timeout:
    """Each of the attempt's limits, shortened to what is left of the call's total."""
    remaining = deadline.remaining()
    if remaining is None:
        return timeout

    def cap(limit: float | None) -> float:
        return remaining if limit is None else min(limit, remaining)

    return httpx.Timeout(
        connect=cap(timeout.connect), read=cap(timeout.read), write=cap(timeout.write), pool=cap(timeout.pool)
    )


def _check_received(size: int, deadline: Deadline) -> None:
    """Stop reading past the size cap or the call's total time (a huge or endless answer)."""
    if size > MAX_ANSWER_BYTES:
        raise MalformedResponseError(
            f"The relay's answer is larger than {MAX_ANSWER_BYTES // (1024 * 1024)} MiB; it was not read.",
            status_code=200,
        )
    deadline.check()


def _capped(chunks: Iterable[bytes], deadline: Deadline) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        _check_received(len(body), deadline)
    return bytes(body)


async def _acapped(chunks: AsyncIterator[bytes], deadline: Deadline) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        _check_received(len(body), deadline)
    return bytes(body)


def _capped_lines(lines: Iterable[str], deadline: Deadline) -> Iterator[str]:
    size = 0
    for line in lines:
        size += len(line)
        _check_received(size, deadline)
        yield line


async def _acapped_lines(lines: AsyncIterator[str], deadline: Deadline) -> AsyncIterator[str]:
    size = 0
    async for line in lines:
        size += len(line)
        _check_received(size, deadline)
        yield line


def _report(on_progress: ProgressCallback | None, updates: list[GenerationProgress]) -> None:
    if on_progress is not None:
        for update in updates:
            on_progress(update)


async def _areport(on_progress: ProgressCallback | None, updates: list[GenerationProgress]) -> None:
    if on_progress is not None:
        for update in updates:
            outcome = on_progress(update)
            if inspect.isawaitable(outcome):
                await outcome


def _timeout_hit(error: httpx.TimeoutException, timeout: float | httpx.Timeout | None) -> str:
    limits = httpx.Timeout(timeout)
    if isinstance(error, httpx.ConnectTimeout):
        return f"connect timeout of {limits.connect} s"
    if isinstance(error, httpx.WriteTimeout):
        return f"write timeout of {limits.write} s"
    if isinstance(error, httpx.PoolTimeout):
        return f"pool timeout of {limits.pool} s"
    return f"read timeout of {limits.read} s"
