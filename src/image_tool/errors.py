"""The exceptions image-tool raises, and the one mapping from a relay's error answer to them.

ImageToolError
├── ConfigurationError            settings missing or invalid, raised at construction
├── InvalidRequestError           an argument of a call is invalid, found before anything is sent
│   └── ReferenceImageError       a reference image (for an edit) cannot be used
├── SaveError                     an image was generated but could not be saved
└── APIError                      a generation request failed
    ├── APIConnectionError        the relay could not be reached, or the connection broke
    │   └── APITimeoutError       the relay did not answer in time
    ├── APIStatusError            the relay answered with an error
    │   ├── AuthenticationError   the key was refused
    │   ├── QuotaExceededError    the account behind the key has no quota left
    │   ├── ModelNotFoundError    the relay has no channel for the model
    │   ├── ContentPolicyError    the prompt was refused under the content policy
    │   └── RateLimitError        too many requests, or the relay is saturated
    └── MalformedResponseError    the answer could not be read
        └── NoImageError          the answer was readable but held no image
            └── StreamWithoutImageError  a stream ended cleanly with nothing in it

These are all a caller can catch. An internal exception (``reading.UnreadableBodyError``) subclasses
the tree and is turned into one of these before it leaves the package; the emulator of
``image_tool.testing`` keeps its private exceptions inside its own threads.

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
from http import HTTPStatus
from typing import Any

from ._wire.redaction import scrub

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "ContentPolicyError",
    "ImageToolError",
    "InvalidRequestError",
    "MalformedResponseError",
    "ModelNotFoundError",
    "NoImageError",
    "QuotaExceededError",
    "RateLimitError",
    "ReferenceImageError",
    "SaveError",
    "StreamWithoutImageError",
]

_MAX_MESSAGE = 500
_MAX_RETRY_AFTER = 86_400.0
"""A Retry-After beyond a day is not a wait anyone means: it is ignored."""


class ImageToolError(Exception):
    """Base class of every image-tool exception."""


class ConfigurationError(ImageToolError):
    """A setting is missing or invalid; the message names the variable or argument to set."""


class InvalidRequestError(ImageToolError):
    """An argument of a call is invalid (an empty prompt, ``n`` below 1); nothing was sent."""


class ReferenceImageError(InvalidRequestError):
    """A reference image cannot be used; the message says which one and why."""


class SaveError(ImageToolError):
    """An image was generated but could not be saved; the message says why.

    Saving never raises out of a generation: the reason goes to ``GeneratedImage.save_error``.
    """


class APIError(ImageToolError):
    """A generation request failed. Carries what the relay said, never the API key."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        answer_started: bool = False,
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.message = message
        """The relay's own message, or a description of the failure."""
        self.status_code = status_code
        """The HTTP status of the answer, if one arrived."""
        self.code = scrub(code) if code else code
        """The relay's error code, such as ``content_policy_violation``."""
        self.error_type = scrub(error_type) if error_type else error_type
        """The relay's error type, such as ``new_api_error``."""
        self.answer_started = answer_started
        """Whether a successful answer had begun when this failed: such a generation may be
        billed, and is never retried."""

    @property
    def summary(self) -> str:
        """The relay's message as a person or a model should read it: the innermost error a relay
        in the middle wrapped (``litellm.BadRequestError: OpenAIException - ...``), without the
        request id relays append."""
        message = _unwrapped(self.message)[0]
        for trailer in _TRAILERS:
            if (start := message.find(trailer)) != -1:
                message = message[:start].rstrip(" \n.")
        # new-api and one-api send only the request id when the upstream's body was unreadable.
        return _REQUEST_ID.sub("", message).strip() or self.code or _reason(self.status_code) or self.message

    @property
    def request_id(self) -> str | None:
        """The id a relay appended to its message (`` (request id: ...)``), for its support."""
        found = _REQUEST_ID.search(self.message)
        return found.group(1) if found else None

    def __str__(self) -> str:
        details = []
        if self.status_code is not None:
            details.append(f"HTTP {self.status_code}")
        if self.code:
            details.append(f"code {self.code}")
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def redact(self, secret: str) -> None:
        """Remove ``secret`` from every text of the error (relays sometimes echo keys)."""
        self.message = scrub(self.message, secret)
        self.code = scrub(self.code, secret) if self.code else self.code
        self.error_type = scrub(self.error_type, secret) if self.error_type else self.error_type
        self.args = (self.message,)


class APIConnectionError(APIError):
    """The relay could not be reached, or the connection broke before a full answer."""


class APITimeoutError(APIConnectionError):
    """The relay did not answer within the configured timeout."""


class APIStatusError(APIError):
    """The relay answered with an error (an error status, or an error body)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after
        """Seconds the relay asked to wait (``Retry-After`` or ``retry-after-ms``), when it said."""


class AuthenticationError(APIStatusError):
    """The relay refused the API key (HTTP 401 or 403)."""


class QuotaExceededError(APIStatusError):
    """The account behind the key has no quota left (``insufficient_user_quota``)."""


class ModelNotFoundError(APIStatusError):
    """The relay has no channel serving the model (``model_not_found``)."""


class ContentPolicyError(APIStatusError):
    """The relay refused the prompt under its content policy."""


class RateLimitError(APIStatusError):
    """Too many requests, or the relay's upstream is saturated (HTTP 429)."""


class MalformedResponseError(APIError):
    """The relay's answer could not be read as a generation result."""


class NoImageError(MalformedResponseError):
    """The relay's answer was readable but held no image."""


class StreamWithoutImageError(NoImageError):
    """A streamed answer ended cleanly but carried nothing: no image, no text.

    Not a refusal. Relays answer so when they cannot stream the model (LiteLLM drops an answer in
    the documented ``data[]`` shape; new-api sends a bare ``[DONE]``): ask with ``stream=False``.
    """


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
_MEANINGLESS_CODES = frozenset({"", "none", "null", "unknown_error"})
"""Codes that say nothing: LiteLLM writes the status as the code and Python's ``None`` as text."""

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

# " (request id: 2024121602163036521732429064585)", as new-api and one-api append it.
_REQUEST_ID = re.compile(r"\s*[(（]\s*request id[:：]\s*([\w.-]{1,128})\s*[)）]", re.IGNORECASE)
# What relays in the middle put before the upstream's message: "litellm.RateLimitError: ",
# "RateLimitError: ", "OpenAIException - ", "geminiException - ".
_WRAPPER = re.compile(r"(?:litellm\.\w{1,60}:\s*|\w{1,60}Error:\s+|\w{1,60}Exception\s+-\s+)+")
# And after it: LiteLLM's notes on its routing.
_TRAILERS = ("Received Model Group=", "LiteLLM: model group ")
_MAX_NESTING = 3


def error_from_response(
    status_code: int, body: bytes, headers: Mapping[str, str] | None = None
) -> APIStatusError:
    """The typed error for an error answer of the relay: a JSON error body, an HTML page, nothing."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict) and _error_object(payload):
        return error_from_payload(status_code, payload, headers)
    message = _body_text(body) or _reason(status_code)
    return _build(message, status_code, None, None, headers)


def error_from_payload(
    status_code: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> APIStatusError:
    """The typed error for a JSON error body: ``{"error": {"message", "type", "code"}}`` and kin."""
    error = _error_object(payload)
    message = _clipped(_text(error.get("message"))) or _reason(status_code)
    code = _text(error.get("code")) or None
    error_type = _text(error.get("type")) or None
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
    inner_message, inner_codes = _unwrapped(message)
    codes = {meant for given in (code, error_type) if (meant := _meaningful(given))} | inner_codes
    kind = _classify(status_code, codes, f"{message}\n{inner_message}")
    return kind(
        message,
        status_code=status_code,
        code=code,
        error_type=error_type,
        retry_after=_retry_after(headers or {}),
    )


def _meaningful(code: str | None) -> str | None:
    """A code that says something, lower-cased: not a status ("400"), not Python's "None"."""
    code = (code or "").strip().lower()
    return None if code in _MEANINGLESS_CODES or code.isdigit() else code


def _unwrapped(message: str) -> tuple[str, set[str]]:
    """The innermost message of an error that relays wrapped, and the codes met on the way.

    ``litellm.InternalServerError: geminiException - {"error": {"code": 503, "message": "The
    model is overloaded"}}`` -> ``("The model is overloaded", set())``.
    """
    codes: set[str] = set()
    for _ in range(_MAX_NESTING):
        if wrapper := _WRAPPER.match(message):
            message = message[wrapper.end() :]
        start = message.find("{")
        if start == -1:
            break
        try:
            embedded, _end = json.JSONDecoder().raw_decode(message, start)
        except (ValueError, RecursionError):
            break
        error = _error_object(embedded) if isinstance(embedded, dict) else {}
        inner = _text(error.get("message"))
        if not inner:
            break
        codes |= {code for key in ("code", "type", "status") if (code := _meaningful(_text(error.get(key))))}
        message = inner
    return message.strip(), codes


def _mentions(lowered: str, phrases: tuple[str, ...]) -> bool:
    return any(phrase in lowered for phrase in phrases)


def _error_object(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``{"error": {...}}`` object of an OpenAI-style error body, or ``{}``."""
    error = payload.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str) and error:
        return {"message": error}
    return {"message": payload["message"]} if isinstance(payload.get("message"), str) else {}


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else str(value) if value is not None else ""


def _clipped(text: str, limit: int = 4 * _MAX_MESSAGE) -> str:
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
    return text[:_MAX_MESSAGE]


def _reason(status_code: int | None) -> str:
    if status_code is None:
        return ""
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return f"HTTP status {status_code}"


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
    if not math.isfinite(seconds) or seconds > _MAX_RETRY_AFTER:
        return None
    return max(seconds, 0.0)
