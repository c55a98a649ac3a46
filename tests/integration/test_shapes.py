"""Every wire shape and every failure of the wire-format notes, replayed: sync and async, plain and
streamed. Recorded from FakeRelay, which writes each shape the way relays in the field do."""

from __future__ import annotations

import asyncio

import pytest

from image_tool import (
    APIConnectionError,
    APIError,
    APIStatusError,
    AuthenticationError,
    ContentPolicyError,
    GenerationProgress,
    ImageClient,
    ImageGenerationResult,
    ModelNotFoundError,
    NoImageError,
    QuotaExceededError,
    RateLimitError,
)
from image_tool.testing import Reply

from ..conftest import RelayTarget

PROMPT = "A cat in a tree"
REVISED = "A cat in a tree, vivid style, 1024x1024 frame"  # FakeRelay's revision of PROMPT


def generate(
    relay: RelayTarget, mode: str, stream: bool, progress: list[GenerationProgress] | None = None
) -> ImageGenerationResult:
    client = ImageClient(api_key=relay.api_key, base_url=relay.base_url, stream=stream, max_retries=0)
    on_progress = progress.append if progress is not None else None
    if mode == "sync":
        with client:
            return client.generate(PROMPT, n=2, on_progress=on_progress)

    async def run() -> ImageGenerationResult:
        async with client:
            return await client.agenerate(PROMPT, n=2, on_progress=on_progress)

    return asyncio.run(run())


MODES = pytest.mark.parametrize("mode", ["sync", "async"])
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])

# shape -> (reply, images carry URLs (else inline base64), revised prompt expected, model)
SUCCESSES: dict[str, tuple[Reply, bool, str | None, str]] = {
    "images_api_url": (Reply.success(), True, REVISED, "gpt-4o-image"),
    "images_api_b64_json": (Reply.success(image_format="b64_json"), False, REVISED, "gpt-4o-image"),
    "markdown_zh": (Reply.success("markdown"), True, REVISED, "gpt-4o-image"),
    "markdown_en": (Reply.success("markdown", locale="en"), True, REVISED, "gpt-4o-image"),
    "markdown_other_model": (Reply.success("markdown", model="sora_image"), True, REVISED, "sora_image"),
    "inline_data": (Reply.success("inline_data"), False, None, "gpt-4o-image"),
    "content_parts": (Reply.success("content_parts"), True, None, "gpt-4o-image"),
    "json_block_urls": (Reply.success("json_block"), True, REVISED, "gpt-4o-image"),
}


@pytest.mark.vcr
@pytest.mark.emulator_only
@STREAM
@MODES
@pytest.mark.parametrize("shape", SUCCESSES)
def test_success_shapes(relay: RelayTarget, shape: str, mode: str, stream: bool) -> None:
    reply, with_urls, revised_prompt, model = SUCCESSES[shape]
    relay.queue(reply)
    result = generate(relay, mode, stream)
    assert len(result.images) == 2  # download links and progress previews are not extra images
    assert len({image.url or image.b64_json for image in result.images}) == 2
    for image in result.images:
        if with_urls:
            assert image.url and image.url.endswith(".png")
            assert "preview" not in image.url
        else:
            assert image.url is None
            assert image.b64_json and image.b64_json.startswith("iVBOR")  # a PNG
        assert image.revised_prompt == revised_prompt
    assert result.model == model


@pytest.mark.vcr
@pytest.mark.emulator_only
@pytest.mark.parametrize("shape", SUCCESSES)
def test_streamed_result_equals_the_plain_one(relay: RelayTarget, shape: str) -> None:
    reply = SUCCESSES[shape][0]
    relay.queue(reply, reply)
    plain, streamed = generate(relay, "sync", False), generate(relay, "sync", True)
    assert streamed.images == plain.images
    assert streamed.model == plain.model


@pytest.mark.vcr
@pytest.mark.emulator_only
@MODES
@pytest.mark.parametrize("locale", ["zh", "en"])
def test_streamed_progress(relay: RelayTarget, mode: str, locale: str) -> None:
    relay.queue(Reply.success("markdown", locale=locale))  # type: ignore[arg-type]
    progress: list[GenerationProgress] = []
    assert generate(relay, mode, True, progress).images
    stages = [update.stage for update in progress]
    assert stages[0] == "queued"
    assert "generating" in stages
    assert stages[-1] == "done"
    percents = [update.percent for update in progress if update.percent is not None]
    assert len(percents) >= 3
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert len(progress) < 20  # one update per change, not one per streamed piece


# failure -> (reply, error, the relay's words the error must carry)
FAILURES: dict[str, tuple[Reply, type[APIError], str]] = {
    "empty_link": (Reply.empty_link(), NoImageError, "![image]()"),
    "text_only": (Reply.text_only(), NoImageError, "task_01hx9"),
    "refusal_zh": (Reply.refusal(), ContentPolicyError, "内容可能违反相关政策"),
    "refusal_prompt_zh": (Reply.refusal_prompt(), ContentPolicyError, "违反了OpenAI的相关服务政策"),
    "refusal_en": (Reply.refusal("en"), ContentPolicyError, "not allowed by our safety system"),
    "rate_limit_sentence": (Reply.rate_limit_sentence(), RateLimitError, "负载已饱和"),
    "error_with_200": (Reply.error_with_200(), QuotaExceededError, "用户额度不足"),
}


@pytest.mark.vcr
@pytest.mark.emulator_only
@STREAM
@MODES
@pytest.mark.parametrize("failure", FAILURES)
def test_failures_that_look_like_successes(relay: RelayTarget, failure: str, mode: str, stream: bool) -> None:
    reply, kind, words = FAILURES[failure]
    relay.queue(reply)
    with pytest.raises(kind) as caught:
        generate(relay, mode, stream)
    assert type(caught.value) is kind
    assert words in caught.value.message
    assert caught.value.status_code == 200


STREAM_FAULTS: dict[str, tuple[Reply, type[APIError], str]] = {
    "error_mid_stream": (Reply.streamed_fault("error_mid_stream"), APIStatusError, "upstream timeout"),
    "done_without_image": (Reply.streamed_fault("done_without_image"), NoImageError, "进度"),
    "cut_before_done": (
        Reply.streamed_fault("cut_before_done"),
        APIConnectionError,
        "cut before it finished",
    ),
}


@pytest.mark.vcr
@pytest.mark.emulator_only
@MODES
@pytest.mark.parametrize("fault", STREAM_FAULTS)
def test_stream_faults(relay: RelayTarget, fault: str, mode: str) -> None:
    reply, kind, words = STREAM_FAULTS[fault]
    relay.queue(reply)
    progress: list[GenerationProgress] = []
    with pytest.raises(kind) as caught:
        generate(relay, mode, True, progress)
    assert type(caught.value) is kind
    assert words in caught.value.message
    assert progress  # what the relay said before it failed still reached the caller
    assert progress[-1].stage != "done"


# relay error answer -> (reply, error, status, the relay's words)
RELAY_ERRORS: dict[str, tuple[Reply, type[APIError], int, str]] = {
    "unauthorized": (Reply.unauthorized(), AuthenticationError, 401, "Invalid token"),
    "content_policy": (Reply.content_policy(), ContentPolicyError, 400, "safety system"),
    "rate_limited": (Reply.rate_limited(), RateLimitError, 429, "请求数限制"),
    "bare_429": (Reply.bare_rate_limit(), RateLimitError, 429, "Too Many Requests"),
    "saturated_429": (Reply.saturated(429), RateLimitError, 429, "负载已饱和"),
    "saturated_503": (Reply.saturated(503), RateLimitError, 503, "负载已饱和"),
    "insufficient_user_quota": (Reply.quota_exhausted(), QuotaExceededError, 403, "用户额度不足"),
    "model_not_found": (Reply.model_unavailable(), ModelNotFoundError, 503, "无可用渠道"),
    "upstream_error": (Reply.server_error(), APIStatusError, 500, "do request failed"),
    "html_502": (Reply.bad_gateway(), APIStatusError, 502, "502 Bad Gateway"),
    "html_504": (
        Reply(status=504, body=b"<html><head><title>504 Gateway Time-out</title></head></html>"),
        APIStatusError,
        504,
        "504 Gateway Time-out",
    ),
}


@pytest.mark.vcr
@pytest.mark.emulator_only
@STREAM
@MODES
@pytest.mark.parametrize("failure", RELAY_ERRORS)
def test_relay_error_answers(relay: RelayTarget, failure: str, mode: str, stream: bool) -> None:
    reply, kind, status, words = RELAY_ERRORS[failure]
    relay.queue(reply)
    with pytest.raises(kind) as caught:
        generate(relay, mode, stream)
    assert type(caught.value) is kind
    assert caught.value.status_code == status
    assert words in caught.value.message
