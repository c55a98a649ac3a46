"""image-tool -> LiteLLM proxy -> FakeRelay: what a user gets when real relay software stands in
the middle, for every answer FakeRelay can give, plain and streamed.

LiteLLM reshapes what passes through it: it re-frames streams, rewrites error codes as the status
("400"), wraps messages ("litellm.BadRequestError: OpenAIException - ... LiteLLM: model group ...
failed"), renames Retry-After to ``llm_provider-retry-after``, and loses some successes outright
(the documented ``data[]`` shape, a list of content parts). Each test asserts the images the user
gets, or the kind of error and the advice the model reads (``describe_failure``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from langchain_core.messages import ToolMessage

from image_tool import ImageClient, ImageGenerationResult, ImageGenerationTool
from image_tool._tool.advice import describe_failure
from image_tool.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    AuthenticationError,
    ContentPolicyError,
    ModelNotFoundError,
    NoImageError,
    QuotaExceededError,
    RateLimitError,
    StreamWithoutImageError,
)
from image_tool.testing import Reply

from ..helpers import tool_call

if TYPE_CHECKING:  # imported by pytest, as a plugin, so that its assertions are rewritten
    from ..litellm_proxy import LiteLLMProxy

pytest_plugins = ["tests.litellm_proxy"]
pytestmark = [pytest.mark.proxy, pytest.mark.slow]

PROMPT = "A cat in a tree"
REVISED = "A cat in a tree, vivid style, 1024x1024 frame"  # FakeRelay's revision of PROMPT
REQUEST_ID = "(request id: 20260311-fake)"  # what new-api appends to its messages
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# What the model must read for each kind of failure: the words of its next step.
ADVICE: dict[type[APIError], str] = {
    ContentPolicyError: "rephrase the prompt",
    RateLimitError: "before calling generate_image again",
    QuotaExceededError: "until the quota is topped up",
    ModelNotFoundError: "do not retry now",
    AuthenticationError: "rejected this application's credentials",
    StreamWithoutImageError: "stream=false",
    NoImageError: "try the same request once more",
    APIConnectionError: "can be tried again later",
    APIStatusError: "tell the user that image generation failed",
}


def generate(
    proxy: LiteLLMProxy, stream: bool, save_dir: Path | None = None, n: int = 2
) -> ImageGenerationResult:
    with ImageClient(
        api_key=proxy.api_key,
        base_url=proxy.base_url,
        stream=stream,
        max_retries=0,
        save_dir=save_dir,
        allow_private_downloads=True,  # FakeRelay serves its images on loopback
    ) as client:
        return client.generate(PROMPT, n=n)


def failure(proxy: LiteLLMProxy, reply: Reply, stream: bool) -> APIError:
    """The error a call raises when FakeRelay answers ``reply`` behind the proxy."""
    proxy.relay.queue(reply)
    with pytest.raises(APIError) as caught:
        generate(proxy, stream)
    return caught.value


def assert_advice(error: APIError, kind: type[APIError]) -> str:
    """The error is exactly ``kind`` and the model is told that kind's next step, and nothing
    about rephrasing unless the prompt was refused."""
    assert type(error) is kind, f"{type(error).__name__}: {error}"
    advice = describe_failure(error)
    assert ADVICE[kind] in advice.lower(), advice
    if kind is not ContentPolicyError:
        assert "rephrase the prompt" not in advice.lower(), advice
    return advice


def assert_request_id_kept_out_of_advice(error: APIError) -> None:
    """The relay's request id stays in the exception (for its support) but not in the advice."""
    assert REQUEST_ID in error.message
    assert "20260311-fake" not in describe_failure(error)


# --- Successes: the shapes that survive LiteLLM give the user every image -----------------------

# shape -> (reply, images as links served by FakeRelay (else inline base64), revised prompt)
SURVIVING: dict[str, tuple[Reply, bool, str | None]] = {
    "markdown_zh": (Reply.success("markdown"), True, REVISED),
    "markdown_en": (Reply.success("markdown", locale="en"), True, REVISED),
    "inline_data": (Reply.success("inline_data"), False, None),
    "json_block": (Reply.success("json_block"), True, REVISED),
}


@STREAM
@pytest.mark.parametrize("shape", SURVIVING)
def test_surviving_shapes_give_every_image(
    litellm_proxy: LiteLLMProxy, tmp_path: Path, shape: str, stream: bool
) -> None:
    reply, with_urls, revised_prompt = SURVIVING[shape]
    litellm_proxy.relay.queue(reply)
    result = generate(litellm_proxy, stream, save_dir=tmp_path)
    assert len(result.images) == 2
    assert result.model == "gpt-4o-image"
    for image in result.images:
        if with_urls:
            assert image.url and image.url.startswith(f"{litellm_proxy.relay.origin}/images/")
        else:
            assert image.url is None
            assert image.b64_json and image.b64_json.startswith("iVBOR")
        assert image.revised_prompt == revised_prompt
        # Saved: the link was reachable (downloaded from FakeRelay) or the inline image decoded.
        assert image.save_error is None
        assert image.path and image.path.read_bytes().startswith(PNG_SIGNATURE)
    assert len({image.path for image in result.images}) == 2


# Shapes LiteLLM cannot pass on: a plain request fails inside the proxy ("no 'choices'", "Invalid
# response object", HTTP 500); a streamed one comes back as a stop chunk and [DONE], nothing else.
LOST = {
    "images_api_url": Reply.success("images_api"),
    "images_api_b64_json": Reply.success("images_api", image_format="b64_json"),
    "content_parts": Reply.success("content_parts"),
}


@pytest.mark.parametrize("shape", LOST)
def test_lost_shape_plain_is_the_proxys_failure(litellm_proxy: LiteLLMProxy, shape: str) -> None:
    error = failure(litellm_proxy, LOST[shape], stream=False)
    advice = assert_advice(error, APIStatusError)
    assert error.status_code == 500
    assert "HTTP 500" in advice


@pytest.mark.parametrize("shape", LOST)
def test_lost_shape_streamed_is_a_stream_without_image(litellm_proxy: LiteLLMProxy, shape: str) -> None:
    error = failure(litellm_proxy, LOST[shape], stream=True)
    assert_advice(error, StreamWithoutImageError)
    assert isinstance(error, NoImageError)
    assert "without an image" in error.message
    assert "stream=False" in error.message
    assert error.status_code == 200


# --- Error answers: the kind survives LiteLLM's codes and wrappers ------------------------------

# failure -> (reply, kind, status through the proxy, the relay's words, a request id appended)
ERRORS: dict[str, tuple[Reply, type[APIError], int, str, bool]] = {
    "unauthorized": (Reply.unauthorized(), AuthenticationError, 401, "Invalid token", True),
    "content_policy": (Reply.content_policy(), ContentPolicyError, 400, "safety system", False),
    "moderation_blocked": (
        Reply.error(
            400,
            "Your request was rejected by the safety system. If you believe this is an error, "
            f"contact us and include the request ID req_0a1b2c3d. {REQUEST_ID}",
            code="moderation_blocked",
            error_type="image_generation_user_error",
        ),
        ContentPolicyError,
        400,
        "rejected by the safety system",
        True,
    ),
    "rate_limited": (Reply.rate_limited(retry_after=7), RateLimitError, 429, "请求数限制", False),
    "bare_rate_limit": (Reply.bare_rate_limit(), RateLimitError, 429, "429", False),
    "saturated_503": (Reply.saturated(), RateLimitError, 503, "负载已饱和", True),
    "saturated_429": (Reply.saturated(429), RateLimitError, 429, "负载已饱和", True),
    "quota_exhausted_zh": (Reply.quota_exhausted(), QuotaExceededError, 403, "用户额度不足", True),
    "quota_not_enough_en": (
        Reply.error(403, f"user quota is not enough {REQUEST_ID}", code="insufficient_user_quota"),
        QuotaExceededError,
        403,
        "user quota is not enough",
        True,
    ),
    "model_unavailable": (Reply.model_unavailable(), ModelNotFoundError, 503, "无可用渠道", True),
    "server_error": (Reply.server_error(), APIStatusError, 500, "do request failed", True),
    "bad_gateway": (Reply.bad_gateway(), APIStatusError, 502, "502", False),
}


@STREAM
@pytest.mark.parametrize("case", ERRORS)
def test_error_answers(litellm_proxy: LiteLLMProxy, case: str, stream: bool) -> None:
    reply, kind, status, words, with_request_id = ERRORS[case]
    error = failure(litellm_proxy, reply, stream)
    assert_advice(error, kind)
    assert error.status_code == status
    assert words in error.message
    assert "sk-" not in str(error)  # LiteLLM's master key never comes back
    if with_request_id:
        assert_request_id_kept_out_of_advice(error)


@STREAM
def test_retry_after_read_from_llm_provider_header(litellm_proxy: LiteLLMProxy, stream: bool) -> None:
    """LiteLLM renames the relay's Retry-After to llm_provider-retry-after."""
    error = failure(litellm_proxy, Reply.rate_limited(retry_after=7), stream)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7
    assert "wait 7 seconds" in describe_failure(error).lower()


@pytest.mark.parametrize(
    "case", ["content_policy", "rate_limited", "quota_exhausted_zh", "model_unavailable", "server_error"]
)
def test_advice_quotes_the_relay_not_litellms_wrappers(litellm_proxy: LiteLLMProxy, case: str) -> None:
    """The model reads the relay's words, not LiteLLM's exception names around them
    ("litellm.RateLimitError: RateLimitError: OpenAIException - ...")."""
    reply, _kind, _status, words, _ = ERRORS[case]
    error = failure(litellm_proxy, reply, stream=False)
    assert "litellm." in error.message  # the wrapper is there, in the exception
    advice = describe_failure(error)
    assert words in advice
    assert "litellm." not in advice
    assert "Exception - " not in advice
    assert "Error: " not in advice


# --- Answers that look like successes -----------------------------------------------------------

# failure -> (reply, kind plain, kind streamed, the relay's words (plain, streamed))
LOOK_LIKE_SUCCESS: dict[str, tuple[Reply, type[APIError], type[APIError], str, str]] = {
    "empty_link": (Reply.empty_link(), NoImageError, NoImageError, "![image]()", "![image]()"),
    "text_only": (Reply.text_only(), NoImageError, NoImageError, "task_01hx9", "task_01hx9"),
    "refusal_zh": (
        Reply.refusal(),
        ContentPolicyError,
        ContentPolicyError,
        "内容可能违反相关政策",
        "内容可能违反相关政策",
    ),
    "refusal_en": (
        Reply.refusal("en"),
        ContentPolicyError,
        ContentPolicyError,
        "not allowed by our safety system",
        "not allowed by our safety system",
    ),
    "refusal_prompt": (
        Reply.refusal_prompt(),
        ContentPolicyError,
        ContentPolicyError,
        "违反了OpenAI的相关服务政策",
        "违反了OpenAI的相关服务政策",
    ),
    "rate_limit_sentence": (
        Reply.rate_limit_sentence(),
        RateLimitError,
        RateLimitError,
        "负载已饱和",
        "负载已饱和",
    ),
    # An error body with HTTP 200: LiteLLM fails on it reading a plain answer (HTTP 500, its own
    # TypeError text) and streams nothing for a streamed one. The relay's words are lost.
    "error_with_200": (Reply.error_with_200(), APIStatusError, StreamWithoutImageError, "", ""),
}


@STREAM
@pytest.mark.parametrize("case", LOOK_LIKE_SUCCESS)
def test_answers_that_look_like_successes(litellm_proxy: LiteLLMProxy, case: str, stream: bool) -> None:
    reply, plain_kind, streamed_kind, plain_words, streamed_words = LOOK_LIKE_SUCCESS[case]
    error = failure(litellm_proxy, reply, stream)
    assert_advice(error, streamed_kind if stream else plain_kind)
    assert (streamed_words if stream else plain_words) in error.message
    assert error.status_code == (500 if case == "error_with_200" and not stream else 200)


# --- Streams that go wrong ----------------------------------------------------------------------

# fault -> (kind, the relay's words). LiteLLM re-frames each of them: the error object becomes
# its own (code "500", the message wrapped); a cut stream gets a stop chunk and [DONE].
STREAM_FAULTS: dict[str, tuple[type[APIError], str]] = {
    "error_mid_stream": (APIStatusError, "upstream timeout"),
    "done_without_image": (NoImageError, "进度"),
    "cut_before_done": (APIConnectionError, ""),
}


@pytest.mark.parametrize("fault", STREAM_FAULTS)
def test_stream_faults(litellm_proxy: LiteLLMProxy, fault: str) -> None:
    kind, words = STREAM_FAULTS[fault]
    error = failure(litellm_proxy, Reply.streamed_fault(fault), stream=True)  # type: ignore[arg-type]
    assert_advice(error, kind)
    assert words in error.message
    if fault == "error_mid_stream":
        assert_request_id_kept_out_of_advice(error)


@pytest.mark.parametrize("fault", STREAM_FAULTS)
def test_stream_faults_asked_plain_give_the_images(litellm_proxy: LiteLLMProxy, fault: str) -> None:
    """FakeRelay sends a plain request the whole answer: the user gets the images."""
    litellm_proxy.relay.queue(Reply.streamed_fault(fault))  # type: ignore[arg-type]
    assert len(generate(litellm_proxy, stream=False).images) == 2


# --- The chain itself -------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [Reply.rate_limited(), Reply.server_error()], ids=["429", "500"])
def test_one_upstream_request_per_call(litellm_proxy: LiteLLMProxy, reply: Reply) -> None:
    """No retries and no cool-down in the proxy: each call is one request to FakeRelay, and the
    call after a failure reaches FakeRelay again."""

    def upstream_calls() -> int:
        return sum(1 for request in litellm_proxy.relay.requests if request.method == "POST")

    before = upstream_calls()
    failure(litellm_proxy, reply, stream=False)
    assert upstream_calls() == before + 1
    litellm_proxy.relay.queue(Reply.success("markdown"))
    assert generate(litellm_proxy, stream=False).images
    assert upstream_calls() == before + 2


def test_async_twin_reads_the_chain_alike(litellm_proxy: LiteLLMProxy) -> None:
    async def run() -> tuple[ImageGenerationResult, APIError]:
        async with ImageClient(
            api_key=litellm_proxy.api_key, base_url=litellm_proxy.base_url, stream=True, max_retries=0
        ) as client:
            litellm_proxy.relay.queue(Reply.success("markdown"), Reply.success())
            result = await client.agenerate(PROMPT, n=2)
            with pytest.raises(APIError) as caught:
                await client.agenerate(PROMPT, n=2)
            return result, caught.value

    result, error = asyncio.run(run())
    assert len(result.images) == 2
    assert type(error) is StreamWithoutImageError


def test_tool_tells_the_model_what_to_do(litellm_proxy: LiteLLMProxy) -> None:
    """Through the LangChain tool: an error message for the model, not a crash."""
    tool = ImageGenerationTool(api_key=litellm_proxy.api_key, base_url=litellm_proxy.base_url, max_retries=0)
    litellm_proxy.relay.queue(Reply.quota_exhausted(), Reply.success("markdown"))
    refused = tool.invoke(tool_call(prompt=PROMPT))
    assert isinstance(refused, ToolMessage)
    assert refused.status == "error"
    assert "until the quota is topped up" in str(refused.content)
    assert "20260311-fake" not in str(refused.content)
    drawn = tool.invoke(tool_call(prompt=PROMPT))
    assert isinstance(drawn, ToolMessage)
    assert drawn.status == "success"
    assert litellm_proxy.relay.origin in str(drawn.content)
