"""How long a relay asks to wait, wherever it says so: its headers, the fields of its error (and of
errors embedded in its message), or its words, in English and Chinese. Pure.

The first that gives a wait wins, in this order:

1. ``retry-after-ms``, then ``Retry-After`` (seconds or an HTTP date), as RFC 9110 and OpenAI's
   clients read them; LiteLLM passes an upstream's on with an ``llm_provider-`` prefix. On a 429,
   OpenAI's ``x-ratelimit-reset-requests`` / ``-tokens`` (``"1s"``, ``"6m0s"``) when nothing else is
   given.
2. Fields: Google's ``RetryInfo.retryDelay`` and ``ErrorInfo.metadata.quotaResetDelay``
   (``"3.299376739s"``), and a ``retry_after`` / ``retryAfter`` some relays write beside the message.
3. Words: "try again in 20s", "Please retry in 36.2s" (the Gemini API), "reset after 3s",
   "请 30 秒后重试", "1分钟后再试".
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .relay_text import details_of, text_of

MAX_WAIT = 86_400.0
"""A wait beyond a day is not a wait anyone means: it is ignored."""

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNIT_NAMES = {
    **{name: "ms" for name in ("ms", "msec", "millisecond", "milliseconds")},
    **{name: "s" for name in ("s", "sec", "secs", "second", "seconds", "秒", "秒钟")},
    **{name: "m" for name in ("m", "min", "mins", "minute", "minutes", "分", "分钟")},
    **{name: "h" for name in ("h", "hr", "hour", "hours", "小时")},
}
# Go's durations ("6m0s", "1h2m3.5s", "20ms") and Google's ("3.299376739s").
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|h|m|s))+\Z")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_NUMBER = r"(\d{1,6}(?:\.\d{1,9})?)"
_WORDS = (
    re.compile(
        r"(?:try again|retry|retrying|reset|resets|available again)\s+(?:in|after)\s+(?:about\s+)?"
        r"((?:\d{1,6}(?:\.\d{1,9})?(?:ms|h|m|s)){2,3})\b",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?:try again|retry|retrying|reset|resets|available again)\s+(?:in|after)\s+(?:about\s+)?"
        rf"{_NUMBER}\s*(milliseconds?|msec|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hr|h)\b",
        re.IGNORECASE,
    ),
    re.compile(rf"{_NUMBER}\s*(秒钟|秒|分钟|分|小时)\s*(?:之)?后"),
)


def wait_from(
    headers: Mapping[str, str], errors: Iterable[Mapping[str, Any]], words: str, status_code: int
) -> float | None:
    """Seconds to wait, from the first source that gives one (see the module's docstring)."""
    lowered = {key.lower().removeprefix("llm_provider-"): value for key, value in headers.items()}
    for wait in (_from_headers(lowered, status_code), _from_fields(errors), _from_words(words)):
        if wait is not None:
            return wait
    return None


def duration(value: object) -> float | None:
    """Seconds from a number, or a duration string (``"3.2s"``, ``"6m0s"``, ``"20ms"``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _sensible(float(value))
    text = text_of(value).lower()
    if _DURATION.match(text):
        return _sensible(sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text)))
    return _sensible(number) if (number := _number(text)) is not None else None


def _from_headers(headers: Mapping[str, str], status_code: int) -> float | None:
    if (milliseconds := _number(headers.get("retry-after-ms"))) is not None:
        return _sensible(milliseconds / 1000)
    value = headers.get("retry-after", "").strip()
    if (seconds := _number(value)) is not None:
        return _sensible(seconds)
    if value:
        try:
            return _sensible(email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if status_code == 429:
        resets = [duration(headers.get(f"x-ratelimit-reset-{kind}")) for kind in ("requests", "tokens")]
        return max((reset for reset in resets if reset is not None), default=None)
    return None


def _from_fields(errors: Iterable[Mapping[str, Any]]) -> float | None:
    for error in errors:
        for key in ("retry_after", "retryAfter"):
            if (wait := duration(error.get(key))) is not None:
                return wait
        for detail in details_of(error):
            metadata = detail.get("metadata")
            given = detail.get("retryDelay") or (
                metadata.get("quotaResetDelay") if isinstance(metadata, dict) else None
            )
            if (wait := duration(given)) is not None:
                return wait
    return None


def _from_words(words: str) -> float | None:
    compound, simple, chinese = _WORDS
    if found := compound.search(words):
        return duration(found.group(1).replace(" ", "").lower())
    if found := simple.search(words) or chinese.search(words):
        unit = found.group(2).lower()
        return _sensible(float(found.group(1)) * _UNITS[_UNIT_NAMES[unit]])
    return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _sensible(seconds: float) -> float | None:
    if not math.isfinite(seconds) or seconds > MAX_WAIT:
        return None
    return max(seconds, 0.0)
