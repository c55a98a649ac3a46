"""ImageClient: settings, building the request, sending it (sync and async), reading the answer."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
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
from typing_extensions import Self

from ._version import __version__
from .config import resolve_connection
from .errors import APIConnectionError, APIError, APITimeoutError, error_from_response
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
from .streaming import StreamReader

logger = logging.getLogger("image_tool")

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
"""Generations take from seconds to several minutes: ten minutes to answer, ten seconds to connect."""

ProgressCallback = Callable[[GenerationProgress], object]
"""Receives each progress update of a streamed generation; async callers may pass a coroutine function."""

# httpx queues calls beyond 100 connections; generations are long, so let them all run at once.
_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100)


class ImageClient(BaseModel):
    """Generates images through an OpenAI-compatible relay's ``/chat/completions`` endpoint.

    Setup:
        Set ``IMAGE_TOOL_API_KEY`` and ``IMAGE_TOOL_BASE_URL``, or pass ``api_key`` and ``base_url``.

    Invoke:
        .. code-block:: python

            client = ImageClient()
            result = client.generate("A lighthouse at dawn", size="1792x1024")
            result = await client.agenerate("A lighthouse at dawn")
            print(result.images[0].url, result.images[0].revised_prompt)

    Failures raise the typed errors of ``image_tool.errors``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", use_attribute_docstrings=True)

    api_key: SecretStr = Field(default=SecretStr(""))
    """The relay's API key. Default: ``IMAGE_TOOL_API_KEY`` (or ``OPENAI_API_KEY``, paired)."""
    base_url: str = ""
    """The relay's base URL, e.g. ``https://relay.example.com/v1``. Default:
    ``IMAGE_TOOL_BASE_URL`` (or ``OPENAI_BASE_URL``, paired with ``OPENAI_API_KEY``)."""
    model: str = DEFAULT_MODEL
    """The image model to ask the relay for."""
    timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT
    """Seconds, or an ``httpx.Timeout`` with separate connect/read/write/pool limits."""
    default_headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent with every request."""
    stream: bool = False
    """Ask for a streamed answer (server-sent events), so progress can be reported while it runs."""
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    """An httpx client for sync calls; its owner closes it. Default: one pooled client."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)
    """An httpx client for async calls, bound to one event loop; its owner closes it.
    Default: one pooled client per event loop."""

    _sync_client: httpx.Client | None = PrivateAttr(default=None)
    _async_pools: dict[asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]] = (
        PrivateAttr(default_factory=dict)
    )
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
            default_headers: dict[str, str] | None = None,
            stream: bool = False,
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
        key, url = resolve_connection(api_key, data.get("base_url"))
        return {**data, "api_key": key, "base_url": url}

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
        on_progress: ProgressCallback | None = None,
    ) -> ImageGenerationResult:
        """Generate ``n`` images for ``prompt``.

        ``user`` is the end user's id, for abuse monitoring. With ``stream=True``, ``on_progress``
        receives each ``GenerationProgress`` while the relay works.
        """
        payload = build_payload(
            self.model, prompt, n=n, size=size, quality=quality, style=style, user=user, stream=self.stream
        )
        client = self._sync_http()
        with (
            self._calling(),
            client.stream("POST", self.endpoint, **self._request_options(payload)) as response,
        ):
            if not self._is_event_stream(response):
                response.read()
                return self._read(response)
            reader = StreamReader(self.model)
            for line in response.iter_lines():
                _report(on_progress, reader.feed(line))
            result = reader.result()
            _report(on_progress, reader.final_progress())
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
        on_progress: ProgressCallback | None = None,
    ) -> ImageGenerationResult:
        """Async twin of ``generate``, on httpx's AsyncClient: it never blocks the event loop.

        ``on_progress`` may be a plain function or a coroutine function.
        """
        payload = build_payload(
            self.model, prompt, n=n, size=size, quality=quality, style=style, user=user, stream=self.stream
        )
        client = await self._async_http()
        with self._calling():
            async with client.stream("POST", self.endpoint, **self._request_options(payload)) as response:
                if not self._is_event_stream(response):
                    await response.aread()
                    return self._read(response)
                reader = StreamReader(self.model)
                async for line in response.aiter_lines():
                    await _areport(on_progress, reader.feed(line))
                result = reader.result()
                await _areport(on_progress, reader.final_progress())
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
            await pool[1].aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _request_options(self, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "User-Agent": f"image-tool/{__version__}",
            **self.default_headers,
            "Authorization": f"Bearer {self.api_key.get_secret_value()}",
        }
        return {"json": payload, "headers": headers, "timeout": self.timeout}

    def _sync_http(self) -> httpx.Client:
        if self.http_client is not None:
            return self.http_client
        with self._lock:
            if self._sync_client is None:
                self._sync_client = httpx.Client(verify=shared_ssl_context(), limits=_LIMITS)
                # A client dropped without close() still closes its connections.
                weakref.finalize(self, self._sync_client.close)
            return self._sync_client

    async def _async_http(self) -> httpx.AsyncClient:
        # An AsyncClient's connections belong to the loop that opened them: one pool per loop.
        if self.http_async_client is not None:
            return self.http_async_client
        loop = asyncio.get_running_loop()
        if (pool := self._async_pools.get(loop)) is not None:
            return pool[0]
        # Loading the CA bundle blocks for tens of milliseconds: do it off the loop.
        verify = await asyncio.to_thread(shared_ssl_context)
        if (pool := self._async_pools.get(loop)) is not None:  # another task made it meanwhile
            return pool[0]
        for dead in [other for other in self._async_pools if other.is_closed()]:
            del self._async_pools[dead]
        client = httpx.AsyncClient(verify=verify, limits=_LIMITS)
        closer = _closed_with_loop(client)
        self._async_pools[loop] = (client, closer)
        await closer.__anext__()  # started, so the loop finalises it at shutdown
        return client

    @contextmanager
    def _calling(self) -> Iterator[None]:
        """Turn httpx's transport errors into ours (naming the limit hit), and keep the key out."""
        try:
            yield
        except httpx.TimeoutException as error:
            raise APITimeoutError(
                f"The relay at {self.base_url} did not answer in time ({_timeout_hit(error, self.timeout)}). "
                "Generations can take minutes: raise ImageClient(timeout=...) if this one needs longer."
            ) from error
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            raise APIConnectionError(f"Could not reach the relay at {self.base_url}: {reason}") from error
        except APIError as error:
            error.redact(self.api_key.get_secret_value())
            raise

    def _is_event_stream(self, response: httpx.Response) -> bool:
        """Server-sent events: said so, or asked for and answered with anything but JSON."""
        content_type = response.headers.get("content-type", "")
        streamed = "event-stream" in content_type or (self.stream and "json" not in content_type)
        logger.debug("HTTP %d from %s (%s)", response.status_code, self.endpoint, content_type or "no type")
        return response.is_success and streamed

    def _read(self, response: httpx.Response) -> ImageGenerationResult:
        if not response.is_success:
            raise error_from_response(response.status_code, response.content, response.headers)
        return parse_result(response.content, requested_model=self.model)


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
) -> dict[str, Any]:
    """The JSON body of a generation request: the prompt is the single user message."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
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


async def _closed_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Closes ``client`` when its event loop shuts down.

    ``asyncio.run`` (and ``asyncio.Runner``) finalise every async generator still open before
    closing the loop, so a pool left open by its user is closed cleanly, on its own loop.
    """
    try:
        yield
    finally:
        await client.aclose()


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context for every client: building one loads the CA bundle."""
    return httpx.create_ssl_context()


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
