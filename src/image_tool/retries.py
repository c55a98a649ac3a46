"""Which failures are retried, how long to wait between attempts, and the total time a call may take
(the deadline, which every network wait of the call sees through a context variable)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ModelNotFoundError,
    RateLimitError,
)

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState, Retrying

logger = logging.getLogger("image_tool")

RETRYABLE_STATUSES = frozenset({502, 503, 504})
MAX_RETRY_AFTER = 60.0
"""A relay asking for a longer wait is not waited for: the error goes to the caller (and the model)."""
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 30.0


class Deadline:
    """The total time one call may take, retries and waits included; ``None`` for no limit."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds

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


@contextmanager
def call_deadline(deadline: Deadline) -> Iterator[None]:
    """Bound every network wait inside the block (in this thread or task) by ``deadline``."""
    token = _call_deadline.set(deadline)
    try:
        yield
    finally:
        _call_deadline.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline of the call running in this thread or task, if any."""
    return _call_deadline.get()


def is_retryable(error: BaseException) -> bool:
    """Safe to try again: connection failures and timeouts before any answer, 429, 502/503/504.

    Never once a successful answer began, whatever broke after (a generation that began may be
    billed); never a refusal, an authentication failure, a bad request, a spent quota or a
    missing model.
    """
    if not isinstance(error, APIError) or error.answer_started:
        return False
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, ModelNotFoundError) or not isinstance(error, APIStatusError):
        return False
    if error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER:
        return False
    return isinstance(error, RateLimitError) or (
        type(error) is APIStatusError and error.status_code in RETRYABLE_STATUSES
    )


def retry_policy(max_retries: int, deadline: Deadline) -> Retrying:
    """A tenacity policy: ``max_retries`` more attempts, waits from ``Retry-After`` or backoff."""
    from tenacity import Retrying  # tenacity is loaded by the first call, not by the import

    return Retrying(**_policy(max_retries, deadline))


def async_retry_policy(max_retries: int, deadline: Deadline) -> AsyncRetrying:
    """Async twin of ``retry_policy``."""
    from tenacity import AsyncRetrying

    return AsyncRetrying(**_policy(max_retries, deadline))


def _policy(max_retries: int, deadline: Deadline) -> dict[str, Any]:
    from tenacity import stop_after_attempt, wait_exponential, wait_random

    backoff = wait_exponential(multiplier=BACKOFF_INITIAL, max=BACKOFF_MAX) + wait_random(0, BACKOFF_INITIAL)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        chosen = (
            error.retry_after if isinstance(error, APIStatusError) and error.retry_after else backoff(state)
        )
        remaining = deadline.remaining()
        return chosen if remaining is None else min(chosen, remaining)

    def retry(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        return error is not None and is_retryable(error) and not deadline.expired()

    return {
        "stop": stop_after_attempt(max_retries + 1),
        "wait": wait,
        "retry": retry,
        "before_sleep": _log_retry,
        "reraise": True,
    }


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    kind = type(error).__name__ if isinstance(error, APIError) else "error"
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.info("Attempt %d failed with %s (%s); retrying in %.2f s", state.attempt_number, kind, error, wait)
