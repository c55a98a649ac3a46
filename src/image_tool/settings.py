"""The settings of a client of an image relay, each declared once, here.

``ImageClient`` has them as its fields; ``ImageGenerationTool`` takes them as keywords and builds
its client from them; the command line's flags take their defaults from them.

A few settings accept a wider type than the one kept (the key as a plain ``str``, a directory as
a ``str``): they are annotated ``Accepts[given, kept]``. Pydantic reads that as ``kept`` and
converts; type checkers read it as a descriptor, so the constructor they see takes ``given`` and
the attribute reads ``kept`` (PEP 681's rule for descriptor-typed fields).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer

from .catalog import Api
from .errors import ConfigurationError
from .models import DEFAULT_MODEL

if TYPE_CHECKING:
    from typing import Concatenate, Generic, ParamSpec, TypeVar

    from .tool import ImageGenerationTool

    Given = TypeVar("Given")
    Kept = TypeVar("Kept")
    Keywords = ParamSpec("Keywords")

    class Accepts(Generic[Given, Kept]):
        """A setting given as ``Given`` and kept as ``Kept``."""

        def __get__(self, instance: object, owner: type | None = None) -> Kept: ...
        def __set__(self, instance: object, value: Given) -> None: ...

    def takes_keywords_of(
        model: Callable[Keywords, object],
    ) -> Callable[[Callable[..., None]], Callable[Concatenate[Any, Keywords], None]]:
        """Types the decorated ``__init__`` as taking the keywords ``model`` takes."""
        ...

else:

    class Accepts:
        """At run time ``Accepts[Given, Kept]`` is ``Kept``: pydantic validates into it."""

        def __class_getitem__(cls, types: tuple[object, object]) -> object:
            return types[1]


class Fallback(BaseModel):
    """A relay to try when the ones before it cannot serve a call. Unset fields are the client's."""

    # hide_input_in_errors: a misspelled field's value (``apikey=...``) may be the key.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    base_url: str
    api_key: Accepts[str | SecretStr | None, SecretStr | None] = Field(
        default=None, repr=False, validate_default=True
    )
    api_key_env: str | None = None
    """The environment variable holding the key, instead of ``api_key``."""
    model: str | None = None
    api: Api | None = None
    name: str | None = None
    price_per_image: float | None = Field(default=None, ge=0)
    price_per_million_tokens: float | None = Field(default=None, ge=0)

    def key(self, environ: Mapping[str, str] = os.environ) -> SecretStr:
        if self.api_key is not None:
            return self.api_key
        value = environ.get(self.api_key_env or "", "").strip()
        if not value:
            unset = f" ({self.api_key_env} is not)" if self.api_key_env else ""
            raise ConfigurationError(
                f"The fallback relay {self.name or self.base_url} has no key: give api_key, or "
                f"api_key_env naming a variable that is set{unset}."
            )
        return SecretStr(value)


DEFAULT_TIMEOUT = httpx2.Timeout(600.0, connect=10.0)
"""Generations take from seconds to several minutes: ten minutes to answer, ten seconds to connect."""
DEFAULT_TOTAL_TIMEOUT = 1200.0
"""Twenty minutes for a whole call, retries included."""


class ClientSettings(BaseModel):
    """How to reach the relay, how long to wait, how often to retry, where to save images."""

    # Validators are built by the first instance, not by the import (docs/performance.md).
    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True, hide_input_in_errors=True)

    # validate_default: an Accepts default is read as a given value would be (which is also what
    # lets type checkers take a default of the kept type).
    api_key: Accepts[str | SecretStr | None, SecretStr] = Field(default=SecretStr(""), validate_default=True)
    """The relay's API key. Default: ``IMAGE_TOOL_API_KEY`` (or ``OPENAI_API_KEY``, paired)."""
    base_url: Accepts[str | None, str] = Field(default="", validate_default=True)
    """The relay's base URL, e.g. ``https://relay.example.com/v1``. Default:
    ``IMAGE_TOOL_BASE_URL`` (or ``OPENAI_BASE_URL``, paired with ``OPENAI_API_KEY``)."""
    name: str | None = None
    """What results call this relay (``ImageGenerationResult.target``). Default: its host."""
    model: str = DEFAULT_MODEL
    """The image model to ask the relay for. Its options, and the endpoint that draws it, come
    from ``image_tool.catalog``: a model it does not know gets the options every relay takes."""
    api: Api | None = None
    """``"chat"`` (``/chat/completions``) or ``"images"`` (the Images API), overriding what the
    catalog says for the model; ``None``: the catalog's choice."""
    timeout: float | httpx2.Timeout | None = DEFAULT_TIMEOUT
    """Seconds, or an ``httpx2.Timeout`` with separate connect/read/write/pool limits, per attempt."""
    total_timeout: float | None = Field(default=DEFAULT_TOTAL_TIMEOUT, gt=0)
    """Seconds a whole call may take, retries, streaming and saving included; ``None`` for no limit."""
    max_retries: int = Field(default=2, ge=0)
    """Retries of failures that are safe to retry (connection failures, timeouts before any
    answer, 429, 502/503/504), with exponential backoff and jitter, or the relay's Retry-After."""
    retry_rate_limits: bool = True
    """Retry a 429 or a saturated relay within the call; ``False`` raises ``RateLimitError`` at
    once, for a caller that requeues the work itself (batch runs do, so a rate limit spends none
    of a prompt's retries)."""
    retry_unanswered: bool = False
    """Retry (or fail over) a request the relay received whole but never answered: a dropped
    connection, a read timeout, a gateway's 520 or 524. It may have been drawn, and a retry may
    be billed again; off by default, so the error says so instead."""
    max_concurrency: int = Field(default=512, ge=1)
    """Requests this client runs at once (per event loop); more wait for a free slot."""
    adaptive_concurrency: bool = False
    """Find the concurrency a rate-limited relay allows instead of failing: from 8 requests at once
    (up to ``max_concurrency``), doubling each round of successes until the first 429, then one
    more per round, 70% as many after a 429 or saturation, starts spread over the time a
    generation takes, none while its Retry-After runs (``image_tool.AdaptiveLimit``). On for
    batch runs."""
    default_headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent with every request."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Provider options sent with every generation, beside image-tool's own (a call's
    ``extra_body`` overrides them key by key): an option the catalog knows for the model is
    checked as its keyword is, any other key is sent as it is; keys image-tool sets itself
    (``model``, ``prompt``, ``n``, ``stream``...) are refused (docs/models.md)."""
    image_jobs: bool = False
    """Draw each Images API generation as an asynchronous job (``"async": true``, with an
    ``Idempotency-Key``), polled until it ends: for slow models behind a gateway's 100 s limit, on
    relays that take such jobs (some forks of new-api; docs/midjourney.md)."""
    key_header: Literal["Authorization", "mj-api-secret"] = "Authorization"
    """Where the key goes: ``Authorization: Bearer <key>``, as OpenAI and new-api take it, or
    ``mj-api-secret: <key>``, as midjourney-proxy itself takes it (without new-api in front)."""
    stream: bool = False
    """Ask for a streamed answer (server-sent events), so progress can be reported while it runs."""
    partial_images: int = Field(default=2, ge=0, le=3)
    """Previews the Images API streams while it draws (with ``stream``, for the gpt-image models)."""
    save_dir: Accepts[str | Path | None, Path | None] = Field(default=None, validate_default=True)
    """Save every image here as soon as the answer arrives (downloaded, or decoded from base64)."""
    allow_private_downloads: bool = False
    """Download images from loopback and private addresses too (for local relays and FakeRelay)."""
    max_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    """Largest image saved; a larger download is abandoned."""
    allow_insecure_http: bool = False
    """Send the key over plain http to a host that is not loopback (refused by default)."""
    price_per_image: float | None = Field(default=None, ge=0)
    """What this relay charges per image, in any currency: results carry their ``cost``."""
    price_per_million_tokens: float | None = Field(default=None, ge=0)
    """What this relay charges per million tokens, when it bills tokens, not images."""
    fallbacks: list[Fallback] | None = None
    """Relays to try in order when this one cannot serve a call (``image_tool._policy.failover``).
    Default: ``IMAGE_TOOL_FALLBACKS`` (a JSON list), else none."""
    cooldown: float = Field(default=60.0, ge=0)
    """Seconds a relay that failed is tried only after the others (or its Retry-After, if longer)."""
    http_client: httpx2.Client | None = Field(default=None, exclude=True, repr=False)
    """An httpx2 client for sync calls; its owner closes it. Default: one pooled client."""
    http_async_client: httpx2.AsyncClient | None = Field(default=None, exclude=True, repr=False)
    """An httpx2 client for async calls, bound to one event loop; its owner closes it.
    Default: pooled clients of its own per event loop."""

    @field_serializer("timeout")
    def _serialize_timeout(
        self, timeout: float | httpx2.Timeout | None
    ) -> float | dict[str, float | None] | None:
        return timeout.as_dict() if isinstance(timeout, httpx2.Timeout) else timeout


if TYPE_CHECKING:

    class ToolKeywords(ImageGenerationTool, ClientSettings):  # type: ignore[misc]
        """Every keyword ``ImageGenerationTool`` takes: its own fields and the client's settings.

        For type checkers only. The settings cannot be fields of the tool: ``stream`` is also a
        method of every LangChain Runnable (hence the ignored conflict).
        """
