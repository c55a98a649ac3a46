"""Reading a relay's error, whatever wraps it: the error object of a body (OpenAI's, a bare string
beside a message, Google's), the innermost message that relays in the middle wrapped, the codes
and error objects met on the way, the request id relays append. Pure; ``errors.py`` and
``failures.py`` both read errors through here."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

MEANINGLESS_CODES = frozenset({"", "none", "null", "unknown_error"})
"""Codes that say nothing: LiteLLM writes the status as the code and Python's ``None`` as text."""

# " (request id: 2024121602163036521732429064585)", as new-api and one-api append it.
REQUEST_ID = re.compile(r"\s*[(（]\s*request id[:：]\s*([\w.-]{1,128})\s*[)）]", re.IGNORECASE)
# What relays in the middle put before the upstream's message: "litellm.RateLimitError: ",
# "RateLimitError: ", "OpenAIException - ", "geminiException - ".
WRAPPER = re.compile(r"(?:litellm\.\w{1,60}:\s*|\w{1,60}Error:\s+|\w{1,60}Exception\s+-\s+)+")
# And after it: LiteLLM's notes on its routing.
TRAILERS = ("Received Model Group=", "LiteLLM: model group ")
MAX_NESTING = 3


def summary(message: str, code: str | None, status_code: int | None) -> str:
    """The message as a person or a model should read it: the innermost error a relay in the
    middle wrapped (``litellm.BadRequestError: OpenAIException - ...``), without the request id
    relays append."""
    message = unwrapped(message).message
    for trailer in TRAILERS:
        if (start := message.find(trailer)) != -1:
            message = message[:start].rstrip(" \n.")
    # new-api and one-api send only the request id when the upstream's body was unreadable.
    return REQUEST_ID.sub("", message).strip() or code or reason_phrase(status_code) or message


def request_id(message: str) -> str | None:
    """The id a relay appended to its message (`` (request id: ...)``), for its support."""
    found = REQUEST_ID.search(message)
    return found.group(1) if found else None


def meaningful(code: str | None) -> str | None:
    """A code that says something, lower-cased: not a status ("400"), not Python's "None"."""
    code = (code or "").strip().lower()
    return None if code in MEANINGLESS_CODES or code.isdigit() else code


@dataclass
class Unwrapped:
    """What an error message holds, wrappers taken off."""

    message: str
    """The innermost message."""
    codes: set[str] = field(default_factory=set)
    """The codes, types, statuses and reasons of the errors embedded on the way."""
    errors: list[Mapping[str, Any]] = field(default_factory=list)
    """The embedded error objects themselves, outermost first."""


def unwrapped(message: str) -> Unwrapped:
    """The innermost message of an error that relays wrapped, and what was met on the way.

    ``litellm.InternalServerError: geminiException - {"error": {"code": 503, "message": "The
    model is overloaded"}}`` -> ``"The model is overloaded"``.
    """
    found = Unwrapped(message)
    for _ in range(MAX_NESTING):
        if wrapper := WRAPPER.match(message):
            message = message[wrapper.end() :]
        start = message.find("{")
        if start == -1:
            break
        try:
            embedded, _end = json.JSONDecoder().raw_decode(message, start)
        except (ValueError, RecursionError):
            break
        error = error_object(embedded) if isinstance(embedded, dict) else {}
        inner = text_of(error.get("message"))
        if not inner:
            break
        found.codes |= codes_of(error)
        found.errors.append(error)
        message = inner
    found.message = message.strip()
    return found


def codes_of(error: Mapping[str, Any]) -> set[str]:
    """An error object's codes that say something, lower-cased: its ``code``, ``type`` and
    ``status`` (Google's ``RESOURCE_EXHAUSTED``), and the ``reason`` of each of Google's
    ``details`` (``ErrorInfo``: ``RATE_LIMIT_EXCEEDED``, ``API_KEY_INVALID``)."""
    given = [error.get("code"), error.get("type"), error.get("status")]
    given += [detail.get("reason") for detail in details_of(error)]
    return {code for value in given if (code := meaningful(text_of(value)))}


def details_of(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Google's ``error.details``: typed objects (``ErrorInfo``, ``RetryInfo``, ``QuotaFailure``)."""
    details = error.get("details")
    return (
        [detail for detail in details[:16] if isinstance(detail, dict)] if isinstance(details, list) else []
    )


def error_object(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The error object of an error body: ``{"error": {...}}`` (OpenAI's, Google's); a bare
    ``"error"`` string, with the text beside it (``message``, ``detail``, ``msg``) kept; or a
    top-level ``message``. ``{}`` when there is none."""
    error = payload.get("error")
    if isinstance(error, dict):
        return error
    beside = next((text for key in ("message", "detail", "msg") if (text := text_of(payload.get(key)))), "")
    if isinstance(error, str) and error.strip():
        message = f"{error.strip()}: {beside}" if beside and beside != error.strip() else error.strip()
        return {"message": message}
    return {"message": beside} if isinstance(payload.get("message"), str) and beside else {}


def text_of(value: object) -> str:
    return value.strip() if isinstance(value, str) else str(value) if value is not None else ""


def reason_phrase(status_code: int | None) -> str:
    if status_code is None:
        return ""
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return f"HTTP status {status_code}"
