"""Each kind of failure read from each of its signals, in each provider's shape; waits wherever
they are given; refusals in finish reasons; gateway pages."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from image_tool import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ContentPolicyError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
)
from image_tool._policy.retries import is_retryable
from image_tool._tool.advice import describe_failure, describe_result
from image_tool._wire.failures import error_from_response
from image_tool._wire.parsing import parse_result
from image_tool._wire.signals import KINDS, Kind
from image_tool._wire.streaming import StreamReader
from image_tool._wire.waits import duration, wait_from
from image_tool.testing import png_image

NEUTRAL = "The request could not be completed"
"""A message with no signal in it: the signal under test is the only one."""

ADVICE = {
    ContentPolicyError: "Rephrase",
    QuotaExceededError: "run out of quota",
    ModelNotFoundError: "no model available",
    AuthenticationError: "credentials",
    RateLimitError: "Wait",
}
"""What the model is told for each kind: the advice follows the kind."""

Body = Callable[[str, str | None], dict[str, Any]]
"""A provider's error body, from a message and a code (``None``: no code)."""


def openai(message: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def new_api(message: str, code: str | None) -> dict[str, Any]:
    error = {"message": f"{message} (request id: 2026120612000012345)", "type": "new_api_error", "param": ""}
    return {"error": {**error, "code": code}}


def litellm(message: str, code: str | None) -> dict[str, Any]:
    # LiteLLM writes the status as the code: the upstream's own error survives inside its message.
    upstream = json.dumps({"error": {"message": message, "code": code}})
    wrapped = f"litellm.BadRequestError: OpenAIException - {upstream}"
    return {"error": {"message": wrapped, "type": None, "param": None, "code": "400"}}


def openrouter(message: str, code: str | None) -> dict[str, Any]:
    raw = json.dumps({"error": {"message": message, "code": code}})
    return {"error": {"code": 400, "message": message, "metadata": {"provider_name": "X", "raw": raw}}}


def google(message: str, code: str | None) -> dict[str, Any]:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code.upper()}] if code else []
    return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT", "details": details}}


def google_in_a_relay(message: str, code: str | None) -> dict[str, Any]:
    inner = json.dumps(google(message, code), indent=2)
    return {"error": {"message": f"All accounts exhausted. Last error: HTTP 400: {inner}", "code": 400}}


SHAPES: dict[str, Body] = {
    "openai": openai,
    "new-api": new_api,
    "litellm": litellm,
    "google": google,
    "google-in-a-relay": google_in_a_relay,
}
"""OpenRouter keeps the provider's code only in ``metadata.raw``: its words are its signal."""


def signals(kind: Kind) -> list[tuple[str, str | None]]:
    """Every signal of ``kind`` as a (message, code) pair: each code, then each word."""
    return [(NEUTRAL, code) for code in sorted(kind.codes)] + [
        (f"{NEUTRAL}: {word}", None) for word in kind.words
    ]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_signal_of_a_kind_reads_as_that_kind_in_every_shape(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(KINDS))
    message, code = data.draw(st.sampled_from(signals(kind)))
    shapes = [*SHAPES.values(), *([openrouter] if code is None else [])]
    body = data.draw(st.sampled_from(shapes))(message, code)
    error = error_from_response(400, json.dumps(body, ensure_ascii=False).encode())
    assert type(error) is kind.error, (body, error)
    assert ADVICE[kind.error] in describe_failure(error)


@pytest.mark.parametrize("status", [401, 403, 429])
def test_a_status_decides_only_when_nothing_else_does(status: int) -> None:
    assert type(error_from_response(status, json.dumps(openai(NEUTRAL, None)).encode())) is (
        RateLimitError if status == 429 else AuthenticationError
    )
    quota = error_from_response(status, json.dumps(openai(NEUTRAL, "insufficient_quota")).encode())
    assert type(quota) is QuotaExceededError


def test_a_type_alone_decides_nothing() -> None:
    """OpenAI's Images API gives a refusal, a bad size and an unknown model one type."""
    body = {
        "error": {
            "message": "Invalid size '123x456'. Supported sizes are 1024x1024.",
            "code": "invalid_value",
        }
    }
    body["error"] |= {"type": "image_generation_user_error", "param": "size"}
    assert type(error_from_response(400, json.dumps(body).encode())) is APIStatusError
    body["error"] |= {"param": "model", "message": "Invalid value."}
    assert type(error_from_response(400, json.dumps(body).encode())) is ModelNotFoundError


@pytest.mark.parametrize(
    "message",
    [
        "The model 'dall-e-3' does not exist.",
        "model gpt-x is not supported",
        "模型 gpt-x 不存在",
        "models/gpt-x-1.5 is not found for API version v1beta",
    ],
)
def test_a_model_named_as_absent_is_model_not_found(message: str) -> None:
    error = error_from_response(400, json.dumps(openai(message, "invalid_value")).encode())
    assert type(error) is ModelNotFoundError
    assert "dall-e-3" in describe_failure(error) or "gpt-x" in describe_failure(error)


def test_a_model_word_in_another_sentence_decides_nothing() -> None:
    message = "The model is overloaded. The resource was not found."
    assert type(error_from_response(500, json.dumps(openai(message, None)).encode())) is RateLimitError


def test_early_one_api_saturation_under_a_billing_code_stays_a_rate_limit() -> None:
    body = {
        "error": {
            "message": "当前分组负载已饱和，请稍后再试",
            "type": "billing_not_active",
            "code": "billing_not_active",
        }
    }
    assert type(error_from_response(500, json.dumps(body, ensure_ascii=False).encode())) is RateLimitError
    body["error"]["message"] = "Your account is not active, please check your billing details."
    assert type(error_from_response(429, json.dumps(body).encode())) is QuotaExceededError


# --- Waits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "words", "expected"),
    [
        ({"Retry-After": "7"}, "try again in 20s", 7.0),
        ({"retry-after-ms": "1500"}, "", 1.5),
        ({"llm_provider-retry-after": "4"}, "", 4.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, "", 360.0),
        ({}, "Rate limit reached. Please try again in 20s.", 20.0),
        ({}, "Please retry in 36.23s.", 36.23),
        ({}, "Your quota will reset after 3s.", 3.0),
        ({}, "Please try again in 1m30s.", 90.0),
        ({}, "try again in 500ms", 0.5),
        ({}, "请 30 秒后重试", 30.0),
        ({}, "请求过于频繁，请1分钟后再试", 60.0),
        ({}, "Too many requests", None),
    ],
)
def test_a_wait_is_read_wherever_it_is_given(
    headers: dict[str, str], words: str, expected: float | None
) -> None:
    assert wait_from(headers, [], words, 429) == pytest.approx(expected)


def test_googles_retry_info_and_quota_reset_delay_are_waits() -> None:
    retry_info = {
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3.299376739s"}]
    }
    quota_reset = {"details": [{"reason": "RATE_LIMIT_EXCEEDED", "metadata": {"quotaResetDelay": "12s"}}]}
    assert wait_from({}, [retry_info], "", 429) == pytest.approx(3.299376739)
    assert wait_from({}, [quota_reset], "reset after 99s", 429) == 12.0
    assert [duration(value) for value in ("3.5s", "6m0s", "20ms", 4, "nonsense", "1e9")] == [
        3.5,
        360.0,
        0.02,
        4.0,
        None,
        None,
    ]


def test_the_advice_names_the_wait() -> None:
    body = openai("Rate limit reached for images. Please try again in 42s.", "rate_limit_exceeded")
    error = error_from_response(429, json.dumps(body).encode())
    assert isinstance(error, RateLimitError) and error.retry_after == 42.0
    assert "42 seconds" in describe_failure(error)


# --- Refusals in finish reasons ----------------------------------------------------------------------


def completion(finish_reason: str, content: str | None, **extra: Any) -> bytes:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish_reason,
    }
    return json.dumps({"object": "chat.completion", "choices": [{**choice, **extra}]}).encode()


@pytest.mark.parametrize("reason", ["content_filter", "SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT"])
@pytest.mark.parametrize("content", [None, "", "I can't help with that."])
def test_a_refusing_finish_reason_is_a_refusal_with_or_without_content(
    reason: str, content: str | None
) -> None:
    with pytest.raises(ContentPolicyError) as refused:
        parse_result(completion(reason, content), requested_model="m")
    assert reason in str(refused.value)
    advice = describe_failure(refused.value)
    assert "Rephrase" in advice and "stream=False" not in advice and "once more" not in advice


def test_openrouters_native_finish_reason_and_geminis_block_reason_are_read() -> None:
    native = completion("stop", None, native_finish_reason="IMAGE_PROHIBITED_CONTENT")
    with pytest.raises(ContentPolicyError):
        parse_result(native, requested_model="m")
    blocked = json.loads(completion("stop", None))
    blocked["promptFeedback"] = {"blockReason": "BLOCKLIST"}
    with pytest.raises(ContentPolicyError):
        parse_result(json.dumps(blocked).encode(), requested_model="m")


def test_a_streamed_refusal_is_read_from_its_finish_reason() -> None:
    reader = StreamReader(requested_model="m")
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]},
    ]
    for chunk in chunks:
        reader.feed(f"data: {json.dumps(chunk)}")
        reader.feed("")
    reader.feed("data: [DONE]")
    reader.feed("")
    with pytest.raises(ContentPolicyError):
        reader.result()


# --- Gateway pages -----------------------------------------------------------------------------------


def cloudflare(status: int, title: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><title>relay.example | {status}: {title}</title></head></html>".encode()
    )


@pytest.mark.parametrize(
    ("status", "kind", "retried"),
    [
        (521, APIConnectionError, True),
        (522, APIConnectionError, True),
        (523, APIConnectionError, True),
        (520, APIStatusError, False),
        (524, APITimeoutError, False),
    ],
)
def test_cloudflare_pages_are_read_by_status_and_title(status: int, kind: type, retried: bool) -> None:
    error = error_from_response(status, cloudflare(status, "A timeout occurred"))
    assert type(error) is kind and error.status_code == status
    assert is_retryable(error) is retried
    advice = describe_failure(error)
    assert "<" not in advice and ("billed" in advice) is (not retried)
    # Behind another status (a relay passing the page on), the title still says which page it is.
    assert type(error_from_response(502, cloudflare(status, "Error"))) is kind


def test_a_data_url_is_an_inline_image_wherever_it_stands() -> None:
    png = base64.b64encode(png_image(4, 4, "inline")).decode()
    data_url = f"data:image/png;base64,{png}"
    answers = [
        {"data": [{"url": data_url}]},
        {"choices": [{"message": {"content": data_url}}]},
        {"choices": [{"message": {"content": f"![image]({data_url})"}}]},
        {
            "choices": [
                {
                    "message": {
                        "content": "",
                        "images": [{"type": "image_url", "image_url": {"url": data_url}}],
                    }
                }
            ]
        },
    ]
    for answer in answers:
        (image,) = parse_result(json.dumps(answer).encode(), requested_model="m").images
        assert (image.url, image.b64_json, image.save_error) == (None, png, None), answer
    cut = parse_result(json.dumps({"data": [{"url": data_url[:-7]}]}).encode(), requested_model="m")
    (image,) = cut.images
    assert image.url is None and image.b64_json is None and image.save_error
    assert png[:20] not in describe_result(cut) and "expire" not in describe_result(cut)


def google_retry(message: str, code: str | None) -> dict[str, Any]:
    body = google(message, code)
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}
    body["error"]["details"].append(retry_info)
    return body


def google_retry_in_a_relay(message: str, code: str | None) -> dict[str, Any]:
    inner = json.dumps(google_retry(message, code), indent=2)
    return {"error": {"message": f"All accounts exhausted. Last error: HTTP 429: {inner}", "code": 429}}


@pytest.mark.parametrize(
    ("shape", "headers", "message"),
    [
        (openai, {}, "Rate limit reached for images. Please try again in 20s."),
        (new_api, {}, "当前分组上游负载已饱和，请 20 秒后重试"),
        (litellm, {"llm_provider-retry-after": "20"}, "RateLimitError: too many requests"),
        (openrouter, {"Retry-After": "20"}, "Rate limit exceeded: free-models-per-min"),
        (google_retry, {}, "Resource has been exhausted (e.g. check quota)."),
        (
            lambda message, code: google_in_a_relay("", None) | google_retry(message, code),
            {},
            "Quota exhausted",
        ),
    ],
    ids=["openai", "new-api", "litellm", "openrouter", "google", "google-in-a-relay"],
)
def test_a_wait_is_read_in_every_providers_shape(shape: Body, headers: dict[str, str], message: str) -> None:
    body = json.dumps(shape(message, "rate_limit_exceeded"), ensure_ascii=False).encode()
    error = error_from_response(429, body, headers)
    assert isinstance(error, RateLimitError) and error.retry_after == 20.0, (body, error)
    assert "20 seconds" in describe_failure(error)
