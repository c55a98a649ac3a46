"""AdaptiveLimit against FakeRelay's limits: it keeps a rate-limited relay busy with few 429s, and
settles below a relay's concurrency cap, each prompt generated once.

These count what the relay saw and what the limit decided (429s, prompts generated, requests at
once), not requests a second: a loaded machine slows the client, not the limit's decisions. The
time a run takes is only guarded, at several times what it takes on a quiet machine.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import httpx2
import pytest

from image_tool import ImageClient
from image_tool._policy.limits import AdaptiveLimit
from image_tool.errors import RateLimitError
from image_tool.testing import FakeRelay, Reply
from image_tool.testing._go_relays import SATURATED


@dataclass
class Run:
    """What a batch of requests met."""

    elapsed: float = 0.0
    throttles: int = 0
    """429 answers, each followed by a retry of the same prompt."""
    climbing_throttles: int = 0
    """Those of requests started while the limit climbs: in its slow start (its overshoot, at
    most a round), or before any success (no request time to pace by)."""
    limits: list[int] = field(default_factory=list)
    """The limit after each success, in order."""

    def sustained(self, requests: int, burst: float) -> float:
        """Requests a second past the bucket's first burst: what the refill rate allowed."""
        return (requests - burst) / self.elapsed

    def settled(self) -> list[int]:
        """The limit after each success, past the first third of the run (its climb)."""
        return self.limits[len(self.limits) // 3 :]

    def keeps_busy(self, rate: float, seconds_each: float) -> bool:
        """The limit settled where at least 80% of the relay's rate can be drawn: ``rate``
        requests a second of ``seconds_each`` need ``rate * seconds_each`` at once (Little's law)."""
        return statistics.median(self.settled()) >= 0.8 * rate * seconds_each


def is_climbing(limit: AdaptiveLimit) -> bool:
    return limit._slow_start or limit._request_time is None


def prompts(count: int) -> list[str]:
    return [f"a lighthouse, study {number}" for number in range(count)]


def http_client(relay: FakeRelay) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=relay.base_url,
        headers={"Authorization": f"Bearer {relay.api_key}"},
        limits=httpx2.Limits(max_connections=128),  # the default 100 would queue the fixed-100 run
        timeout=30,
    )


async def post(http: httpx2.AsyncClient, prompt: str) -> httpx2.Response:
    body = {"model": "gpt-4o-image", "messages": [{"role": "user", "content": prompt}]}
    return await http.post("/chat/completions", json=body)


async def through_the_limit(relay: FakeRelay, limit: AdaptiveLimit, batch: list[str]) -> Run:
    """Every prompt through the limit; a 429 is retried in a new slot, which waits out its
    Retry-After (the limit's pause)."""
    run = Run()

    async def generate(http: httpx2.AsyncClient, prompt: str) -> None:
        while True:
            async with limit.slot() as slot:
                climbing = is_climbing(limit)
                answer = await post(http, prompt)
                if answer.status_code == 429:
                    run.throttles += 1
                    run.climbing_throttles += climbing
                    slot.throttled(retry_after=float(answer.headers["retry-after"]))
                    continue
                assert answer.status_code == 200, answer.text
                run.limits.append(limit.limit)
                return

    async with http_client(relay) as http:
        began = time.perf_counter()
        await asyncio.gather(*(generate(http, prompt) for prompt in batch))
        run.elapsed = time.perf_counter() - began
    return run


async def at_fixed_concurrency(relay: FakeRelay, workers: int, batch: list[str]) -> Run:
    """``workers`` callers take prompts from one queue; each sleeps out a 429's Retry-After and
    asks again."""
    run, queue = Run(), list(reversed(batch))

    async def worker(http: httpx2.AsyncClient) -> None:
        while queue:
            prompt = queue.pop()
            while (answer := await post(http, prompt)).status_code == 429:
                run.throttles += 1
                await asyncio.sleep(float(answer.headers["retry-after"]))
            assert answer.status_code == 200, answer.text

    async with http_client(relay) as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(workers)))
        run.elapsed = time.perf_counter() - began
    return run


def assert_each_generated_once(relay: FakeRelay, batch: list[str]) -> None:
    assert relay.generated == len(batch)
    assert sorted(relay.generated_prompts) == sorted(batch)  # none lost, none twice


async def test_the_limit_keeps_a_rate_limited_relay_busy() -> None:
    """100 a second, 300 requests of 50 ms: after the first burst the refill rate is the bound."""
    rate, batch = 100, prompts(300)
    with FakeRelay(rate_limit=rate, default_reply=Reply.slow(0.05)) as relay:
        run = await through_the_limit(relay, AdaptiveLimit(initial=8), batch)
    assert_each_generated_once(relay, batch)
    print(
        f"\n{rate}/s: {run.elapsed:.2f} s, {run.sustained(len(batch), rate):.1f}/s past the burst, "
        f"{run.throttles} 429s, limit {min(run.limits)}..{max(run.limits)}, "
        f"settled median {statistics.median(run.settled())}"
    )
    assert run.keeps_busy(rate, seconds_each=0.05)
    # Slow start grows the limit through the bucket's first burst (100 at once) and overshoots, as
    # TCP's does, by at most a round. Past it, 10 to 33 measured (the most on a loaded machine).
    assert run.climbing_throttles <= max(run.limits)
    assert run.throttles - run.climbing_throttles <= len(batch) // 5
    assert run.elapsed < 6 * (len(batch) - rate) / rate  # 2 s of refill past the burst


@pytest.mark.slow
async def test_against_fixed_concurrency_the_limit_draws_few_429s_at_the_same_pace() -> None:
    """50 a second, 200 requests of 100 ms (3 s of refill past the burst), once through the limit
    and once by 100 workers at a time."""
    rate, batch = 50, prompts(200)
    with FakeRelay(rate_limit=rate, default_reply=Reply.slow(0.1)) as relay:
        adaptive = await through_the_limit(relay, AdaptiveLimit(initial=8), batch)
    assert_each_generated_once(relay, batch)
    with FakeRelay(rate_limit=rate, default_reply=Reply.slow(0.1)) as relay:
        fixed = await at_fixed_concurrency(relay, 100, batch)
    assert_each_generated_once(relay, batch)
    print(  # shown with -s: the figures of the report
        f"\nadaptive: {adaptive.elapsed:.2f} s, {len(batch) / adaptive.elapsed:.1f}/s overall, "
        f"{adaptive.sustained(len(batch), rate):.1f}/s past the burst, {adaptive.throttles} 429s, "
        f"limit {min(adaptive.limits)}..{max(adaptive.limits)}, "
        f"settled median {statistics.median(adaptive.settled())}"
        f"\nfixed 100: {fixed.elapsed:.2f} s, {len(batch) / fixed.elapsed:.1f}/s overall, "
        f"{fixed.sustained(len(batch), rate):.1f}/s past the burst, {fixed.throttles} 429s"
    )
    assert adaptive.keeps_busy(rate, seconds_each=0.1)
    assert adaptive.elapsed < 6 * (len(batch) - rate) / rate  # 3 s of refill past the burst
    assert fixed.throttles >= 30  # 49 to 110 measured on 2 cores, where the client is the bottleneck
    assert adaptive.throttles <= 30
    assert adaptive.throttles * 3 <= fixed.throttles


async def test_the_limit_settles_below_the_relays_concurrency_through_the_client() -> None:
    """A relay that takes 6 requests at once answers the 7th with new-api's saturation; the
    client reads it as RateLimitError, and the limit, from 16, settles around 6."""
    cap, batch = 6, prompts(150)
    limit, run = AdaptiveLimit(initial=16), Run()
    refusals: set[tuple[int | None, float | None, str]] = set()
    with FakeRelay(max_concurrent=cap, default_reply=Reply.slow(0.05)) as relay:
        async with ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=0) as client:

            async def generate(prompt: str) -> None:
                while True:
                    async with limit.slot() as slot:
                        climbing = is_climbing(limit)
                        try:
                            await client.agenerate(prompt)
                        except RateLimitError as error:
                            refusals.add((error.status_code, error.retry_after, error.summary))
                            run.throttles += 1
                            run.climbing_throttles += climbing
                            slot.throttled(retry_after=error.retry_after)
                            continue
                        run.limits.append(limit.limit)
                        return

            await asyncio.gather(*(generate(prompt) for prompt in batch))
    assert_each_generated_once(relay, batch)
    assert refusals == {(429, None, SATURATED)}  # new-api's saturation, no Retry-After
    settled = run.settled()
    print(
        f"\ncap {cap}: {run.throttles} saturations, limit after the first third "
        f"{min(settled)}..{max(settled)}, mean {statistics.mean(settled):.1f}; {relay.max_in_flight=}"
    )
    # At cap + 1 the relay refuses one and the limit is cut; a loaded machine that cannot keep the
    # limit full for a round may let it grow once more before that.
    assert max(settled) <= cap + 2
    assert statistics.mean(settled) <= cap
    # 14 to 38 measured in all: most before the first success, while this loop retries at once
    # (the client waits a backoff) and the limit, with no request time to pace by, cuts only once.
    assert run.throttles - run.climbing_throttles <= len(batch) // 5
