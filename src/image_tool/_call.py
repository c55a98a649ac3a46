"""What the sync and async cores of a generation (``_async/generation.py``) share, none of it
waiting: the call's arguments, one request's headers and timeouts, its failures as typed errors,
and the result as the caller gets it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx2

from ._io.logs import hide_in_logs
from ._policy.failover import cost_of
from ._policy.retries import Deadline
from ._version import __version__
from ._wire.body import ACCEPT_ENCODING, UnreadableBodyError, received_encoding
from ._wire.redaction import scrub
from ._wire.request import build_request
from .catalog import OPTION_NAMES
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ImageToolError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
)
from .models import GeneratedImage, GenerationProgress, ImageGenerationResult

if TYPE_CHECKING:
    from ._policy.limits import Slot
    from ._wire.answer import AnswerReader
    from ._wire.request import ImageRequest
    from .client import ImageClient

logger = logging.getLogger("image_tool")

ProgressCallback = Callable[[GenerationProgress], object]
"""Receives each progress update of a streamed generation; async callers may pass a coroutine function."""

OFF_LOOP_BYTES = 1024 * 1024
"""An async answer larger than this is parsed on a worker thread, not on the event loop."""

SAVING = GenerationProgress(stage="saving", text="saving images")

KEPT_PER_IMAGE_ASKED = 4
MOST_KEPT = 16
"""A relay may draw more images than asked (and bill them): up to ``KEPT_PER_IMAGE_ASKED`` times
``n`` are kept, at most ``MOST_KEPT``; what is past that is dropped and counted."""


@dataclass(frozen=True)
class Call:
    """The arguments of one ``generate`` call."""

    prompt: str
    n: int
    options: Mapping[str, object | None]
    user: str | None
    image_urls: Sequence[str]
    mask: str | None
    on_progress: ProgressCallback | None
    max_images: int | None = None
    on_sending: Callable[[], object] | None = None
    on_task: Callable[[str], object] | None = None
    extra_body: Mapping[str, Any] | None = None
    """Provider options of this call, over the client's ``extra_body``."""

    @property
    def kept_at_most(self) -> int:
        """How many of the images the relay sends are kept."""
        kept = min(KEPT_PER_IMAGE_ASKED * self.n, MOST_KEPT)
        return kept if self.max_images is None else max(0, min(kept, self.max_images))

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> Call:
        """The call from ``generate``'s (or ``agenerate``'s) own arguments (its ``locals()``)."""
        return cls(
            prompt=arguments["prompt"],
            n=arguments["n"],
            options={name: arguments[name] for name in OPTION_NAMES},
            user=arguments["user"],
            image_urls=arguments["image_urls"],
            mask=arguments["mask"],
            on_progress=arguments["on_progress"],
            max_images=arguments["max_images"],
            on_sending=arguments["on_sending"],
            on_task=arguments["on_task"],
            extra_body=arguments["extra_body"],
        )


class Relay:
    """What every request to one client's relay carries, worked out once: its settings, the key
    and the headers."""

    def __init__(self, client: ImageClient) -> None:
        self.client = client
        self.secret = client.api_key.get_secret_value()
        hide_in_logs(self.secret)  # a relay may echo it in a header, which httpcore2 logs
        self.headers = httpx2.Headers(
            {
                "User-Agent": f"image-tool/{__version__}",
                "Accept-Encoding": ACCEPT_ENCODING,
                **client.default_headers,
                **(
                    {"Authorization": f"Bearer {self.secret}"}
                    if client.key_header == "Authorization"
                    else {"mj-api-secret": self.secret}  # midjourney-proxy's own header
                ),
            }
        )

    def request(self, call: Call) -> ImageRequest:
        """The request for ``call``, as this relay's model takes it."""
        client = self.client
        return build_request(
            client.model,
            client.family,
            call.prompt,
            n=call.n,
            options=call.options,
            user=call.user,
            stream=client.stream,
            partial_images=client.partial_images,
            image_urls=call.image_urls,
            mask=call.mask,
            extra_body={**client.extra_body, **(call.extra_body or {})},
        )


UNANSWERED = (
    "The relay had the request whole, so the image may have been generated (and billed): it was "
    "not sent again. retry_unanswered=True retries such requests."
)


@dataclass
class Exchange:
    """One request of a call, as far as it got: whether its body went out whole, the status, and
    whether a successful answer had begun (a 2xx arrived: the generation may be billed, so it is
    never retried)."""

    relay: Relay
    deadline: Deadline
    status_code: int | None = None
    answered: bool = False
    traced: bool = False
    """httpx2's transport reported the request's steps (an injected transport may not)."""
    body_sent: bool = False
    url: httpx2.URL = field(init=False)

    def trace(self, step: str, info: object) -> None:
        """httpcore2's ``trace`` extension: each step of the request as it happens."""
        self.traced = True
        self.body_sent = self.body_sent or step.endswith("send_request_body.complete")

    async def atrace(self, step: str, info: object) -> None:
        self.trace(step, info)

    def _unanswered(self, failure: APIError, error: Exception) -> APIError:
        """``failure``, marked (and, unless such requests are retried, explained) when the relay
        had the request whole."""
        if not self.sent_unanswered(error):
            return failure
        if not self.relay.client.retry_unanswered:
            failure = type(failure)(f"{failure.message} {UNANSWERED}")
        failure.sent_unanswered = True
        return failure

    def sent_unanswered(self, error: Exception) -> bool:
        """Whether ``error`` came after the request went out whole, with no status back: the
        relay may have drawn (and billed) the image. Judged by the transport's steps, or, where
        it reported none, by the phase the error names (reading the answer)."""
        if self.status_code is not None:
            return False
        if self.traced:
            return self.body_sent
        return isinstance(error, httpx2.ReadTimeout | httpx2.ReadError | httpx2.RemoteProtocolError)

    def request(
        self, body: Mapping[str, Any], path: str, *, root: str | None = None, method: str = "POST"
    ) -> dict[str, Any]:
        """``build_request``'s arguments: the endpoint (``path`` under ``root``, by default the
        base URL), the body, the headers, and each timeout cut to what is left of the call (the
        deadline is checked between chunks)."""
        self.url = _endpoint(root or self.relay.client.base_url, path)
        return {
            "method": method,
            "url": self.url,
            **body,
            "headers": self.relay.headers,
            "timeout": _within(httpx2.Timeout(self.relay.client.timeout), self.deadline),
        }

    def reader(self, response: httpx2.Response) -> AnswerReader:
        """The reader of ``response``'s answer, as it arrives."""
        from ._wire.answer import AnswerReader

        self.status_code = response.status_code
        self.answered = response.is_success
        content_type = response.headers.get("content-type", "")
        logger.debug("HTTP %d from %s (%s)", response.status_code, self.url, content_type or "no type")
        # Server-sent events: said so, or asked for and answered with anything but JSON.
        streamed = "event-stream" in content_type or (self.relay.client.stream and "json" not in content_type)
        return AnswerReader(
            response.status_code,
            response.headers,
            received_encoding(response),
            streamed=response.is_success and streamed,
            requested_model=self.relay.client.model,
            secret=self.relay.secret,
        )

    @contextmanager
    def failures(self, slot: Slot | None) -> Iterator[None]:
        """Every failure of the request as its typed error, marked with whether the answer had
        begun, without the key; a 429 or saturation told to the adaptive limit (when there is
        one) with its Retry-After."""
        try:
            yield
        except Exception as error:
            failure = self._typed(error)
            if failure is None:
                raise
            failure.redact(self.relay.secret)
            failure.answer_started = self.answered
            if isinstance(failure, RateLimitError) and slot is not None:
                slot.throttled(failure.retry_after)
            if failure is error:
                raise
            raise failure from error

    def _typed(self, error: Exception) -> APIError | None:
        """The typed error for what went wrong; ``None`` for anything unforeseen."""
        base_url = self.relay.client.base_url
        if isinstance(error, APIError):
            return error
        if isinstance(error, UnreadableBodyError):
            return MalformedResponseError(
                f"The relay's answer is {error}; it was not read.", status_code=self.status_code
            )
        if isinstance(error, httpx2.TimeoutException | TimeoutError):  # TimeoutError: the deadline's
            limit, setting = (
                (f"total timeout of {self.deadline.seconds:g} s", "total_timeout")
                if self.deadline.expired()
                else (_timeout_hit(error, self.relay.client.timeout), "timeout")
            )
            return self._unanswered(
                APITimeoutError(
                    f"The relay at {base_url} did not answer in time ({limit}). Generations can take "
                    f"minutes: raise ImageClient({setting}=...) if this one needs longer."
                ),
                error,
            )
        reason = str(error) or type(error).__name__
        if isinstance(error, httpx2.TransportError):
            if self.status_code is not None:
                return APIConnectionError(
                    f"The connection to the relay at {base_url} broke and its answer was cut "
                    f"before it finished: {reason}"
                )
            if self.sent_unanswered(error):
                message = f"The relay at {base_url} received the request, then the connection ended: {reason}"
                return self._unanswered(APIConnectionError(message), error)
            return APIConnectionError(f"Could not reach the relay at {base_url}: {reason}")
        if isinstance(error, httpx2.HTTPError):  # a body httpx2 itself could not decode, say
            return MalformedResponseError(
                f"The relay's answer could not be read: {reason}", status_code=self.status_code
            )
        return None


def finished(relay: Relay, result: ImageGenerationResult, call: Call, attempts: int) -> ImageGenerationResult:
    """The result as the caller gets it: the images kept (``Call.kept_at_most``: a relay may send
    a thousand), its texts without anything shaped like a key, the attempts it took, the relay
    that answered and what it cost."""
    client, secret = relay.client, relay.secret
    kept = result.images[: call.kept_at_most]
    done = result.model_copy(
        update={
            "model": scrub(result.model, secret),
            "images": [_scrubbed(image, secret) for image in kept],
            "attempts": attempts,
            "dropped_images": len(result.images) - len(kept),
            "target": client.display_name,
        }
    )
    done.cost = cost_of(done, client.price_per_image, client.price_per_million_tokens)
    return done


def last_relay_failure(failures: list[ImageToolError]) -> ImageToolError:
    """What a call that no relay could serve raises: the last relay's own failure (a request
    none of the relays' models could take: the first of those)."""
    relay_failures = [error for error in failures if not isinstance(error, InvalidRequestError)]
    return relay_failures[-1] if relay_failures else failures[0]


@contextmanager
def only_image_tool_errors(secret: str) -> Iterator[None]:
    """Whatever fails, the caller gets an ``image_tool.errors`` exception; the unforeseen as an
    ``APIError`` chained to its cause."""
    try:
        yield
    except ImageToolError:
        raise
    except Exception as error:
        message = f"The generation failed unexpectedly: {type(error).__name__}: {error}"
        raise APIError(scrub(message, secret)) from error


@functools.lru_cache(maxsize=256)
def _endpoint(base_url: str, path: str) -> httpx2.URL:
    # Parsed once, not by httpx2 on every request.
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


def _timeout_hit(error: Exception, timeout: float | httpx2.Timeout | None) -> str:
    limits = httpx2.Timeout(timeout)
    if isinstance(error, httpx2.ConnectTimeout):
        return f"connect timeout of {limits.connect} s"
    if isinstance(error, httpx2.WriteTimeout):
        return f"write timeout of {limits.write} s"
    if isinstance(error, httpx2.PoolTimeout):
        return f"pool timeout of {limits.pool} s"
    return f"read timeout of {limits.read} s"
