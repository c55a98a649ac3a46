"""FakeRelay's own limits (a request rate, an image quota, a concurrency cap) on every generation
endpoint, their answers on the wire and through ImageClient, and the count of what was generated."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol

import httpx2
import pytest

from image_tool import ImageClient
from image_tool.errors import QuotaExceededError, RateLimitError
from image_tool.testing import FakeRelay, Reply, png_image
from image_tool.testing._admission import Admission, Ticket
from image_tool.testing._go_relays import SATURATED
from image_tool.testing._replies import RelayProfile

from ..helpers import wait_until

CHAT = {"model": "gpt-4o-image", "messages": [{"role": "user", "content": "a cat in a tree"}]}
DECIMAL_SECONDS = re.compile(r"^\d+\.\d\d$")


def chat(
    relay: FakeRelay, prompt: str = "a cat in a tree", *, http: httpx2.Client | None = None, **fields: Any
) -> httpx2.Response:
    """A chat completion request; ``http`` to reuse a client (a new one loads the CA bundle: ~40 ms)."""
    body = {**CHAT, "messages": [{"role": "user", "content": prompt}], **fields}
    headers = {"Authorization": f"Bearer {relay.api_key}"}
    post = http.post if http is not None else httpx2.post
    return post(f"{relay.base_url}/chat/completions", json=body, headers=headers, timeout=10)


def images(
    relay: FakeRelay, prompt: str = "a red fox", *, http: httpx2.Client | None = None, **fields: Any
) -> httpx2.Response:
    body = {"model": "gpt-image-1", "prompt": prompt, **fields}
    headers = {"Authorization": f"Bearer {relay.api_key}"}
    post = http.post if http is not None else httpx2.post
    return post(f"{relay.base_url}/images/generations", json=body, headers=headers, timeout=10)


def edit(
    relay: FakeRelay, prompt: str = "make it purple", *, http: httpx2.Client | None = None
) -> httpx2.Response:
    files = [("image[]", ("a.png", png_image(8, 8, "a"), "image/png"))]
    data = {"model": "gpt-image-1", "prompt": prompt}
    headers = {"Authorization": f"Bearer {relay.api_key}"}
    post = http.post if http is not None else httpx2.post
    return post(f"{relay.base_url}/images/edits", data=data, files=files, headers=headers, timeout=10)


class Call(Protocol):
    def __call__(self, relay: FakeRelay, *, http: httpx2.Client | None = None) -> httpx2.Response: ...


ENDPOINTS: dict[str, Call] = {"chat": chat, "images": images, "edits": edit}


def at_once(calls: list[Callable[[], httpx2.Response]]) -> list[httpx2.Response]:
    """Run the calls in threads together; their answers in the calls' order."""
    answers: list[httpx2.Response | None] = [None] * len(calls)

    def run(index: int) -> None:
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


@contextmanager
def relay_with(**options: Any) -> Iterator[FakeRelay]:
    with FakeRelay(**options) as relay:
        yield relay


class StoppedClock:
    """A clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def relay_on_a_clock(rate_limit: float, **options: Any) -> Iterator[tuple[FakeRelay, StoppedClock]]:
    """A FakeRelay whose rate limit reads a ``StoppedClock``: its requests take no time on it, so
    what it refuses does not depend on how fast the machine sends them.
    test_the_bucket_refills_at_the_rate keeps the real clock."""
    clock = StoppedClock()
    with FakeRelay(rate_limit=rate_limit, clock=clock, **options) as relay:
        yield relay, clock


# --- rate_limit ----------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_burst_of_the_rate_then_429_with_retry_after(endpoint: str) -> None:
    call = ENDPOINTS[endpoint]
    with relay_on_a_clock(4) as (relay, clock), httpx2.Client() as http:
        answers = [call(relay, http=http) for _ in range(5)]
        assert [answer.status_code for answer in answers[:4]] == [200] * 4
        refused = answers[4]
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/json; charset=utf-8"
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("new_api_error", "rate_limit_exceeded")
        assert error["message"].startswith("您已达到请求数限制：1秒内最多请求4次 (request id: ")
        assert refused.headers["x-oneapi-request-id"] in error["message"]
        retry_after = refused.headers["retry-after"]
        assert DECIMAL_SECONDS.match(retry_after)
        assert retry_after == "0.25"  # a token every 0.25 s
        clock.advance(float(retry_after))
        assert call(relay, http=http).status_code == 200  # the wait it named was enough
        assert relay.generated == 5


def test_retry_after_says_when_the_next_token_comes() -> None:
    with relay_on_a_clock(2) as (relay, clock), httpx2.Client() as http:
        assert [chat(relay, http=http).status_code for _ in range(2)] == [200, 200]
        clock.advance(0.1)
        refused = chat(relay, http=http)
        wait = float(refused.headers["retry-after"])
        assert wait == 0.4  # a token every half second, less what refilled meanwhile
        clock.advance(wait / 2)
        assert chat(relay, http=http).status_code == 429  # not long enough
        clock.advance(wait / 2)
        assert chat(relay, http=http).status_code == 200


def test_the_bucket_refills_at_the_rate() -> None:
    with relay_with(rate_limit=20) as relay, httpx2.Client() as http:
        began = time.monotonic()
        first = [chat(relay, http=http).status_code for _ in range(40)]
        refill = 20 * (time.monotonic() - began)
        assert 20 <= first.count(200) <= 20 + refill + 1  # the burst, and what refilled while asking
        time.sleep(0.5)
        began = time.monotonic()
        later = [chat(relay, http=http).status_code for _ in range(30)]
        refill = 20 * (time.monotonic() - began)
        assert 10 <= later.count(200) <= 10 + refill + 1  # half a second at 20 a second


def test_retry_after_is_rounded_up_to_hundredths_and_at_least_one() -> None:
    clock = StoppedClock()
    admission = Admission(rate_limit=1000, clock=clock)
    assert all(isinstance(admission.admit(1), Ticket) for _ in range(1000))
    refused = admission.admit(1)
    assert not isinstance(refused, Ticket)
    assert dict(refused.headers)["Retry-After"] == "0.01"  # 1 ms, named as the shortest wait
    slow = Admission(rate_limit=3, clock=clock)
    for _ in range(3):
        slow.admit(1)
    clock.advance(0.1)  # 0.3 of a token back: 0.7 / 3 = 0.2333 s to the next
    refused = slow.admit(1)
    assert not isinstance(refused, Ticket)
    assert dict(refused.headers)["Retry-After"] == "0.24"
    clock.advance(0.24)
    assert isinstance(slow.admit(1), Ticket)


def test_refusals_come_before_queued_replies_and_do_not_use_them() -> None:
    with relay_on_a_clock(4) as (relay, clock), httpx2.Client() as http:
        relay.queue(*[Reply.success()] * 4, Reply.content_policy())
        assert [chat(relay, http=http).status_code for _ in range(4)] == [200] * 4
        refused = chat(relay, http=http)
        assert refused.status_code == 429
        clock.advance(float(refused.headers["retry-after"]))
        assert chat(relay, http=http).json()["error"]["code"] == "content_policy_violation"


@pytest.mark.parametrize("profile", ["new-api", "one-api", "litellm", "gateway"])
def test_the_relay_answers_its_own_limits_the_same_under_every_profile(profile: RelayProfile) -> None:
    with relay_with(rate_limit=1, profile=profile) as relay, httpx2.Client() as http:
        assert chat(relay, http=http).status_code != 429  # the token taken, whatever the answer
        refused = chat(relay, http=http)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert DECIMAL_SECONDS.match(refused.headers["retry-after"])


# --- quota_images --------------------------------------------------------------------------------


def test_the_quota_counts_images_and_then_refuses_every_request() -> None:
    with relay_with(quota_images=5) as relay:
        assert chat(relay, "two cats", n=2).status_code == 200
        assert images(relay, "two foxes", n=2).status_code == 200
        too_many = chat(relay, "two owls", n=2)  # 4 + 2 would pass 5
        assert too_many.status_code == 403
        assert too_many.json() == json.loads(Reply.quota_exhausted().body or b"")
        assert too_many.json()["error"]["code"] == "insufficient_user_quota"
        assert chat(relay, "one owl").status_code == 200
        assert [chat(relay).status_code, images(relay).status_code, edit(relay).status_code] == [403] * 3
        assert relay.generated == 5
        assert relay.generated_prompts == ["two cats", "two foxes", "one owl"]


def test_failed_answers_use_no_quota() -> None:
    with relay_with(quota_images=1) as relay:
        relay.queue(
            Reply.server_error(),
            Reply.text_only(),
            Reply.streamed_fault("cut_before_done"),
            Reply.truncated_json(),
            Reply.rate_limited(),
        )
        assert chat(relay).status_code == 500
        assert chat(relay).status_code == 200  # text, no image
        with httpx2.stream(
            "POST",
            f"{relay.base_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers={"Authorization": f"Bearer {relay.api_key}"},
        ) as response:
            response.read()
        assert chat(relay).status_code == 200  # a raw body
        assert chat(relay).status_code == 429
        assert (relay.generated, relay.generated_prompts) == (0, [])
        assert chat(relay, "at last").status_code == 200
        assert (relay.generated, relay.generated_prompts) == (1, ["at last"])


def test_concurrent_requests_never_generate_more_than_the_quota() -> None:
    """Each admitted request reserves its images, as new-api pre-consumes quota."""
    with relay_with(quota_images=5, default_reply=Reply.slow(0.2)) as relay, httpx2.Client() as http:
        answers = at_once([partial(chat, relay, f"cat {number}", http=http) for number in range(10)])
        assert sorted(answer.status_code for answer in answers) == [200] * 5 + [403] * 5
        assert relay.generated == 5
        assert len(set(relay.generated_prompts)) == 5


@pytest.mark.parametrize(
    ("profile", "reply", "fields", "images"),
    [
        ("gateway", Reply(), {"modalities": ["image", "text"]}, 1),
        ("gateway", Reply(), {}, 0),  # without the image modality the gateway only writes
        ("new-api", Reply(), {"stream": True}, 0),  # a JSON body to a stream: a bare [DONE]
        ("new-api", Reply.success("markdown"), {"stream": True}, 1),
        ("litellm", Reply(), {}, 0),  # no choices in the upstream's answer: LiteLLM's 500
        ("litellm", Reply.success("markdown"), {"n": 2}, 2),
        ("vendor", Reply(), {"stream": True, "n": 2}, 2),
    ],
)
def test_counts_only_answers_that_carry_images(
    profile: RelayProfile, reply: Reply, fields: dict[str, Any], images: int
) -> None:
    with relay_with(profile=profile) as relay:
        relay.queue(reply)
        answer = chat(relay, "a heron", **fields)
        assert answer.status_code == (200 if images or profile != "litellm" else 500)
        assert ("/images/" in answer.text or "base64" in answer.text) == bool(images)
        assert relay.generated == images
        assert relay.generated_prompts == (["a heron"] if images else [])


def test_generated_prompts_are_counted_once_each_from_many_threads() -> None:
    with relay_with() as relay, httpx2.Client() as http:
        at_once([partial(chat, relay, f"bird {number}", http=http) for number in range(40)])
        assert relay.generated == 40
        assert sorted(relay.generated_prompts) == sorted(f"bird {number}" for number in range(40))


# --- max_concurrent ------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_request_beyond_the_concurrency_gets_new_apis_saturation_answer(endpoint: str) -> None:
    call = ENDPOINTS[endpoint]
    with relay_with(max_concurrent=2, default_reply=Reply.slow(0.3)) as relay, httpx2.Client() as http:

        def late() -> httpx2.Response:
            wait_until(lambda: relay.in_flight == 2)  # the other two are being answered
            return call(relay, http=http)

        answers = at_once([partial(call, relay, http=http), partial(call, relay, http=http), late])
        assert [answer.status_code for answer in answers] == [200, 200, 429]
        saturated = answers[2]
        error = saturated.json()["error"]
        assert error["message"].startswith(f"{SATURATED} (request id: ")
        assert (error["type"], error["code"], error["param"]) == (
            "upstream_error",
            "bad_response_status_code",
            "429",
        )
        assert "retry-after" not in saturated.headers  # new-api copies no upstream header
        assert saturated.headers["x-oneapi-request-id"] in error["message"]
        assert call(relay, http=http).status_code == 200  # room again
        assert relay.generated == 3


def test_saturation_is_counted_on_admitted_requests_only() -> None:
    """Refused requests do not take a place: a flood of them never blocks the next admitted one."""
    with relay_with(max_concurrent=1, default_reply=Reply.slow(0.3)) as relay:
        slow = threading.Thread(target=chat, args=(relay, "slow"))
        slow.start()
        wait_until(lambda: relay.in_flight == 1)
        with httpx2.Client() as http:
            assert {chat(relay, http=http).status_code for _ in range(20)} == {429}
        slow.join(30)
        assert chat(relay, "after").status_code == 200
        assert relay.generated_prompts == ["slow", "after"]


# --- through ImageClient -------------------------------------------------------------------------


def test_saturation_is_a_rate_limit_error_through_the_client() -> None:
    with relay_with(max_concurrent=1, default_reply=Reply.slow(0.3)) as relay:
        client = ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=0)
        holder = threading.Thread(target=client.generate, args=("the first",))
        holder.start()
        wait_until(lambda: relay.in_flight == 1)
        with pytest.raises(RateLimitError) as caught:
            client.generate("the second")
        holder.join(30)
        client.close()
    error = caught.value
    assert (error.status_code, error.retry_after) == (429, None)
    assert error.summary == SATURATED
    assert relay.generated_prompts == ["the first"]


async def test_saturation_is_a_rate_limit_error_through_the_async_client_on_the_images_api() -> None:
    with relay_with(max_concurrent=1, default_reply=Reply.slow(0.3)) as relay:
        async with ImageClient(
            api_key=relay.api_key, base_url=relay.base_url, model="gpt-image-1", max_retries=0
        ) as client:
            first = asyncio.create_task(client.agenerate("the first"))
            await asyncio.to_thread(wait_until, lambda: relay.in_flight == 1)
            with pytest.raises(RateLimitError) as caught:
                await client.agenerate("the second")
            result = await first
    assert caught.value.status_code == 429
    assert SATURATED in caught.value.message
    assert len(result.images) == 1
    assert relay.requests[-1].path == "/v1/images/generations"


def test_a_rate_limit_is_a_rate_limit_error_with_its_wait() -> None:
    with (
        relay_with(rate_limit=1) as relay,
        ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=0) as client,
    ):
        client.generate("the first")
        with pytest.raises(RateLimitError) as caught:
            client.generate("the second")
    assert caught.value.retry_after is not None
    assert 0.01 <= caught.value.retry_after <= 1.0


def test_an_exhausted_quota_is_a_quota_error() -> None:
    with (
        relay_with(quota_images=1) as relay,
        ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=2) as client,
    ):
        result = client.generate("the only one")
        with pytest.raises(QuotaExceededError):
            client.generate("one too many")
    assert len(result.images) == 1
    assert len([request for request in relay.requests if request.method == "POST"]) == 2  # not retried


# --- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"rate_limit": 0},
        {"rate_limit": -1.0},
        {"rate_limit": float("inf")},
        {"quota_images": -1},
        {"max_concurrent": 0},
    ],
)
def test_limits_that_mean_nothing_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        FakeRelay(**options)


def test_limits_are_off_by_default() -> None:
    with relay_with(default_reply=Reply.slow(0.05)) as relay, httpx2.Client() as http:
        assert (relay.rate_limit, relay.quota_images, relay.max_concurrent) == (None, None, None)
        answers = at_once([partial(chat, relay, http=http)] * 30)
        assert {answer.status_code for answer in answers} == {200}
        assert relay.generated == 30
