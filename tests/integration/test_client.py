"""ImageClient against recorded relay answers (cassettes) and against FakeRelay on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Any

import httpx2
import pytest
from vcr.errors import CannotOverwriteExistingCassetteException

from image_tool import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ContentPolicyError,
    ImageClient,
    ImageGenerationResult,
    MalformedResponseError,
    NoImageError,
    QuotaExceededError,
    RateLimitError,
)
from image_tool.testing import FakeRelay, Reply, png_size

from ..conftest import RelayTarget

OPTIONS: dict[str, Any] = {
    "n": 2,
    "size": "1792x1024",
    "quality": "hd",
    "style": "natural",
    "user": "end-user-42",
}
PROMPT = "A lighthouse on a cliff at dawn, waves below"


def sent_body(vcr: Any) -> Any:
    """The body of the cassette's first request; body matching makes it the one the client sent."""
    return json.loads(vcr.requests[0].body)


def check_result(result: ImageGenerationResult) -> None:
    assert len(result.images) == 2
    for image in result.images:
        assert image.url and image.url.startswith(("http://", "https://"))
        assert image.revised_prompt
    assert result.created


@pytest.mark.vcr
def test_generate(client: ImageClient, vcr: Any) -> None:
    check_result(client.generate(PROMPT, **OPTIONS))
    assert sent_body(vcr) == {
        "model": "gpt-4o-image",
        "messages": [{"role": "user", "content": PROMPT}],
        "n": 2,
        "size": "1792x1024",
        "quality": "hd",
        "style": "natural",
        "user": "end-user-42",
    }


@pytest.mark.vcr
async def test_agenerate(client: ImageClient, vcr: Any) -> None:
    check_result(await client.agenerate(PROMPT, **OPTIONS))
    assert sent_body(vcr)["messages"] == [{"role": "user", "content": PROMPT}]


@pytest.mark.vcr
def test_defaults_are_the_vendors(client: ImageClient, vcr: Any) -> None:
    result = client.generate("A red bicycle")
    assert len(result.images) == 1
    body = sent_body(vcr)
    assert (body["n"], body["size"], body["quality"], body["style"]) == (1, "1024x1024", "standard", "vivid")
    assert "user" not in body


@pytest.mark.vcr
@pytest.mark.emulator_only
def test_b64_json(client: ImageClient, relay: RelayTarget) -> None:
    relay.queue(Reply.success(image_format="b64_json"))
    (image,) = client.generate("A red bicycle", size="1024x1792").images
    assert image.url is None
    assert image.b64_json is not None
    assert png_size(base64.b64decode(image.b64_json)) == (1024, 1792)


FAILURES: dict[str, tuple[Reply, type[APIError], int]] = {
    "unauthorized": (Reply.unauthorized(), AuthenticationError, 401),
    "content_policy": (Reply.content_policy(), ContentPolicyError, 400),
    "rate_limited": (Reply.rate_limited(retry_after=20), RateLimitError, 429),
    "server_error": (Reply.server_error(), APIStatusError, 500),
    "bad_gateway_html": (
        Reply(status=502, body=b"<html><head><title>502 Bad Gateway</title></head></html>"),
        APIStatusError,
        502,
    ),
    "error_with_200": (
        Reply.error(200, "用户额度不足", code="insufficient_user_quota"),
        QuotaExceededError,
        200,
    ),
    "not_json": (Reply(body=b"upstream said something else"), MalformedResponseError, 200),
    "no_image": (Reply(body=b'{"created": 1725000000, "data": []}'), NoImageError, 200),
}


@pytest.mark.vcr
@pytest.mark.emulator_only
@pytest.mark.parametrize("failure", FAILURES)
def test_failures_raise_typed_errors(client: ImageClient, relay: RelayTarget, failure: str) -> None:
    reply, kind, status = FAILURES[failure]
    relay.queue(reply)
    with pytest.raises(kind) as caught:
        client.generate("A cat in a tree")
    assert type(caught.value) is kind
    assert caught.value.status_code == status
    assert caught.value.message
    if isinstance(caught.value, RateLimitError):
        assert caught.value.retry_after == 20


@pytest.mark.vcr
@pytest.mark.emulator_only
@pytest.mark.parametrize("failure", ["unauthorized", "content_policy", "rate_limited", "server_error"])
async def test_failures_raise_typed_errors_async(
    client: ImageClient, relay: RelayTarget, failure: str
) -> None:
    reply, kind, status = FAILURES[failure]
    relay.queue(reply)
    with pytest.raises(kind) as caught:
        await client.agenerate("A cat in a tree")
    assert caught.value.status_code == status


# --- On loopback: what a cassette cannot show (timing, connections, event loops). ---


def test_timeout_names_the_limit(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.slow(5))
    client = ImageClient(api_key=fake_relay.api_key, base_url=fake_relay.base_url, timeout=0.2, max_retries=0)
    with pytest.raises(APITimeoutError, match=r"read timeout of 0\.2 s.*timeout="):
        client.generate("A cat")
    client.close()


async def test_timeout_async(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.slow(5))
    async with ImageClient(
        api_key=fake_relay.api_key, base_url=fake_relay.base_url, timeout=0.2, max_retries=0
    ) as client:
        with pytest.raises(APITimeoutError):
            await client.agenerate("A cat")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_unreachable_relay_is_a_connection_error() -> None:
    client = ImageClient(api_key="k", base_url=f"http://127.0.0.1:{closed_port()}/v1", max_retries=0)
    with client, pytest.raises(APIConnectionError, match="Could not reach the relay") as caught:
        client.generate("A cat")
    assert not isinstance(caught.value, APITimeoutError)
    assert caught.value.status_code is None


async def test_unreachable_relay_async() -> None:
    async with ImageClient(
        api_key="k", base_url=f"http://127.0.0.1:{closed_port()}/v1", max_retries=0
    ) as client:
        with pytest.raises(APIConnectionError):
            await client.agenerate("A cat")


def test_connections_are_reused(live_client: ImageClient, fake_relay: FakeRelay) -> None:
    for _ in range(3):
        live_client.generate("A cat")
    assert len({request.client_port for request in fake_relay.requests}) == 1


async def test_async_connections_are_reused(live_client: ImageClient, fake_relay: FakeRelay) -> None:
    for _ in range(3):
        await live_client.agenerate("A cat")
    assert len({request.client_port for request in fake_relay.requests}) == 1
    await live_client.aclose()


def test_works_from_several_event_loops(live_client: ImageClient) -> None:
    async def generate_and_close() -> ImageGenerationResult:
        try:
            return await live_client.agenerate("A cat")
        finally:
            await live_client.aclose()

    for _ in range(3):  # each asyncio.run is a new event loop; a loop-bound pool would break here
        assert asyncio.run(generate_and_close()).images
    assert asyncio.run(live_client.agenerate("A cat")).images  # without closing in between too
    asyncio.run(live_client.agenerate("A dog"))


async def test_concurrent_calls_run_at_once(live_client: ImageClient, fake_relay: FakeRelay) -> None:
    # Each answer takes 3 s: the 150 requests reach the relay within ~0.1 s on a quiet machine,
    # ~0.5 s on a loaded one, all while the first are still in it.
    fake_relay.queue(*[Reply.slow(3.0)] * 150)
    results = await asyncio.gather(*(live_client.agenerate(f"Cat {i}") for i in range(150)))
    assert all(result.images for result in results)
    # Every request was in the relay at the same moment: nothing queued behind a pool limit
    # or a blocked event loop.
    assert fake_relay.max_in_flight == 150
    await live_client.aclose()


def test_injected_http_clients_are_used_and_left_open(fake_relay: FakeRelay) -> None:
    seen: list[httpx2.Request] = []
    http_client = httpx2.Client(event_hooks={"request": [seen.append]}, headers={"X-Team": "a"})
    client = ImageClient(
        api_key=fake_relay.api_key,
        base_url=fake_relay.base_url,
        http_client=http_client,
        default_headers={"X-Trace": "t1"},
    )
    client.generate("A cat")
    client.close()
    assert not http_client.is_closed
    (request,) = seen
    assert request.headers["X-Trace"] == "t1"
    assert request.headers["X-Team"] == "a"
    assert request.headers["User-Agent"].startswith("image-tool/")
    http_client.close()


async def test_injected_async_client(fake_relay: FakeRelay) -> None:
    async with httpx2.AsyncClient() as http_async_client:
        client = ImageClient(
            api_key=fake_relay.api_key, base_url=fake_relay.base_url, http_async_client=http_async_client
        )
        assert (await client.agenerate("A cat")).images
        await client.aclose()
        assert not http_async_client.is_closed


def test_errors_never_hold_the_key(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.error(401, f"Invalid token: {fake_relay.api_key}"))
    client = ImageClient(api_key=fake_relay.api_key, base_url=fake_relay.base_url)
    with client, pytest.raises(APIError) as caught:
        client.generate("A cat")
    assert fake_relay.api_key not in str(caught.value)
    assert fake_relay.api_key not in repr(caught.value.args)
    assert "[redacted]" in caught.value.message


@pytest.mark.vcr
def test_a_request_with_no_recording_fails_instead_of_reaching_the_network(
    client: ImageClient, record_mode: str
) -> None:
    """In replay, a request that no cassette holds is refused by vcrpy before it leaves the
    client's transport: it fails as an unexpected error, and nothing goes out."""
    if record_mode != "none":
        pytest.skip("only a replay refuses requests it has no recording of")
    with pytest.raises(APIError, match="CannotOverwriteExistingCassetteException") as refused:
        client.generate("A prompt that no cassette holds")
    assert isinstance(refused.value.__cause__, CannotOverwriteExistingCassetteException)
