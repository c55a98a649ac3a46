"""Several relays behind one client: the fallbacks, when each may be tried, and what each costs.

A client with ``fallbacks`` tries its own relay first, then each fallback in order, when one cannot
serve the call: its quota is spent, it has no channel for the model, it is saturated or
rate-limited past its Retry-After budget, its key is refused, it answers 5xx, or it could not be
reached before an answer began. Never after a refusal or a bad request, and never once an answer
began (that generation may be billed). A relay that failed is rested for ``cooldown`` seconds.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
)
from ..models import ImageGenerationResult
from ..settings import Fallback
from .retries import went_unanswered

FALLBACKS_ENV = "IMAGE_TOOL_FALLBACKS"
MAX_TOKENS_PER_IMAGE = 6240
"""The most output tokens one image is billed (gpt-image, high quality, 1536x1024): the cost a
budget reserves per image of a relay priced by the token."""


def fallbacks_from_environment(environ: Mapping[str, str] = os.environ) -> list[Fallback]:
    """``IMAGE_TOOL_FALLBACKS``: a JSON list of relays, each ``{"base_url": ..., "api_key_env": ...,
    "model": ..., "name": ..., "price_per_image": ...}`` (the fields of ``Fallback``)."""
    text = environ.get(FALLBACKS_ENV, "").strip()
    if not text:
        return []
    try:
        entries = json.loads(text)
        if not isinstance(entries, list):
            raise TypeError("not a list")
        return [Fallback.model_validate(entry) for entry in entries]
    except (ValueError, TypeError, ValidationError) as error:
        reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
        raise ConfigurationError(
            f"{FALLBACKS_ENV} must be a JSON list of relays such as "
            '[{"base_url": "https://relay-b.example.com/v1", "api_key_env": "RELAY_B_KEY"}]; '
            f"it is not ({reason})."
        ) from None


def fails_over(error: BaseException, *, unanswered: bool = False) -> bool:
    """Whether another relay should be tried after ``error`` (see the module's docstring); after
    a request that went unanswered (it may have been drawn) only when ``unanswered`` allows it."""
    if not isinstance(error, APIError) or error.answer_started:
        return False
    if went_unanswered(error):
        return unanswered
    if isinstance(error, (QuotaExceededError, ModelNotFoundError, RateLimitError, AuthenticationError)):
        return True
    if isinstance(error, APIConnectionError):  # timeouts included: no answer had begun
        return True
    return type(error) is APIStatusError and (error.status_code or 0) >= 500


class Cooldowns:
    """When each relay (by its place in the list) may be tried again after it failed."""

    def __init__(self) -> None:
        self._until: dict[int, float] = {}
        self._lock = threading.Lock()

    def order(self, count: int) -> list[int]:
        """The relays to try, in order: those resting come last, the soonest rested first."""
        now = time.monotonic()
        with self._lock:
            until = {index: end for index, end in self._until.items() if end > now}
        ready = [index for index in range(count) if index not in until]
        return ready + sorted(until, key=until.__getitem__)

    def rest(self, index: int, seconds: float) -> None:
        with self._lock:
            self._until[index] = time.monotonic() + seconds

    def clear(self, index: int) -> None:
        with self._lock:
            self._until.pop(index, None)


def cost_of(
    result: ImageGenerationResult, price_per_image: float | None, price_per_million_tokens: float | None
) -> float | None:
    """What ``result`` cost: its images at ``price_per_image``, else its tokens at
    ``price_per_million_tokens``; ``None`` when neither is set (or no token count came)."""
    if price_per_image is not None:
        return len(result.images) * price_per_image
    tokens = result.usage.total_tokens if result.usage else None
    if price_per_million_tokens is not None and tokens is not None:
        return tokens * price_per_million_tokens / 1_000_000
    return None


def most_per_image(price_per_image: float | None, price_per_million_tokens: float | None) -> float | None:
    """The most one image may cost (for budgets): its price, or ``MAX_TOKENS_PER_IMAGE`` tokens."""
    if price_per_image is not None:
        return price_per_image
    if price_per_million_tokens is not None:
        return MAX_TOKENS_PER_IMAGE * price_per_million_tokens / 1_000_000
    return None


def settings_of(fallback: Fallback, inherited: dict[str, Any]) -> dict[str, Any]:
    """The settings of the client that talks to ``fallback``: the client's own, with the
    fallback's relay, key, model, name and prices (and no fallbacks of its own)."""
    # A fallback with a model of its own draws it on that model's endpoint, unless it says otherwise.
    api = fallback.api if fallback.api is not None or fallback.model else inherited.get("api")
    return {
        **inherited,
        "model": fallback.model or inherited.get("model"),
        "api": api,
        "base_url": fallback.base_url,
        "api_key": fallback.key(),
        "name": fallback.name,
        "price_per_image": fallback.price_per_image,
        "price_per_million_tokens": fallback.price_per_million_tokens,
        "fallbacks": [],
    }
