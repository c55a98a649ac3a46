"""A relay's error answer -> the typed error of ``image_tool.errors``.

Relays in the middle (new-api, one-api, LiteLLM) reshape errors: they replace codes with the status,
wrap the upstream's message in their own, append a request id, or send a sentence instead of a code.
So a kind is decided from the code, the type, the message (and any error embedded in it) and the
status together, in ``_classify``.
"""

from __future__ import annotations

import email.utils
import html
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from ..errors import (
    APIStatusError,
    AuthenticationError,
    ContentPolicyError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
)
from .relay_text import error_object, meaningful, reason_phrase, text_of, unwrapped

MAX_MESSAGE = 500
MAX_RETRY_AFTER = 86_400.0
"""A Retry-After beyond a day is not a wait anyone means: it is ignored."""

# Codes relays send (OpenAI's, new-api's types/error.go, one-api's), matched exactly.
CONTENT_POLICY_CODES = frozenset(
    {
        "content_policy_violation",
        "moderation_blocked",
        "content_filter",
        "sensitive_words_detected",
        "prompt_blocked",
        "violation_fee.grok.csam",
    }
)
QUOTA_CODES = frozenset(
    {
        "insufficient_user_quota",
        "insufficient_quota",
        "pre_consume_token_quota_failed",
        "billing_hard_limit_reached",
        "entitlement_required",
        "entitlement_inactive",
        "entitlement_daily_limit_exceeded",
        "entitlement_total_limit_exceeded",
        "budget_exceeded",
    }
)
MODEL_CODES = frozenset({"model_not_found", "model_not_available", "channel:no_available_key"})
RATE_LIMIT_CODES = frozenset(
    {
        "rate_limit_exceeded",
        "rate_limit_error",
        "token_concurrency_limit_reached",
        "token_concurrency_unavailable",
        "all_deployments_in_cooldown",
        "resource_exhausted",
    }
)

# Sentences relays send instead of a code, Chinese and English (matched lower-cased).
POLICY_PHRASES = (
    "content policy",
    "safety system",
    "not allowed by our",
    "moderation",
    "违反",
    "违规",
    "敏感",
)
RATE_LIMIT_PHRASES = (
    "rate limit",
    "too many requests",
    "overloaded",
    "cooldown",
    "resource exhausted",
    "请求数限制",
    "请求过于频繁",
    "频率限制",
    "负载已饱和",
)
QUOTA_PHRASES = (
    "额度不足",
    "额度已用尽",
    "余额不足",
    "insufficient quota",
    "quota exceeded",
    "quota is not enough",
    "exceeded your current quota",
    "insufficient balance",
    "budget has been exceeded",
)
MODEL_PHRASES = ("无可用渠道", "no available channel", "invalid model name", "model not found")


def error_from_response(
    status_code: int, body: bytes, headers: Mapping[str, str] | None = None
) -> APIStatusError:
    """The typed error for an error answer of the relay: a JSON error body, an HTML page, nothing."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict) and error_object(payload):
        return error_from_payload(status_code, payload, headers)
    message = _body_text(body) or reason_phrase(status_code)
    return _build(message, status_code, None, None, headers)


def error_from_payload(
    status_code: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> APIStatusError:
    """The typed error for a JSON error body: ``{"error": {"message", "type", "code"}}`` and kin."""
    error = error_object(payload)
    message = _clipped(text_of(error.get("message"))) or reason_phrase(status_code)
    code = text_of(error.get("code")) or None
    error_type = text_of(error.get("type")) or None
    return _build(message, status_code, code, error_type, headers)


def error_from_text(text: str, status_code: int = 200) -> APIStatusError | None:
    """The error a relay's prose stands for (a refusal or a rate-limit sentence), or ``None``."""
    lowered = text.lower()
    if _mentions(lowered, POLICY_PHRASES):
        return ContentPolicyError(text, status_code=status_code)
    if _mentions(lowered, RATE_LIMIT_PHRASES):
        return RateLimitError(text, status_code=status_code)
    return None


def _classify(status_code: int, codes: set[str], message: str) -> type[APIStatusError]:
    """The kind of an error from everything the relay said: ``codes`` holds the code, the type and
    the codes of errors embedded in the message; ``message`` the outer and inner messages."""
    lowered = message.lower()
    if codes & CONTENT_POLICY_CODES:
        return ContentPolicyError
    if codes & QUOTA_CODES or _mentions(lowered, QUOTA_PHRASES):
        return QuotaExceededError
    if codes & MODEL_CODES or _mentions(lowered, MODEL_PHRASES):
        return ModelNotFoundError
    if status_code in (401, 403):
        return AuthenticationError
    if status_code == 429 or codes & RATE_LIMIT_CODES or _mentions(lowered, RATE_LIMIT_PHRASES):
        return RateLimitError
    if _mentions(lowered, POLICY_PHRASES):
        return ContentPolicyError
    return APIStatusError


def _build(
    message: str,
    status_code: int,
    code: str | None,
    error_type: str | None,
    headers: Mapping[str, str] | None,
) -> APIStatusError:
    inner_message, inner_codes = unwrapped(message)
    codes = {meant for given in (code, error_type) if (meant := meaningful(given))} | inner_codes
    kind = _classify(status_code, codes, f"{message}\n{inner_message}")
    return kind(
        message,
        status_code=status_code,
        code=code,
        error_type=error_type,
        retry_after=_retry_after(headers or {}),
    )


def _mentions(lowered: str, phrases: tuple[str, ...]) -> bool:
    return any(phrase in lowered for phrase in phrases)


def _clipped(text: str, limit: int = 4 * MAX_MESSAGE) -> str:
    """A relay's message, bounded: it goes into exceptions, logs and the model's context."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _body_text(body: bytes) -> str:
    """A short readable form of a non-JSON body: an HTML page's title, or the text itself."""
    # The body is untrusted and may be huge: only its start is read, and read in linear time.
    text = body[: 64 * 1024].decode("utf-8", errors="replace").strip()
    # The title is what lies between the first "<title...>" and the "</title>" after it; found with
    # plain searches, since a pattern would rescan the rest of the text from every "<title".
    opening = re.search("<title", text, re.IGNORECASE)
    title_start = text.find(">", opening.end()) + 1 if opening else 0
    closing = re.compile("</title>", re.IGNORECASE).search(text, title_start) if title_start else None
    if closing:
        text = text[title_start : closing.start()]
    elif text.startswith("<"):
        # Tags end at a ">": only the text up to the last one can hold any. Past it, the pattern
        # would scan to the end from every "<".
        tags_end = text.rfind(">") + 1
        text = re.sub("<[^>]+>", " ", text[:tags_end]) + text[tags_end:]
    text = " ".join(html.unescape(text).split())
    return text[:MAX_MESSAGE]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date);
    ``None`` when absent or not a sensible wait (``nan``, ``inf``, past a day)."""
    # LiteLLM passes the upstream's headers on with an "llm_provider-" prefix.
    lowered = {key.lower().removeprefix("llm_provider-"): value for key, value in headers.items()}
    if (milliseconds := _number(lowered.get("retry-after-ms"))) is not None:
        return _sensible_wait(milliseconds / 1000)
    value = lowered.get("retry-after", "").strip()
    if (seconds := _number(value)) is not None:
        return _sensible_wait(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return _sensible_wait(when.timestamp() - time.time())


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _sensible_wait(seconds: float) -> float | None:
    if not math.isfinite(seconds) or seconds > MAX_RETRY_AFTER:
        return None
    return max(seconds, 0.0)
