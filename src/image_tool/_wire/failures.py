"""A relay's error answer -> the typed error of ``image_tool.errors``.

Relays in the middle (new-api, one-api, LiteLLM) reshape errors: they replace codes with the status,
wrap the upstream's message in their own, append a request id, or send a sentence instead of a code.
So a kind is decided from every signal together (``signals.py``: the tables and their order), and
the wait from wherever it is given (``waits.py``). Gateway pages (Cloudflare's 52x) are read by
their status and title.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import APIConnectionError, APIError, APIStatusError, APITimeoutError, AuthenticationError
from .gateways import DRAWN_BEHIND_GATEWAY, MAY_BE_DRAWN, UNREACHED
from .relay_text import codes_of, error_object, reason_phrase, text_of, unwrapped
from .signals import RATE_LIMIT, REFUSAL, kind_of
from .waits import wait_from

MAX_MESSAGE = 500

_GATEWAY_TITLE = re.compile(r"\b(52[0-4]):")
_MAY_BE_BILLED = "The relay had the request: the image may still be drawn, and billed."
# The settings that fix a refused key or a wrong address; constant text: never the key itself.
# (The command line, which has no flags for them, drops the "api_key= or " part.)
KEY_ADVICE = (
    "Check the API key: api_key= or IMAGE_TOOL_API_KEY (or OPENAI_API_KEY, paired with OPENAI_BASE_URL)."
)
BASE_URL_ADVICE = (
    "Check the base URL: base_url= or IMAGE_TOOL_BASE_URL (or OPENAI_BASE_URL, paired with "
    "OPENAI_API_KEY). It should stop before /chat/completions or /images/generations, and "
    "usually ends with /v1."
)


def error_from_response(status_code: int, body: bytes, headers: Mapping[str, str] | None = None) -> APIError:
    """The typed error for an error answer of the relay: a JSON error body, a gateway's page,
    an HTML page, nothing."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict) and error_object(payload):
        return error_from_payload(status_code, payload, headers)
    page = _body_text(body)
    if gateway := _gateway_error(status_code, page):
        return gateway
    return _build(page or reason_phrase(status_code), status_code, {}, headers or {})


def error_from_payload(
    status_code: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> APIStatusError:
    """The typed error for a JSON error body: ``{"error": {"message", "type", "code", "param"}}``,
    Google's ``{"error": {"code", "status", "details"}}``, a bare ``"error"`` string, and kin."""
    error = error_object(payload)
    message = _clipped(text_of(error.get("message"))) or reason_phrase(status_code)
    return _build(message, status_code, error, headers or {})


def error_from_text(text: str, status_code: int = 200) -> APIStatusError | None:
    """The error a relay's prose stands for (a refusal or a rate-limit sentence), or ``None``."""
    lowered = text.lower()
    for kind in (RATE_LIMIT, REFUSAL):
        if any(word in lowered for word in kind.words):
            return kind.error(text, status_code=status_code)
    return None


def _build(
    message: str, status_code: int, error: Mapping[str, Any], headers: Mapping[str, str]
) -> APIStatusError:
    inner = unwrapped(message)
    codes = codes_of(error) | inner.codes
    words = f"{message}\n{inner.message}"
    kind = kind_of(status_code, codes, words, text_of(error.get("param")) or None)
    code = text_of(error.get("code")) or text_of(error.get("status")) or None
    return kind(
        _with_advice(message, kind, status_code),
        status_code=status_code,
        code=code,
        error_type=text_of(error.get("type")) or None,
        retry_after=wait_from(headers, [error, *inner.errors], words, status_code),
    )


def _with_advice(message: str, kind: type[APIStatusError], status_code: int) -> str:
    """The message, with the setting to check when the key was refused, or when a 404 says the
    endpoint is not there (a 404 about a missing model is a ModelNotFoundError, and gets none)."""
    if issubclass(kind, AuthenticationError):
        advice = KEY_ADVICE
    elif kind is APIStatusError and status_code == 404:
        advice = BASE_URL_ADVICE
    else:
        return message
    return f"{message.rstrip()}{'' if message.rstrip().endswith(('.', '。')) else '.'} {advice}"


def _gateway_error(status_code: int, page: str) -> APIError | None:
    """A Cloudflare page's error, by its status (or the status its title names)."""
    titled = _GATEWAY_TITLE.search(page)
    status = (
        status_code if status_code in (*UNREACHED, *DRAWN_BEHIND_GATEWAY) else int(titled[1]) if titled else 0
    )
    if status in UNREACHED:
        return APIConnectionError(
            f"{page or reason_phrase(status)}: {UNREACHED[status]}.", status_code=status
        )
    if status in MAY_BE_DRAWN:
        kind = APITimeoutError if status == 524 else APIStatusError
        message = f"{page or reason_phrase(status)}: {MAY_BE_DRAWN[status]}. {_MAY_BE_BILLED}"
        return kind(message, status_code=status)
    return None


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
