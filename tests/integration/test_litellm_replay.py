"""The LiteLLM chain on cassettes: what the LiteLLM proxy sent image-tool, replayed without it.

The test command replays ``cassettes/test_litellm_replay/`` offline; no proxy runs. Recording
(``.venv/bin/pytest tests/integration/test_litellm_replay.py --record-mode=rewrite``) starts the LiteLLM proxy
of ``tests/litellm_proxy.py`` in front of FakeRelay, so it needs ``.venv-proxy`` (see
``scripts/check.sh``). The cassettes hold LiteLLM's own framing: its re-framed streams, status
codes as error codes, wrapped messages and ``llm_provider-retry-after``.
"""

from __future__ import annotations

import re

import pytest

from image_tool import ImageClient, ImageGenerationResult
from image_tool._tool.advice import describe_failure
from image_tool.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    ContentPolicyError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
    StreamWithoutImageError,
)
from image_tool.testing import Reply

from ..conftest import CASSETTES, FAKE_RELAY_KEY, LITELLM_MASTER_KEY, REPLAY_KEY, REPLAY_ORIGIN, RelayTarget

pytest_plugins = ["tests.litellm_proxy"]
pytestmark = pytest.mark.emulator_only  # recorded from FakeRelay, even with a real relay configured

PROMPT = "A cat in a tree"
IMAGE_LINK = re.compile(r"^(https://relay\.test|http://127\.0\.0\.1:\d+)/images/1024x1024/[0-9a-f]{16}\.png$")
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])


@pytest.fixture
def chain(request: pytest.FixtureRequest, record_mode: str) -> RelayTarget:
    """The replay address; or, when recording, the LiteLLM proxy and the FakeRelay behind it."""
    if record_mode == "none":
        return RelayTarget(f"{REPLAY_ORIGIN}/v1", REPLAY_KEY)
    proxy = request.getfixturevalue("litellm_proxy")
    return RelayTarget(proxy.base_url, proxy.api_key, proxy.relay)


def generate(chain: RelayTarget, stream: bool) -> ImageGenerationResult:
    with ImageClient(api_key=chain.api_key, base_url=chain.base_url, stream=stream, max_retries=0) as client:
        return client.generate(PROMPT, n=2)


def failure(chain: RelayTarget, reply: Reply, stream: bool) -> APIError:
    chain.queue(reply)
    with pytest.raises(APIError) as caught:
        generate(chain, stream)
    return caught.value


SURVIVING = {
    "markdown": Reply.success("markdown"),
    "json_block": Reply.success("json_block"),
    "inline_data": Reply.success("inline_data"),
}


@pytest.mark.vcr
@STREAM
@pytest.mark.parametrize("shape", SURVIVING)
def test_surviving_shapes(chain: RelayTarget, shape: str, stream: bool) -> None:
    chain.queue(SURVIVING[shape])
    result = generate(chain, stream)
    assert len(result.images) == 2
    for image in result.images:
        if shape == "inline_data":
            assert image.b64_json and image.b64_json.startswith("iVBOR")
        else:
            assert image.url and IMAGE_LINK.match(image.url)


@pytest.mark.vcr
@STREAM
def test_documented_shape_lost_by_the_proxy(chain: RelayTarget, stream: bool) -> None:
    """LiteLLM cannot pass on the documented ``data[]`` answer: HTTP 500 from the proxy itself when
    plain, a stream with nothing in it when streamed."""
    error = failure(chain, Reply.success("images_api"), stream)
    if stream:
        assert type(error) is StreamWithoutImageError
        assert "stream=False" in describe_failure(error)
    else:
        assert type(error) is APIStatusError
        assert error.status_code == 500
    assert "rephrase the prompt" not in describe_failure(error).lower()


@pytest.mark.vcr
@STREAM
def test_rate_limit_with_llm_provider_retry_after(chain: RelayTarget, stream: bool) -> None:
    error = failure(chain, Reply.rate_limited(retry_after=7), stream)
    assert type(error) is RateLimitError
    assert error.status_code == 429
    assert error.retry_after == 7
    assert "Wait 7 seconds" in describe_failure(error)


# failure -> (reply, kind, status, the relay's words)
FAILURES: dict[str, tuple[Reply, type[APIError], int, str]] = {
    "content_policy": (Reply.content_policy(), ContentPolicyError, 400, "safety system"),
    "quota_not_enough_en": (
        Reply.error(
            403, "user quota is not enough (request id: 20260311-fake)", code="insufficient_user_quota"
        ),
        QuotaExceededError,
        403,
        "user quota is not enough",
    ),
    "model_unavailable": (Reply.model_unavailable(), ModelNotFoundError, 503, "无可用渠道"),
    "server_error": (Reply.server_error(), APIStatusError, 500, "do request failed"),
}


@pytest.mark.vcr
@STREAM
@pytest.mark.parametrize("case", FAILURES)
def test_error_answers(chain: RelayTarget, case: str, stream: bool) -> None:
    reply, kind, status, words = FAILURES[case]
    error = failure(chain, reply, stream)
    assert type(error) is kind
    assert error.status_code == status
    assert words in error.message
    assert "20260311-fake" not in describe_failure(error)


@pytest.mark.vcr
def test_stream_cut_before_done(chain: RelayTarget) -> None:
    """LiteLLM closes a stream its upstream cut with a stop chunk and [DONE]: image-tool still sees
    that the generation had not finished."""
    error = failure(chain, Reply.streamed_fault("cut_before_done"), stream=True)
    assert type(error) is APIConnectionError
    assert "tried again later" in describe_failure(error)


def test_cassettes_hold_no_key_nor_loopback_address() -> None:
    """The proxy's master key, FakeRelay's key and the loopback ports are scrubbed (conftest)."""
    cassettes = sorted((CASSETTES / "test_litellm_replay").glob("*.yaml"))
    assert cassettes
    for cassette in cassettes:
        text = cassette.read_text(encoding="utf-8")
        assert LITELLM_MASTER_KEY not in text
        assert FAKE_RELAY_KEY not in text
        assert "127.0.0.1" not in text
