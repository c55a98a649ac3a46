"""Which failures are retried, how long to wait between attempts, and the total time a call may take
(the deadline, which every network wait of the call sees through a context variable)."""

from __future__ import annotations

import logging
import random
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .._wire.gateways import DRAWN_BEHIND_GATEWAY
from ..errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ModelNotFoundError,
    RateLimitError,
)

if TYPE_CHECKING:
    from tenacity import RetryCallState

T = TypeVar("T")

logger = logging.getLogger("image_tool")

RETRYABLE_STATUSES = frozenset({502, 503, 504})
MAX_RETRY_AFTER = 60.0
"""A relay asking for a longer wait is not waited for: the error goes to the caller (and the model)."""
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 30.0


class Deadline:
    """The total time one call may take, retries and waits included; ``None`` for no limit.

    Inside ``with deadline:`` it is the current call's (``current_deadline``): every wait of a
    download in this thread or task is bounded by it (``_io/network.py``).
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds
        self._token: Token[Deadline | None] | None = None

    def __enter__(self) -> Deadline:
        self._token = _call_deadline.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _call_deadline.reset(self._token)

    def remaining(self) -> float | None:
        return None if self._end is None else max(self._end - time.monotonic(), 0.0)

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0.01

    def check(self) -> None:
        if self.expired():
            raise APITimeoutError(
                f"The generation took longer than the total timeout of {self.seconds:g} s. Generations can "
                "take minutes: raise ImageClient(total_timeout=...) if this one needs longer."
            )


_call_deadline: ContextVar[Deadline | None] = ContextVar("image_tool_call_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The deadline of the call running in this thread or task, if any."""
    return _call_deadline.get()


def may_have_drawn(error: APIError) -> bool:
    """Whether the relay may have drawn (and billed) the image although the call failed: a
    successful answer had begun, or the request reached it and no answer came back."""
    return error.answer_started or went_unanswered(error)


def went_unanswered(error: APIError) -> bool:
    """The request reached the relay and no answer came back: it went out whole and the
    connection dropped or the read timed out, or a gateway says the relay had it (520, 524)."""
    return error.sent_unanswered or error.status_code in DRAWN_BEHIND_GATEWAY


def is_retryable(error: BaseException, *, unanswered: bool = False) -> bool:
    """Safe to try again: a request that never left or was refused before the relay could act
    (connection failures, 429, 502/503/504 with no generation begun).

    Never when a successful answer had begun; a request that went unanswered (``went_unanswered``:
    it may have been drawn, and trying again may pay twice) only when ``unanswered`` allows it;
    never a refusal, an authentication failure, a bad request, a spent quota or a missing model.
    """
    if not isinstance(error, APIError) or error.answer_started:
        return False
    if went_unanswered(error):
        return unanswered
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, ModelNotFoundError) or not isinstance(error, APIStatusError):
        return False
    if error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER:
        return False
    return isinstance(error, RateLimitError) or (
        type(error) is APIStatusError and error.status_code in RETRYABLE_STATUSES
    )


@dataclass(frozen=True)
class RetryRules:
    """What a client retries: up to ``max_retries`` times, what ``is_retryable`` allows; a
    ``RateLimitError`` only with ``rate_limits`` (else a caller requeues it); a request that went
    unanswered only with ``unanswered``."""

    max_retries: int
    rate_limits: bool = True
    unanswered: bool = False

    def allow(self, error: BaseException | None, deadline: Deadline) -> bool:
        if error is None or deadline.expired() or not is_retryable(error, unanswered=self.unanswered):
            return False
        return self.rate_limits or not isinstance(error, RateLimitError)


def first_wait(error: Exception, rules: RetryRules, deadline: Deadline) -> float:
    """The wait after a failed first try; the error itself when it is not to be retried."""
    if rules.max_retries < 1 or not rules.allow(error, deadline):
        raise error
    wait = wait_before(1, error, deadline)
    _log_retry(1, error, wait)
    return wait


def wait_before(attempt: int, error: BaseException | None, deadline: Deadline | None = None) -> float:
    """Seconds to wait before try ``attempt + 1``: Retry-After when the relay gave one, else
    exponential backoff with jitter; never past the deadline."""
    if isinstance(error, APIStatusError) and error.retry_after:
        chosen = error.retry_after
    else:
        jitter = random.uniform(0, BACKOFF_INITIAL)  # noqa: S311 (spreads retries, guards nothing)
        chosen = min(BACKOFF_INITIAL * 2 ** (attempt - 1), BACKOFF_MAX) + jitter
    remaining = deadline.remaining() if deadline else None
    return chosen if remaining is None else min(chosen, remaining)


def retry_policy(rules: RetryRules, deadline: Deadline) -> dict[str, Any]:
    """Tenacity's settings for the tries after the first: its attempt 1 is the call's second."""
    from tenacity import stop_after_attempt

    def failure(state: RetryCallState) -> BaseException | None:
        return state.outcome.exception() if state.outcome else None

    def log(state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        _log_retry(state.attempt_number + 1, failure(state), wait)

    return {
        "stop": stop_after_attempt(rules.max_retries),
        "wait": lambda state: wait_before(state.attempt_number + 1, failure(state), deadline),
        "retry": lambda state: rules.allow(failure(state), deadline),
        "before_sleep": log,
        "reraise": True,
    }


def _log_retry(attempt: int, error: BaseException | None, wait: float) -> None:
    kind = type(error).__name__ if isinstance(error, APIError) else "error"
    logger.info("Attempt %d failed with %s (%s); retrying in %.2f s", attempt, kind, error, wait)
