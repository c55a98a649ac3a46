"""Fault injection against FakeRelay on loopback. Each test says what the user sees, and checks
that nothing is lost (images, the relay's words) and nothing leaks (the key)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from image_tool import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ContentPolicyError,
    Fallback,
    ImageClient,
    ImageGenerationTool,
    MalformedResponseError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
)
from image_tool.testing import FakeRelay, Reply, png_image, png_size

from ..helpers import tool_call

KEY = "sk-fault-suite-0123456789abcdef"


pytestmark = pytest.mark.usefixtures("quick_backoff")


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay(api_key=KEY) as relay:
        yield relay


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def client_for(relay: FakeRelay, **settings: Any) -> ImageClient:
    return ImageClient(api_key=KEY, base_url=relay.base_url, **settings)


def generations(relay: FakeRelay) -> int:
    return sum(1 for request in relay.requests if request.method == "POST")


def assert_no_leak(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)


# --- Retried: the user sees a normal result, and how many attempts it took ---


@pytest.mark.parametrize(
    "failure",
    [
        Reply.error(429, "slow down", headers={"retry-after-ms": "50"}),
        Reply.rate_limited(),  # no Retry-After: backoff on our own
        Reply.bare_rate_limit(),
        Reply.saturated(503),
        Reply(status=502, body=b"<html><title>502 Bad Gateway</title></html>"),
        Reply(status=504, body=b""),
    ],
    ids=[
        "429_retry_after",
        "429_no_retry_after",
        "429_empty",
        "503_saturated",
        "502",
        "504",
    ],
)
def test_safe_failures_are_retried(relay: FakeRelay, failure: Reply, logs: pytest.LogCaptureFixture) -> None:
    """The user sees the images; result.attempts and the log say a retry happened."""
    relay.queue(failure)
    with client_for(relay) as client:
        result = client.generate("A cat", n=2)
    assert len(result.images) == 2
    assert result.attempts == 2
    assert generations(relay) == 2
    assert "Attempt 1 failed" in logs.text
    assert_no_leak(logs.text)


def test_retry_after_is_honoured(relay: FakeRelay, logs: pytest.LogCaptureFixture) -> None:
    """The wait is the relay's own Retry-After, not our backoff."""
    relay.queue(Reply.error(429, "slow down", headers={"retry-after-ms": "150"}))
    with client_for(relay) as client:
        assert client.generate("A cat").attempts == 2
    assert "retrying in 0.15 s" in logs.text


async def test_safe_failures_are_retried_async(relay: FakeRelay) -> None:
    """The async client retries the same way, without blocking the loop."""
    relay.queue(Reply.rate_limited(), Reply.bare_rate_limit(), Reply.saturated())
    async with client_for(relay, max_retries=3) as client:
        result = await client.agenerate("A cat")
    assert result.attempts == 4
    assert generations(relay) == 4


def test_retries_run_out(relay: FakeRelay) -> None:
    """After max_retries the last error reaches the user, with the relay's words."""
    relay.queue(*[Reply.saturated()] * 3)
    with client_for(relay, max_retries=2) as client, pytest.raises(RateLimitError, match="负载已饱和"):
        client.generate("A cat")
    assert generations(relay) == 3


def test_a_long_retry_after_is_not_waited_for(relay: FakeRelay) -> None:
    """A relay asking for an hour gets no retry: the user (or the model) is told to wait."""
    relay.queue(Reply.rate_limited(retry_after=3600))
    tool = ImageGenerationTool(client=client_for(relay))
    message = tool.invoke(tool_call(prompt="A cat"))
    assert message.status == "error"
    assert "Wait 3600 seconds" in message.content
    assert generations(relay) == 1


# --- Paid work: a request the relay had whole is not sent again unasked ---


def test_a_drop_after_the_request_went_out_is_not_sent_again(relay: FakeRelay) -> None:
    """The relay read the request and drew it, then the connection ended with no answer: one
    generation, and an error saying it may have been billed and how to allow a retry."""
    relay.queue(Reply.transport_fault("drop_unanswered"), Reply.success())
    with client_for(relay, max_retries=10) as client, pytest.raises(APIConnectionError) as caught:
        client.generate("A cat")
    assert caught.value.sent_unanswered
    assert "may have been generated" in str(caught.value) and "retry_unanswered=True" in str(caught.value)
    assert (generations(relay), relay.generated) == (1, 1)


async def test_a_drop_after_the_request_went_out_is_not_sent_again_async(relay: FakeRelay) -> None:
    relay.queue(Reply.transport_fault("drop_unanswered"), Reply.success())
    async with client_for(relay, max_retries=10) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.agenerate("A cat")
    assert caught.value.sent_unanswered
    assert (generations(relay), relay.generated) == (1, 1)


def test_retry_unanswered_sends_it_again_with_consent(relay: FakeRelay) -> None:
    relay.queue(Reply.transport_fault("drop_unanswered"))
    with client_for(relay, retry_unanswered=True) as client:
        result = client.generate("A cat")
    assert (result.attempts, relay.generated) == (2, 2)  # drawn twice: what the setting allows


@pytest.mark.parametrize("retry_unanswered", [False, True])
def test_a_drop_fails_over_only_when_allowed(relay: FakeRelay, retry_unanswered: bool) -> None:
    relay.queue(Reply.transport_fault("drop_unanswered"))
    with FakeRelay() as second:
        fallback = Fallback(base_url=second.base_url, api_key=second.api_key)
        client = client_for(relay, fallbacks=[fallback], retry_unanswered=retry_unanswered, max_retries=0)
        if retry_unanswered:
            assert client.generate("A cat").target == "127.0.0.1"
        else:
            with pytest.raises(APIConnectionError):
                client.generate("A cat")
        assert generations(second) == int(retry_unanswered)


def test_a_refused_connection_never_reached_the_relay_and_is_retried(logs: pytest.LogCaptureFixture) -> None:
    """Nothing listens: the request never left, so it is retried (and the error says so)."""
    with FakeRelay() as gone:
        base_url = gone.base_url
    client = ImageClient(api_key=KEY, base_url=base_url, max_retries=1)
    with client, pytest.raises(APIConnectionError, match="Could not reach") as caught:
        client.generate("A cat")
    assert not caught.value.sent_unanswered
    assert "may have been generated" not in str(caught.value)
    assert "Attempt 1 failed with APIConnectionError" in logs.text


# --- Never retried: the user sees the error at once ---


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Reply.content_policy(), ContentPolicyError),
        (Reply.refusal(), ContentPolicyError),
        (Reply.unauthorized(), AuthenticationError),
        (
            Reply.error(400, "invalid size", code="invalid_size", error_type="invalid_request_error"),
            APIStatusError,
        ),
        (Reply.quota_exhausted(), QuotaExceededError),
        (Reply.model_unavailable(), ModelNotFoundError),
        (Reply.server_error(), APIStatusError),
        (Reply.truncated_json(), MalformedResponseError),
        # The answer had begun (HTTP 200): the generation may be billed, so it is not asked again.
        (Reply.transport_fault("reset_mid_body"), APIConnectionError),
        (Reply.rate_limit_sentence(), RateLimitError),
    ],
    ids=[
        "policy",
        "policy_in_text",
        "auth",
        "bad_request",
        "quota",
        "no_model",
        "500",
        "truncated_json",
        "reset_mid_body",
        "saturated_sentence_with_200",
    ],
)
def test_unsafe_failures_are_not_retried(relay: FakeRelay, failure: Reply, kind: type[APIError]) -> None:
    """One request, one typed error carrying the relay's words."""
    relay.queue(failure)
    with client_for(relay) as client, pytest.raises(kind) as caught:
        client.generate("A cat")
    assert type(caught.value) is kind
    assert caught.value.message
    assert generations(relay) == 1
    assert_no_leak(caught.value, repr(caught.value))


# --- Timeouts: the user sees which limit was hit, and how to raise it ---


@pytest.mark.parametrize("retry_unanswered", [False, True])
def test_slow_answers_time_out_and_are_retried_only_when_allowed(
    relay: FakeRelay, retry_unanswered: bool
) -> None:
    """No answer before the read timeout: APITimeoutError naming the limit. The relay had the
    request whole (it may be drawing it), so it is sent again only with ``retry_unanswered``."""
    relay.queue(*[Reply.slow(5)] * 2)
    client = client_for(relay, timeout=0.2, max_retries=1, retry_unanswered=retry_unanswered)
    with (
        client,
        pytest.raises(APITimeoutError, match=r"read timeout of 0\.2 s.*ImageClient\(timeout=") as caught,
    ):
        client.generate("A cat")
    assert caught.value.sent_unanswered and not caught.value.answer_started
    assert generations(relay) == (2 if retry_unanswered else 1)
    assert ("may have been generated" in str(caught.value)) is not retry_unanswered


def test_a_stalled_stream_is_not_retried(relay: FakeRelay) -> None:
    """The answer had begun (the generation may finish and be billed): no second generation."""
    relay.queue(Reply.success("markdown", pace=1.0))
    client = client_for(relay, stream=True, timeout=0.3)
    with client, pytest.raises(APITimeoutError) as caught:
        client.generate("A cat")
    assert caught.value.answer_started
    assert generations(relay) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_an_endless_stream_hits_the_total_timeout(relay: FakeRelay, stream: bool) -> None:
    """Keep-alives forever: the total timeout ends it, named as such."""
    relay.queue(Reply.transport_fault("endless_stream"))
    client = client_for(relay, stream=stream, total_timeout=0.5)
    with client, pytest.raises(APITimeoutError, match=r"total timeout of 0\.5 s.*total_timeout="):
        client.generate("A cat")
    assert generations(relay) == 1


async def test_an_endless_stream_async(relay: FakeRelay) -> None:
    relay.queue(Reply.transport_fault("endless_stream"))
    async with client_for(relay, stream=True, total_timeout=0.4) as client:
        with pytest.raises(APITimeoutError, match="total timeout"):
            await client.agenerate("A cat")


def test_the_total_timeout_bounds_retries_too(relay: FakeRelay) -> None:
    """Slow answers with many retries allowed still end at the total timeout."""
    relay.queue(*[Reply.slow(5)] * 10)
    client = client_for(relay, timeout=0.3, total_timeout=0.5, max_retries=9, retry_unanswered=True)
    with client, pytest.raises(APITimeoutError, match=r"total timeout of 0\.5 s"):
        client.generate("A cat")
    assert generations(relay) <= 2


def test_a_huge_body_is_refused(relay: FakeRelay) -> None:
    """A 256 MiB answer is cut at the size cap: MalformedResponseError, no memory blow-up."""
    relay.queue(Reply.transport_fault("huge_body"))
    with client_for(relay) as client, pytest.raises(MalformedResponseError, match="larger than 64 MiB"):
        client.generate("A cat")
    assert generations(relay) == 1


def test_connection_reset_without_retries(relay: FakeRelay) -> None:
    """With retries off, a reset mid-body is a connection error that says the connection broke."""
    relay.queue(Reply.transport_fault("reset_mid_body"))
    client = client_for(relay, max_retries=0)
    with client, pytest.raises(APIConnectionError, match=r"connection to the relay .* broke"):
        client.generate("A cat")


# --- Saving images: nothing lost, even when a download fails ---


def two_images(relay: FakeRelay, second_url: str) -> Reply:
    first = f"{relay.origin}/images/1024x1024/{'a' * 16}.png"
    data = [{"url": first, "revised_prompt": "one"}, {"url": second_url, "revised_prompt": "two"}]
    return Reply(body=json.dumps({"created": 1, "data": data}).encode())


def saved_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_expired_link_keeps_the_other_images(relay: FakeRelay, tmp_path: Path, mode: str) -> None:
    """One link is dead (404): the other image is saved; the dead one keeps its URL and says why."""
    relay.queue(two_images(relay, f"{relay.origin}/images/gone/{'b' * 16}.png"))
    client = client_for(relay, save_dir=tmp_path, allow_private_downloads=True)
    if mode == "sync":
        with client:
            result = client.generate("A cat", n=2)
    else:

        async def run() -> Any:
            async with client:
                return await client.agenerate("A cat", n=2)

        result = asyncio.run(run())
    saved, dead = result.images
    assert saved.path is not None
    assert png_size(saved.path.read_bytes()) == (1024, 1024)
    assert saved.path.name == f"{saved.path.stem}.png"
    assert dead.path is None
    assert dead.url and dead.url.endswith("b" * 16 + ".png")
    assert dead.save_error is not None
    assert "HTTP 404" in dead.save_error
    assert saved_files(tmp_path) == [saved.path]  # no half files left behind


def test_links_to_private_addresses_are_not_fetched(relay: FakeRelay, tmp_path: Path) -> None:
    """A relay pointing at internal services gets nothing fetched; the user sees why."""
    relay.queue(two_images(relay, "http://169.254.169.254/latest/meta-data/iam.png"))
    with client_for(relay, save_dir=tmp_path) as client:  # private downloads not allowed (default)
        first, second = client.generate("A cat", n=2).images
    for image in (first, second):  # 127.0.0.1 (the relay itself) and the metadata address
        assert image.path is None
        assert image.save_error is not None
        assert "refused to download" in image.save_error
    assert [request.method for request in relay.requests] == ["POST"]  # no GET reached anything
    assert saved_files(tmp_path) == []


def test_inline_images_are_decoded_and_saved(relay: FakeRelay, tmp_path: Path) -> None:
    """Base64 images are written as files named after their content, PNGs by their bytes."""
    relay.queue(Reply.success(image_format="b64_json"), Reply.success(image_format="b64_json"))
    with client_for(relay, save_dir=tmp_path) as client:
        first = client.generate("A cat", n=2, size="1024x1792")
        again = client.generate("A cat", n=2, size="1024x1792")
    assert [image.path for image in first.images] == [image.path for image in again.images]  # deterministic
    for image in first.images:
        assert image.path is not None
        assert image.path.suffix == ".png"
        assert image.path.read_bytes() == base64.b64decode(image.b64_json or "")
    assert len(saved_files(tmp_path)) == 2


def test_a_download_that_is_not_an_image_is_not_saved(relay: FakeRelay, tmp_path: Path) -> None:
    """An HTML page where an image should be: not saved, and the user is told."""
    relay.queue(two_images(relay, f"{relay.origin}/v1/models"))
    with client_for(relay, save_dir=tmp_path, allow_private_downloads=True) as client:
        saved, odd = client.generate("A cat", n=2).images
    assert saved.path is not None
    assert odd.save_error is not None
    assert "HTTP 404" in odd.save_error or "not a PNG" in odd.save_error
    assert saved_files(tmp_path) == [saved.path]


def test_saved_paths_reach_the_model(relay: FakeRelay, tmp_path: Path) -> None:
    tool = ImageGenerationTool(
        client=client_for(relay, save_dir=tmp_path, allow_private_downloads=True, max_retries=0)
    )
    message = tool.invoke(tool_call(prompt="A cat"))
    (image,) = message.artifact.images
    assert f"Saved at: {image.path}" in message.content


def test_oversized_images_are_not_saved(relay: FakeRelay, tmp_path: Path) -> None:
    relay.queue(Reply.success())
    with client_for(relay, save_dir=tmp_path, allow_private_downloads=True, max_image_bytes=1000) as client:
        (image,) = client.generate("A cat").images
    assert image.save_error is not None
    assert "larger than 1000 bytes" in image.save_error
    assert saved_files(tmp_path) == []


# --- Keys, limits ---


def test_a_relay_echoing_the_key_is_redacted(relay: FakeRelay, logs: pytest.LogCaptureFixture) -> None:
    """The relay's message is kept, the key inside it is not, at any log level."""
    relay.queue(Reply.error(401, f"Invalid token {KEY}, and sk-another-key-0123456789abcdef too"))
    tool = ImageGenerationTool(client=client_for(relay))
    message = tool.invoke(tool_call(prompt="A cat"))
    assert message.status == "error"
    relay.queue(Reply.error(500, f"upstream echoed {KEY}"))
    with client_for(relay) as client, pytest.raises(APIStatusError) as caught:
        client.generate("A cat")
    assert "[redacted]" in caught.value.message
    assert "sk-another" not in str(caught.value)
    assert_no_leak(message, caught.value, repr(caught.value.args), logs.text)


def test_the_concurrency_cap(relay: FakeRelay) -> None:
    """Past max_concurrency, calls wait for a slot instead of flooding the relay."""
    relay.queue(*[Reply.slow(0.6)] * 8)  # long enough for three to overlap on a loaded machine

    async def run() -> None:
        async with client_for(relay, max_concurrency=3) as client:
            await asyncio.gather(*(client.agenerate(f"Cat {index}") for index in range(8)))

    asyncio.run(run())
    assert relay.max_in_flight == 3


def test_the_image_budget(relay: FakeRelay) -> None:
    """Past max_images the model is told plainly; failed calls do not use the budget."""
    tool = ImageGenerationTool(client=client_for(relay, max_retries=0), max_images=3)
    assert tool.invoke(tool_call(prompt="A cat", n=2)).status == "success"
    relay.queue(Reply.server_error())
    assert tool.invoke(tool_call(prompt="A cat")).status == "error"  # nothing generated, nothing spent
    too_many = tool.invoke(tool_call(prompt="A cat", n=2))
    assert too_many.status == "error"
    assert "ask for n=1 or fewer" in too_many.content
    assert tool.invoke(tool_call(prompt="A cat", n=1)).status == "success"
    spent = tool.invoke(tool_call(prompt="A cat"))
    assert spent.status == "error"
    assert "The image budget is spent" in spent.content
    assert generations(relay) == 3


def test_each_user_is_held_to_a_budget_of_their_own_within_the_tools(relay: FakeRelay) -> None:
    """max_images_per_user per end user (image_tool_user in the run's config), max_images for all."""
    tool = ImageGenerationTool(client=client_for(relay, max_retries=0), max_images=3, max_images_per_user=2)

    def as_user(user: str, n: int = 1) -> ToolMessage:
        message = tool.invoke(tool_call(prompt="A cat", n=n), {"configurable": {"image_tool_user": user}})
        assert isinstance(message, ToolMessage)
        return message

    first = as_user("alice", 2)
    assert first.status == "success" and "Left in this budget: 0 image(s)." in first.content
    assert "budget is spent" in as_user("alice").content
    bob = as_user("bob")
    assert (
        bob.status == "success" and "Left in this budget: 0 image(s)." in bob.content
    )  # the tool's 3 are spent
    assert "budget is spent" in as_user("carol").content
    assert generations(relay) == 2


MAY_BE_BILLED = {
    "answer_cut": Reply.transport_fault("reset_mid_body"),
    "dropped_after_sending": Reply.transport_fault("drop_unanswered"),
    "read_timeout": Reply.slow(5),
}


@pytest.mark.parametrize("failure", list(MAY_BE_BILLED.values()), ids=list(MAY_BE_BILLED))
def test_a_failure_that_may_be_billed_keeps_its_reservation(relay: FakeRelay, failure: Reply) -> None:
    """Six calls whose requests reached the relay and failed without a refusal: each may be
    billed, so a budget of 2 images lets two start, and the rest are told it is spent."""
    relay.queue(*[failure] * 6)
    tool = ImageGenerationTool(client=client_for(relay, max_retries=0, timeout=0.3), max_images=2)
    messages = [tool.invoke(tool_call(prompt=f"Cat {index}")) for index in range(6)]
    assert [message.status for message in messages] == ["error"] * 6
    assert all("budget is spent" in message.content for message in messages[2:])
    assert generations(relay) == 2


def test_a_spending_limit_keeps_what_may_be_billed(relay: FakeRelay) -> None:
    relay.queue(*[Reply.transport_fault("drop_unanswered")] * 4)
    client = client_for(relay, max_retries=0, price_per_image=0.04)
    tool = ImageGenerationTool(client=client, max_cost=0.08)
    messages = [tool.invoke(tool_call(prompt=f"Cat {index}")) for index in range(4)]
    assert all("spending limit of 0.08 is reached" in message.content for message in messages[2:])
    assert generations(relay) == 2


def test_a_refused_call_gives_its_reservation_back(relay: FakeRelay) -> None:
    relay.queue(*[Reply.content_policy()] * 3, Reply.rate_limited(retry_after=3600))
    tool = ImageGenerationTool(client=client_for(relay, max_retries=0), max_images=1)
    for index in range(4):
        assert tool.invoke(tool_call(prompt=f"Cat {index}")).status == "error"
    assert tool.invoke(tool_call(prompt="A cat")).status == "success"  # nothing drawn before
    assert generations(relay) == 5


@pytest.mark.parametrize("racing", ["threads", "tasks"])
def test_racing_calls_never_start_more_than_the_budget(relay: FakeRelay, racing: str) -> None:
    """Eight calls at once against a budget of 3, every answer cut: three reach the relay."""
    relay.queue(*[Reply.transport_fault("reset_mid_body")] * 8)
    tool = ImageGenerationTool(client=client_for(relay, max_retries=0), max_images=3)
    calls = [tool_call(prompt=f"Cat {index}") for index in range(8)]
    if racing == "threads":
        with ThreadPoolExecutor(8) as pool:
            messages = list(pool.map(tool.invoke, calls))
    else:

        async def run() -> list[Any]:
            return await asyncio.gather(*(tool.ainvoke(call) for call in calls))

        messages = asyncio.run(run())
    assert sum("budget is spent" in message.content for message in messages) == 5
    assert generations(relay) == 3
    assert "budget is spent" in tool.invoke(tool_call(prompt="One more")).content  # all may be billed


def test_png_fixture_is_real() -> None:
    assert png_size(png_image(8, 4, "x")) == (8, 4)
