"""What a user gets through new-api, one-api and LiteLLM (FakeRelay's profiles), for every answer
FakeRelay can script: the images, or the error kind that says what happened.

The real LiteLLM proxy is exercised in tests/integration/test_litellm_chain.py; these run in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from image_tool import ImageClient
from image_tool._tool.advice import describe_failure
from image_tool.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ContentPolicyError,
    ImageToolError,
    ModelNotFoundError,
    NoImageError,
    QuotaExceededError,
    RateLimitError,
    StreamWithoutImageError,
)
from image_tool.testing import FakeRelay, RelayProfile, Reply

Expected = type[ImageToolError] | int
"""An error kind, or the number of images."""

REPLIES: dict[str, Reply] = {
    "images_api": Reply.success(),
    "markdown": Reply.success("markdown"),
    "inline_data": Reply.success("inline_data"),
    "content_parts": Reply.success("content_parts"),
    "json_block": Reply.success("json_block"),
    "unauthorized": Reply.unauthorized(),
    "content_policy": Reply.content_policy(),
    "prompt_blocked": Reply.prompt_blocked(),
    "refusal": Reply.refusal(),
    "rate_limited": Reply.rate_limited(7),
    "bare_rate_limit": Reply.bare_rate_limit(),
    "saturated": Reply.saturated(),
    "rate_limit_sentence": Reply.rate_limit_sentence(),
    "quota_exhausted": Reply.quota_exhausted(),
    "token_spent": Reply.token_spent(),
    "model_unavailable": Reply.model_unavailable(),
    "server_error": Reply.server_error(),
    "bad_gateway": Reply.bad_gateway(),
    "empty_link": Reply.empty_link(),
    "text_only": Reply.text_only(),
    "error_mid_stream": Reply.streamed_fault("error_mid_stream"),
    "done_without_image": Reply.streamed_fault("done_without_image"),
    "cut_before_done": Reply.streamed_fault("cut_before_done"),
}

# What every relay gives, plain or streamed, unless an exception below says otherwise.
EXPECTED: dict[str, Expected] = {
    "images_api": 2,
    "markdown": 2,
    "inline_data": 2,
    "content_parts": 2,
    "json_block": 2,
    "unauthorized": AuthenticationError,
    "content_policy": ContentPolicyError,
    "prompt_blocked": ContentPolicyError,
    "refusal": ContentPolicyError,
    "rate_limited": RateLimitError,
    "bare_rate_limit": RateLimitError,
    "saturated": RateLimitError,
    "rate_limit_sentence": RateLimitError,
    "quota_exhausted": QuotaExceededError,
    "token_spent": QuotaExceededError,  # new-api's 401 "该令牌额度已用尽", LiteLLM's 422 budget_exceeded
    "model_unavailable": ModelNotFoundError,
    "server_error": APIStatusError,
    "bad_gateway": APIStatusError,
    "empty_link": NoImageError,
    "text_only": NoImageError,
    "error_mid_stream": 2,  # a plain request gets the whole answer
    "done_without_image": 2,
    "cut_before_done": 2,
}
STREAMED: dict[str, Expected] = {
    "error_mid_stream": APIStatusError,
    "done_without_image": NoImageError,
    # A relay in the middle ends a cut stream cleanly ([DONE], or a stop chunk): the progress
    # tells it was cut.
    "cut_before_done": APIConnectionError,
}
EXCEPTIONS: dict[tuple[RelayProfile, bool, str], Expected] = {
    # new-api answers JSON to a stream request with a bare [DONE].
    ("new-api", True, "images_api"): StreamWithoutImageError,
    # one-api answers it with "bad response status code 200"; it drops the upstream's "data:"
    # lines without a space (half of the vendor's), so markdown arrives without its images; and
    # it drops error chunks, so the stream ends mid-progress.
    ("one-api", True, "images_api"): APIStatusError,
    ("one-api", True, "markdown"): NoImageError,
    ("one-api", True, "json_block"): NoImageError,
    ("one-api", True, "error_mid_stream"): APIConnectionError,
    # LiteLLM loses the documented shape and content parts: a 500 plain, nothing streamed.
    ("litellm", False, "images_api"): APIStatusError,
    ("litellm", False, "content_parts"): APIStatusError,
    ("litellm", True, "images_api"): StreamWithoutImageError,
    ("litellm", True, "content_parts"): StreamWithoutImageError,
}
PROFILES: tuple[RelayProfile, ...] = ("new-api", "one-api", "litellm")


def expected(profile: RelayProfile, stream: bool, name: str) -> Expected:
    default = STREAMED.get(name, EXPECTED[name]) if stream else EXPECTED[name]
    return EXCEPTIONS.get((profile, stream, name), default)


@pytest.fixture(scope="module", params=PROFILES)
def relay(request: pytest.FixtureRequest) -> Iterator[FakeRelay]:
    with FakeRelay(profile=request.param) as relay:
        yield relay


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("name", list(REPLIES))
def test_what_the_user_gets_through_the_relay(relay: FakeRelay, stream: bool, name: str) -> None:
    want = expected(relay.profile, stream, name)
    relay.queue(REPLIES[name])
    with ImageClient(api_key=relay.api_key, base_url=relay.base_url, stream=stream, max_retries=0) as client:
        if isinstance(want, int):
            assert len(client.generate("A cat in a tree", n=2).images) == want
            return
        with pytest.raises(ImageToolError) as raised:
            client.generate("A cat in a tree", n=2)
    error = raised.value
    assert type(error) is want, repr(error)
    advice = describe_failure(error)
    assert ("Rephrase" in advice) == (want is ContentPolicyError), advice
    assert "request id" not in advice and "litellm." not in advice, advice


def test_litellm_passes_retry_after_on_under_its_own_name() -> None:
    with (
        FakeRelay(profile="litellm") as relay,
        ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=0) as client,
    ):
        relay.queue(Reply.rate_limited(7))
        with pytest.raises(RateLimitError) as raised:
            client.generate("A cat in a tree")
    assert raised.value.retry_after == 7.0
    assert raised.value.summary == "您已达到请求数限制：1分钟内最多请求10次"


@pytest.mark.parametrize("profile", ["new-api", "one-api"])
def test_go_relays_request_ids_stay_in_the_error_for_support(profile: RelayProfile) -> None:
    with (
        FakeRelay(profile=profile) as relay,
        ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=0) as client,
    ):
        relay.queue(Reply.bad_gateway())  # an HTML page: the relay keeps only its request id
        with pytest.raises(APIStatusError) as raised:
            client.generate("A cat in a tree")
    error = raised.value
    assert error.request_id and error.request_id in error.message
    assert error.request_id not in describe_failure(error)


def test_one_api_unable_to_stream_a_whole_answer_is_advised_as_such() -> None:
    """one-api calls an upstream's whole JSON answer to a stream request "bad response status code
    200": the relay cannot stream this model, which stream=False mends."""
    with (
        FakeRelay(profile="one-api") as relay,
        ImageClient(api_key=relay.api_key, base_url=relay.base_url, stream=True, max_retries=0) as client,
    ):
        relay.queue(REPLIES["images_api"])
        with pytest.raises(APIStatusError) as raised:
            client.generate("A cat in a tree")
    advice = describe_failure(raised.value)
    assert "stream=False" in advice and "Rephrase" not in advice, advice
