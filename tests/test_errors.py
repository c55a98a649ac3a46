"""The one mapping from a relay's error answer to the typed errors."""

from __future__ import annotations

import json

import pytest

from image_tool.errors import (
    APIError,
    APIStatusError,
    AuthenticationError,
    ContentPolicyError,
    RateLimitError,
    error_from_response,
)


def error_body(message: str, code: str | None = None, error_type: str = "new_api_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": error_type, "code": code}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (401, error_body("Invalid token", "invalid_api_key"), AuthenticationError, "invalid_api_key"),
        (403, error_body("该令牌无权访问模型 gpt-4o-image"), AuthenticationError, None),
        (
            400,
            error_body("rejected", "content_policy_violation"),
            ContentPolicyError,
            "content_policy_violation",
        ),
        (400, error_body("blocked", "moderation_blocked"), ContentPolicyError, "moderation_blocked"),
        (429, error_body("您已达到请求数限制", "rate_limit_exceeded"), RateLimitError, "rate_limit_exceeded"),
        (429, b"", RateLimitError, None),
        (
            500,
            error_body("do request failed", "do_request_failed", "upstream_error"),
            APIStatusError,
            "do_request_failed",
        ),
        (
            400,
            error_body("bad size", "invalid_size", "invalid_request_error"),
            APIStatusError,
            "invalid_size",
        ),
        (200, error_body("quota", "insufficient_user_quota"), APIStatusError, "insufficient_user_quota"),
    ],
)
def test_error_kinds(status: int, body: bytes, kind: type[APIError], code: str | None) -> None:
    error = error_from_response(status, body)
    assert type(error) is kind
    assert error.status_code == status
    assert error.code == code
    assert error.message


def test_error_carries_the_relays_message_type_and_status() -> None:
    error = error_from_response(500, error_body("upstream failed (request id: 42)", "x", "upstream_error"))
    assert error.message == "upstream failed (request id: 42)"
    assert error.error_type == "upstream_error"
    assert str(error) == "upstream failed (request id: 42) (HTTP 500, code x)"


def test_html_gateway_page_becomes_its_title() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    error = error_from_response(502, page)
    assert type(error) is APIStatusError
    assert error.message == "502 Bad Gateway"


def test_empty_body_gets_the_status_phrase() -> None:
    assert error_from_response(429, b"").message == "Too Many Requests"
    assert error_from_response(599, b"").message == "HTTP status 599"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: no wait
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    error = error_from_response(429, b"", headers)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == seconds


def test_redact_removes_an_echoed_key() -> None:
    error = error_from_response(401, error_body("Invalid token sk-echoed-secret-123"))
    error.redact("sk-echoed-secret-123")
    assert "sk-echoed-secret-123" not in str(error)
    assert "sk-echoed-secret-123" not in repr(error)
    assert "[redacted]" in error.message
