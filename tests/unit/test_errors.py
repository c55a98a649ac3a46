"""The one mapping from a relay's error answer to the typed errors (``_wire/failures.py``)."""

from __future__ import annotations

import json

import pytest

from image_tool._wire.failures import (
    BASE_URL_ADVICE,
    KEY_ADVICE,
    error_from_payload,
    error_from_response,
    error_from_text,
)
from image_tool.errors import (
    APIError,
    APIStatusError,
    AuthenticationError,
    ContentPolicyError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
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
        (200, error_body("quota", "insufficient_user_quota"), QuotaExceededError, "insufficient_user_quota"),
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
        ({"llm_provider-retry-after": "12"}, 12.0),  # LiteLLM passes the upstream's header on so
        ({"llm_provider-retry-after-ms": "250"}, 0.25),
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


# Relay error bodies of new-api and one-api, as they come in the field.
RELAY_ERRORS = [
    (
        403,
        "用户额度不足, 剩余额度: ＄0.012 (request id: 2026031115323)",
        "insufficient_user_quota",
        "new_api_error",
        QuotaExceededError,
    ),
    (
        503,
        "当前分组 default 下对于模型 gpt-4o-image 无可用渠道 (request id: 42)",
        "model_not_found",
        "new_api_error",
        ModelNotFoundError,
    ),
    (503, "当前分组 vip 下对于模型 sora_image 无可用渠道", None, "one_api_error", ModelNotFoundError),
    (429, "当前分组上游负载已饱和，请稍后再试 (request id: 7)", None, "new_api_error", RateLimitError),
    (503, "当前分组上游负载已饱和，请稍后再试", None, "upstream_error", RateLimitError),
    (429, "您已达到请求数限制：1分钟内最多请求10次", None, "one_api_error", RateLimitError),
    (
        500,
        'do request failed: Post "https://upstream": EOF',
        "do_request_failed",
        "upstream_error",
        APIStatusError,
    ),
    (502, "bad response status code 502", "bad_response_status_code", "upstream_error", APIStatusError),
    (
        400,
        "输入的提示词违反了OpenAI的相关服务政策，请调整提示词后进行重试",
        None,
        "upstream_error",
        ContentPolicyError,
    ),
    (401, "无效的令牌", "invalid_api_key", "one_api_error", AuthenticationError),
    # new-api: a spent token is a 401 without a code; prompt_blocked is its content-policy code.
    (401, "该令牌额度已用尽 (request id: 2026031115323)", None, "new_api_error", QuotaExceededError),
    (400, "prompt blocked", "prompt_blocked", "new_api_error", ContentPolicyError),
    (429, "token concurrency limit", "token_concurrency_limit_reached", "new_api_error", RateLimitError),
    # one-api's early saturation wording, under a billing code that is not about billing.
    (
        None,
        "当前分组负载已饱和，请稍后再试，或升级账户以提升服务质量。",
        "billing_not_active",
        "billing_not_active",
        RateLimitError,
    ),
]

# The same failures after LiteLLM: code replaced by the status, messages wrapped, upstream JSON
# embedded in the message.
LITELLM_ERRORS = [
    (
        400,
        "litellm.BadRequestError: OpenAIException - Your request was rejected as a result of our "
        "safety system.",
        "400",
        ContentPolicyError,
        "Your request was rejected as a result of our safety system.",
    ),
    (
        400,
        'litellm.BadRequestError: OpenAIException - {"error": {"message": "rejected", "type": '
        '"image_generation_user_error", "code": "moderation_blocked"}}',
        "400",
        ContentPolicyError,
        "rejected",
    ),
    (
        403,
        "litellm.PermissionDeniedError: user quota is not enough",
        "403",
        QuotaExceededError,
        "user quota is not enough",
    ),
    (
        500,
        'litellm.InternalServerError: litellm.InternalServerError: geminiException - {\n  "error": '
        '{\n    "code": 503,\n    "message": "The model is overloaded. Please try again later.",\n'
        '    "status": "UNAVAILABLE"\n  }\n}\n. Received Model Group=gemini-3-pro-image-preview',
        "500",
        RateLimitError,
        "The model is overloaded. Please try again later.",
    ),
    (
        400,
        "/chat/completions: Invalid model name passed in model=claude-opus-5.",
        "400",
        ModelNotFoundError,
        None,
    ),
    (500, '{"error":"invalid options: images"}', "500", APIStatusError, "invalid options: images"),
    (
        429,
        "litellm.RateLimitError: RateLimitError: OpenAIException - 您已达到请求数限制 (request id: 7). "
        "LiteLLM: model group 'gpt-4o-image' failed with the error above. No fallback was attempted.",
        "429",
        RateLimitError,
        "您已达到请求数限制",
    ),
]


@pytest.mark.parametrize(("status", "message", "code", "kind", "summary"), LITELLM_ERRORS)
def test_errors_reshaped_by_litellm(
    status: int, message: str, code: str, kind: type[APIError], summary: str | None
) -> None:
    error = error_from_response(status, error_body(message, code, "None"))
    assert type(error) is kind
    assert error.message == message  # whole, for support
    assert error.summary == (summary or message)


def test_the_request_id_stays_in_the_message_but_out_of_the_summary() -> None:
    error = error_from_response(
        429, error_body("当前分组上游负载已饱和，请稍后再试 (request id: 2024121602163)")
    )
    assert error.request_id == "2024121602163"
    assert "2024121602163" in error.message
    assert error.summary == "当前分组上游负载已饱和，请稍后再试"


@pytest.mark.parametrize(("status", "message", "code", "error_type", "kind"), RELAY_ERRORS)
def test_relay_error_bodies(
    status: int | None, message: str, code: str | None, error_type: str, kind: type[APIError]
) -> None:
    status = status or 200  # a status the source did not show: the body alone decides
    error = error_from_response(status, error_body(message, code, error_type))
    assert type(error) is kind
    assert (error.status_code, error.code, error.error_type) == (status, code, error_type)
    assert error.message.startswith(message)  # the relay's own words, Chinese included


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("图片检测系统认为内容可能违反相关政策", ContentPolicyError),
        ("输入的提示词...违反了OpenAI的相关服务政策，请调整提示词后进行重试", ContentPolicyError),
        ("Your request may contain content that is not allowed by our safety system.", ContentPolicyError),
        ("当前分组上游负载已饱和，请稍后再试", RateLimitError),
        ("Rate limit reached for gpt-4o-image, please try again in 20s", RateLimitError),
        ("任务已提交，ID: task_01abc", None),
    ],
)
def test_error_from_text(text: str, kind: type[APIError] | None) -> None:
    error = error_from_text(text)
    assert (type(error) if error else None) is kind
    if error:
        assert error.message == text
        assert error.status_code == 200


def test_error_from_payload_reads_a_stream_error_object() -> None:
    error = error_from_payload(200, {"error": {"message": "upstream timeout", "type": "upstream_error"}})
    assert type(error) is APIStatusError
    assert error.error_type == "upstream_error"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, error_body("Invalid token (request id: 20260311)", "invalid_api_key")),
        (401, b""),
        (403, error_body("该令牌无权访问模型 gpt-4o-image")),
        (200, error_body("API key not valid", "API_KEY_INVALID")),  # in a stream: no status to go by
    ],
)
def test_a_refused_key_names_the_settings_that_hold_it(status: int, body: bytes) -> None:
    error = error_from_response(status, body)
    assert type(error) is AuthenticationError
    assert error.message.endswith(f". {KEY_ADVICE}")
    for name in ("api_key=", "IMAGE_TOOL_API_KEY", "OPENAI_API_KEY"):
        assert name in str(error)
    assert "IMAGE_TOOL_BASE_URL" not in str(error)


@pytest.mark.parametrize(
    "body",
    [
        error_body("Invalid URL (POST /chat/completions)", None, "invalid_request_error"),  # OpenAI's
        b"<html><head><title>404 Not Found</title></head><body>nginx</body></html>",
        b"404 page not found",  # Go's net/http, as new-api and one-api answer an unknown path
        b"",
    ],
)
def test_a_404_of_the_endpoint_names_the_base_url_setting(body: bytes) -> None:
    error = error_from_response(404, body)
    assert type(error) is APIStatusError
    assert error.message.endswith(f". {BASE_URL_ADVICE}")
    for words in ("base_url=", "IMAGE_TOOL_BASE_URL", "/chat/completions", "/images/generations", "/v1"):
        assert words in str(error)
    assert "IMAGE_TOOL_API_KEY" not in str(error)


@pytest.mark.parametrize(
    "body",
    [
        error_body("The model `dall-e-4` does not exist", "model_not_found", "invalid_request_error"),
        json.dumps({"error": {"message": "not found", "param": "model"}}).encode(),
        error_body("当前分组 default 下对于模型 gpt-x 无可用渠道"),
    ],
)
def test_a_404_about_the_model_stays_a_missing_model_without_url_advice(body: bytes) -> None:
    error = error_from_response(404, body)
    assert type(error) is ModelNotFoundError
    assert "IMAGE_TOOL_BASE_URL" not in str(error)


@pytest.mark.parametrize("status", [400, 405, 500, 502])
def test_other_failures_get_no_settings_advice(status: int) -> None:
    error = error_from_response(status, error_body("Bad thing happened"))
    assert error.message == "Bad thing happened"
