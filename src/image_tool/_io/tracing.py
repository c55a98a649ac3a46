"""OpenTelemetry spans of what image-tool does: a generation, each of its attempts (HTTP requests
to a relay), each image download, a batch run, a tool call (docs/tracing.md).

Only OpenTelemetry's API is used (the ``otel`` extra), and only once something has loaded it: no
application can have set up a tracer provider before importing ``opentelemetry.trace``, so until
then every span here is ``OFF`` and costs a dictionary look-up. With the API and no SDK, spans
are invalid and nothing is recorded either.

Attributes follow OpenTelemetry's GenAI and HTTP semantic conventions, with ``image_tool.*``
for the rest. The key is never recorded: a URL keeps no user, password or query, an error's
message is recorded only for image-tool's own errors (already without the key) and scrubbed again,
and the prompt only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from pathlib import Path
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit, urlunsplit

from .._version import __version__
from .._wire.redaction import display_url, scrub
from ..errors import ImageToolError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from .._call import Call, Exchange
    from ..batch import BatchSummary
    from ..client import ImageClient
    from ..models import GenerationProgress, ImageGenerationResult

CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CAPTURING = ("true", "span_only", "span_and_event")
"""The GenAI conventions' opt-in to recording prompts, and the values that record it on the span."""
MAX_PROMPT_CHARS = 4096
MAX_TEXT_CHARS = 1024
"""Bounds on the prompt, an error message or a progress text, as recorded."""

Attributes = dict[str, str | bool | int | float]

_tracer: Tracer | None = None
_generation: ContextVar[Span | None] = ContextVar("image_tool_generation_span", default=None)
"""The span of the generation running here, which progress updates are events of."""


class Traced:
    """One of image-tool's spans while it is open, as the code that opened it records on it. This
    one (``OFF``) records nothing: tracing is off, or the span is not of this kind."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: object
    ) -> None:
        return None

    def answered(self, status_code: int) -> None:
        """An attempt's or a download's HTTP status."""

    def succeeded(self, result: ImageGenerationResult, client: ImageClient, failovers: int = 0) -> None:
        """A generation's result, from the relay of ``client`` after ``failovers`` others failed."""

    def batch_ended(self, summary: BatchSummary) -> None:
        """A batch run's counts, over every prompt of its output directory."""


OFF = Traced()


class _Span(Traced):
    """A valid span: current (its children's parent) while open, ended on exit, with its error."""

    def __init__(self, span: Span, secret: str = "", *, generation: bool = False) -> None:
        self.span = span
        self.secret = secret
        self.generation = generation
        self.context: Token[Context] | None = None
        self.progress: Token[Span | None] | None = None

    def __enter__(self) -> Self:
        from opentelemetry import context, trace

        self.context = context.attach(trace.set_span_in_context(self.span))
        if self.generation:
            self.progress = _generation.set(self.span)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: object
    ) -> None:
        from opentelemetry import context

        try:
            if error is not None:
                self._failed(error)
        finally:
            if self.progress is not None:
                _generation.reset(self.progress)
            if self.context is not None:
                context.detach(self.context)
            self.span.end()

    def _failed(self, error: BaseException) -> None:
        """``error`` on the span: its kind, the ERROR status and an ``exception`` event, whose
        message is kept only for image-tool's own errors (never holding the key)."""
        from opentelemetry.trace import Status, StatusCode

        kind = type(error).__name__
        event: Attributes = {"exception.type": f"{type(error).__module__}.{type(error).__qualname__}"}
        if isinstance(error, ImageToolError):
            event["exception.message"] = _bounded(scrub(str(error), self.secret), MAX_TEXT_CHARS)
        self.span.set_attribute("error.type", kind)
        self.span.set_status(Status(StatusCode.ERROR, kind))
        self.span.add_event("exception", event)

    def answered(self, status_code: int) -> None:
        self.span.set_attribute("http.response.status_code", status_code)

    def succeeded(self, result: ImageGenerationResult, client: ImageClient, failovers: int = 0) -> None:
        attributes: Attributes = {
            **_server(client.base_url),
            "image_tool.relay": result.target or client.display_name,
            "image_tool.attempts": result.attempts,
            "image_tool.images": len(result.images),
        }
        if result.model:
            attributes["gen_ai.response.model"] = result.model
        usage = result.usage
        if usage is not None and usage.input_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
        if usage is not None and usage.output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        if result.cost is not None:
            attributes["image_tool.cost"] = result.cost
        if failovers:
            attributes["image_tool.failovers"] = failovers
        if result.dropped_images:
            attributes["image_tool.dropped_images"] = result.dropped_images
        if unsaved := sum(image.save_error is not None for image in result.images):
            attributes["image_tool.save_errors"] = unsaved
        self.span.set_attributes(attributes)

    def batch_ended(self, summary: BatchSummary) -> None:
        self.span.set_attributes(
            {
                "image_tool.batch.ok": summary.ok,
                "image_tool.batch.failed": summary.failed,
                "image_tool.batch.lost": summary.lost,
                "image_tool.batch.not_started": summary.not_started,
                "image_tool.cost": summary.cost,
            }
        )


def generation(client: ImageClient, call: Call) -> Traced:
    """The span of one ``generate`` call (every relay it tries): an inference span of the GenAI
    conventions, named ``{gen_ai.operation.name} {gen_ai.request.model}``."""
    if sys.modules.get("opentelemetry.trace") is None:
        return OFF
    api = client.family.api
    operation = "chat" if api == "chat" else "generate_content"
    attributes: Attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "openai",  # the API relays speak, whoever draws behind them
        "gen_ai.request.model": client.model,
        "gen_ai.output.type": "image",
        "gen_ai.request.choice.count": call.n,
        **_server(client.base_url),
        "image_tool.endpoint": api,
        "image_tool.relay": client.display_name,
    }
    span = _start(f"{operation} {client.model}", attributes, client=True)
    if span is None:
        return OFF
    secret = client.api_key.get_secret_value()
    if span.is_recording() and os.environ.get(CAPTURE_CONTENT, "").strip().lower() in CAPTURING:
        parts = [{"type": "text", "content": _bounded(scrub(call.prompt, secret), MAX_PROMPT_CHARS)}]
        messages = json.dumps([{"role": "user", "parts": parts}], ensure_ascii=False)
        span.set_attribute("gen_ai.input.messages", messages)
    return _Span(span, secret, generation=True)


def attempt(exchange: Exchange, method: str = "POST", resend_count: int = 0) -> Traced:
    """The span of one HTTP request to a relay (an HTTP client span), once ``exchange.request``
    has set its URL; ``resend_count`` is how many went before it for the same call on that relay."""
    if sys.modules.get("opentelemetry.trace") is None:
        return OFF
    client, secret = exchange.relay.client, exchange.relay.secret
    url = str(exchange.url)
    attributes: Attributes = {
        "http.request.method": method,
        **_server(url),
        "image_tool.relay": client.display_name,
        "gen_ai.request.model": client.model,
    }
    if resend_count:
        attributes["http.request.resend_count"] = resend_count
    span = _start(method, attributes, client=True)
    if span is None:
        return OFF
    if span.is_recording():
        span.set_attribute("url.full", _shown(url, secret))
    return _Span(span, secret)


def download(url: str) -> Traced:
    """The span of one image's download (its redirects included) and saving."""
    if sys.modules.get("opentelemetry.trace") is None:
        return OFF
    span = _start("GET", {"http.request.method": "GET", **_server(url)}, client=True)
    if span is None:
        return OFF
    if span.is_recording():
        span.set_attribute("url.full", _shown(url, ""))
    return _Span(span)


def batch(prompts: Path, total: int, skipped: int, concurrency: int) -> Traced:
    """The span of a batch run, over the generations of its prompts."""
    if sys.modules.get("opentelemetry.trace") is None:
        return OFF
    attributes: Attributes = {
        "image_tool.batch.prompts_file": prompts.name,
        "image_tool.batch.total": total,
        "image_tool.batch.skipped": skipped,
        "image_tool.batch.concurrency": concurrency,
    }
    span = _start("image_tool batch", attributes)
    return OFF if span is None else _Span(span)


def tool_call(name: str = "generate_image", call_id: str | None = None, client: str | None = None) -> Traced:
    """An ``execute_tool {name}`` span of the GenAI conventions, for an adapter (the MCP server) to
    open around the generation it runs: ``with tool_call("generate_image", id, client): ...``;
    ``client`` is the MCP client's name (its token's), never the token."""
    if sys.modules.get("opentelemetry.trace") is None:
        return OFF
    attributes: Attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    if client:
        attributes["image_tool.mcp.client"] = client
    span = _start(f"execute_tool {name}", attributes)
    return OFF if span is None else _Span(span)


def progress(update: GenerationProgress) -> None:
    """``update`` as an event of the running generation's span (when it is recorded); its preview
    link, which may be signed, is left out."""
    span = _generation.get()
    if span is None:
        return
    event: Attributes = {"image_tool.progress.stage": update.stage}
    if update.percent is not None:
        event["image_tool.progress.percent"] = update.percent
    if update.text:
        event["image_tool.progress.text"] = _bounded(update.text, MAX_TEXT_CHARS)
    span.add_event("image_tool.progress", event)


def _start(name: str, attributes: Attributes, *, client: bool = False) -> Span | None:
    """A span started as a child of the current one; ``None`` when there is no SDK to record it
    (an invalid span: nothing to record, nothing for children to follow)."""
    global _tracer
    from opentelemetry import trace

    if _tracer is None:
        _tracer = trace.get_tracer("image_tool", __version__)
    kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
    span = _tracer.start_span(name, kind=kind, attributes=attributes)
    return span if span.get_span_context().is_valid else None


@functools.lru_cache(maxsize=256)
def _server(url: str) -> Mapping[str, str | int]:
    """``server.address`` and ``server.port`` of ``url``."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    return {"server.address": parts.hostname or "", "server.port": port}


def _shown(url: str, secret: str) -> str:
    """``url`` as it may be recorded: no user, password, query or fragment (signed links keep
    their signature in the query), nor the key."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    if parts.scheme not in ("http", "https"):
        return f"{parts.scheme}:"  # a data: URL is the image itself
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return _bounded(scrub(display_url(bare), secret), MAX_TEXT_CHARS)


def _bounded(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
