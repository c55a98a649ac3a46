"""FakeRelay's own limits: a request rate, an image quota and a concurrency cap, checked before a
generation request reaches the scripted replies, and the count of what was generated.

The refusals are the relay's own answers, not its upstream's: they go out the same under every
profile (a profile reshapes only what its upstream said), in new-api's words:

- too many requests a second: middleware/utils.go abortWithOpenAiMessage with
  ``rate_limit_exceeded`` (new-api's model request limit), plus a ``Retry-After`` that new-api
  does not send but a limiter that knows its refill can;
- no quota left: ``Reply.quota_exhausted()`` (new-api's pre-consume refusal, 403
  ``insufficient_user_quota``);
- saturated: what new-api writes when its channel answers a bare 429 (controller/relay.go
  replaces the message of every 429, service/error.go RelayErrorHandler types it
  ``upstream_error`` / ``bad_response_status_code`` with the status in ``param``), as in
  tests/field_samples/02 and 04.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._answers import GenerationRequest, Plain
from ._gateway import GatewayRequest
from ._go_relays import NewApi, gin_json, upstream_error
from ._images_request import ImagesRequest
from ._replies import RelayProfile, Reply

MIN_RETRY_AFTER = 0.01
"""The shortest wait a rate-limit answer names, in seconds."""


@dataclass
class Ticket:
    """An admitted request: the images it reserved of the quota."""

    reserved: int
    answering: bool = True
    """Still being answered: it holds a place of ``max_concurrent``."""
    finished: bool = False
    """Its images counted (or given back): ``Admission.finish`` counts a ticket once."""


class Admission:
    """Decides whether a generation request may go on, and counts what was generated.

    ``rate_limit``: a token bucket as new-api's total-request limit is one
    (middleware/model-rate-limit.go: the capacity is a window's count, refilled continuously),
    over a one-second window: a burst of ``max(1, rate)`` requests, then ``rate`` a second.
    OpenAI likewise enforces a per-minute limit over shorter periods. A refused request takes no
    token.

    ``quota_images``: admitting a request reserves its ``n`` images, as new-api pre-consumes
    quota, and the reservation becomes spent when the answer carried images (else it is given
    back). So concurrent requests never generate more than the quota.

    ``max_concurrent``: a request arriving while that many admitted requests are still being
    answered is refused as saturated.
    """

    def __init__(
        self,
        *,
        rate_limit: float | None = None,
        quota_images: int | None = None,
        max_concurrent: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_limit is not None and not (math.isfinite(rate_limit) and rate_limit > 0):
            raise ValueError(f"rate_limit must be a positive number of requests a second, not {rate_limit!r}")
        if quota_images is not None and quota_images < 0:
            raise ValueError(f"quota_images must be 0 or more, not {quota_images!r}")
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError(f"max_concurrent must be 1 or more, not {max_concurrent!r}")
        self.rate_limit = rate_limit
        self.quota_images = quota_images
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._lock = threading.Lock()
        self._capacity = max(1.0, rate_limit or 0.0)
        self._tokens = self._capacity
        self._refilled = clock()
        self._active = 0
        self._reserved = 0
        self._generated = 0
        self._prompts: list[str] = []

    @property
    def generated(self) -> int:
        with self._lock:
            return self._generated

    @property
    def generated_prompts(self) -> list[str]:
        with self._lock:
            return list(self._prompts)

    def admit(self, n: int, *, quota_refusal: Plain | None = None) -> Ticket | Plain:
        """A ticket for a request of ``n`` images, or the answer that refuses it (``quota_refusal``
        when the quota is spent, if given: an endpoint's own words for it)."""
        with self._lock:
            if self.rate_limit is not None:
                wait = self._take_token(self.rate_limit)
                if wait is not None:
                    return _rate_limited(self.rate_limit, wait)
            if self.quota_images is not None and self._generated + self._reserved + n > self.quota_images:
                return quota_refusal or _quota_exhausted()
            if self.max_concurrent is not None and self._active >= self.max_concurrent:
                return _saturated()
            self._active += 1
            reserved = n if self.quota_images is not None else 0
            self._reserved += reserved
            return Ticket(reserved)

    def leave(self, ticket: Ticket) -> None:
        """The admitted request was answered, and its images come later (a Midjourney task): its
        place is given back, its reservation kept until ``finish``."""
        with self._lock:
            self._leave(ticket)

    def finish(self, ticket: Ticket, prompt: str, images: int) -> None:
        """The admitted request was answered with ``images`` images (0: an error, text, a fault).
        Only the first call for a ticket counts: an answer may end in several places."""
        with self._lock:
            if ticket.finished:
                return
            ticket.finished = True
            self._leave(ticket)
            self._reserved -= ticket.reserved
            if images:
                self._generated += images
                self._prompts.append(prompt)

    def _leave(self, ticket: Ticket) -> None:
        if ticket.answering:
            ticket.answering = False
            self._active -= 1

    def _take_token(self, rate: float) -> float | None:
        """None when a token was taken, else the seconds until the next one."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / rate


def images_answered(request: GenerationRequest | ImagesRequest, reply: Reply, profile: RelayProfile) -> int:
    """How many images the answer to ``request`` carries when ``reply`` is played under ``profile``:
    ``request.n`` for a success (or an answer dropped after the draw), 0 for an error, a raw body,
    text, another transport or stream fault."""
    if reply.fault == "drop_unanswered":
        return request.n  # drawn; the answer is what is lost
    if reply.body is not None or reply.fault is not None or reply.status != 200:
        return 0
    if reply.stream_fault is not None and request.stream:
        return 0
    if isinstance(request, ImagesRequest):
        return request.n
    if reply.content is not None:
        return 0
    if profile == "gateway":
        return request.n if isinstance(request, GatewayRequest) and request.draws else 0
    if reply.shape == "images_api" and profile == "litellm":
        return 0  # LiteLLM builds a completion from choices: without them, its 500
    if reply.shape == "images_api" and request.stream and profile != "vendor":
        return 0  # new-api and one-api find no event in a JSON body: a bare [DONE], an error
    return request.n


def _rate_limited(rate: float, wait: float) -> Plain:
    retry_after = max(MIN_RETRY_AFTER, math.ceil(wait * 100 - 1e-9) / 100)
    relay = NewApi()
    request_id = relay._request_id()
    message = f"您已达到请求数限制：1秒内最多请求{rate:g}次 (request id: {request_id})"
    error = {"message": message, "type": "new_api_error", "code": "rate_limit_exceeded"}
    answer = gin_json(429, {"error": error}, request_id)
    return Plain(
        answer.status,
        answer.body,
        (*answer.headers, ("Retry-After", f"{retry_after:.2f}")),
        answer.content_type,
    )


def _quota_exhausted() -> Plain:
    reply = Reply.quota_exhausted()
    return Plain(reply.status, reply.body or b"", tuple(reply.headers.items()))


def _saturated() -> Plain:
    relay = NewApi()
    return relay._relay_error(429, upstream_error(Plain(429, b"")), relay._request_id())
