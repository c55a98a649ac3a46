"""AdaptiveLimit: slow start, additive increase, multiplicative decrease once per round, paced
starts, Retry-After pauses, and waiting that works from threads and from any number of event loops."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator

import pytest

from image_tool._policy.limits import AdaptiveLimit, Slot

from ..helpers import wait_until


class Pipeline:
    """Holds slots open in one thread, as a caller with more work than the limit allows would:
    ``fill`` opens slots until the limit is reached, ``succeed_oldest`` closes the oldest."""

    def __init__(self, limit: AdaptiveLimit) -> None:
        self.limit = limit
        self.open: deque[tuple[contextlib.ExitStack, Slot]] = deque()

    def fill(self) -> None:
        while self.limit.in_flight < self.limit.limit:
            stack = contextlib.ExitStack()
            self.open.append((stack, stack.enter_context(self.limit.sync_slot())))

    def succeed_oldest(self) -> None:
        stack, _ = self.open.popleft()
        stack.close()

    def throttle_oldest(self, retry_after: float | None = None) -> None:
        stack, slot = self.open.popleft()
        slot.throttled(retry_after)
        stack.close()

    def close_all(self) -> None:
        while self.open:
            self.succeed_oldest()

    def abandon_all(self) -> None:
        """Close the open slots as failures: neither successes nor throttles."""
        while self.open:
            stack, _ = self.open.popleft()
            stack.__exit__(KeyError, KeyError("abandoned"), None)


def full_rounds(limit: AdaptiveLimit, successes: int) -> list[int]:
    """The limit after each of ``successes`` requests, the limit always full; the requests still
    open at the end fail (they count for nothing)."""
    pipeline = Pipeline(limit)
    seen = []
    pipeline.fill()
    for _ in range(successes):
        pipeline.succeed_oldest()
        pipeline.fill()
        seen.append(limit.limit)
    pipeline.abandon_all()
    return seen


# --- the arithmetic: no waiting, no clock --------------------------------------------------------


@pytest.mark.parametrize(
    ("initial", "minimum", "maximum"), [(0, 1, 8), (4, 5, 8), (9, 1, 8), (1, 0, 8), (2, 2, 1)]
)
def test_refuses_bounds_that_do_not_hold(initial: int, minimum: int, maximum: int) -> None:
    with pytest.raises(ValueError, match="minimum <= initial <= maximum"):
        AdaptiveLimit(initial=initial, minimum=minimum, maximum=maximum)


def after_slow_start(limit: AdaptiveLimit) -> AdaptiveLimit:
    """``limit`` past its slow start: one throttle (cutting it), then one success (so its
    request time is known)."""
    with limit.sync_slot() as slot:
        slot.throttled()
    with limit.sync_slot():
        pass
    return limit


def test_slow_start_doubles_the_limit_each_round() -> None:
    limit = AdaptiveLimit(initial=4)
    seen = full_rounds(limit, 1 + 4 + 8)
    # The first request started alone (1 of 4 in flight: the limit was not what held the caller
    # back), so it does not count; then each success adds one: 4 make 8, 8 more make 16.
    assert seen == [4, *range(5, 17)]


def test_past_slow_start_grows_by_one_per_round_of_successes() -> None:
    limit = after_slow_start(AdaptiveLimit(initial=6))
    assert limit.limit == 4
    # The first request of the pipeline starts alone and does not count; then 4 make 5, 5 make 6.
    assert full_rounds(limit, 1 + 4 + 5) == [4] * 4 + [5] * 5 + [6]
    assert limit.in_flight == 0


def test_a_caller_below_half_the_limit_does_not_grow_it() -> None:
    limit = after_slow_start(AdaptiveLimit(initial=12))
    assert limit.limit == 8
    for _ in range(100):
        with limit.sync_slot(), limit.sync_slot(), limit.sync_slot():  # 3 at a time, below 8 / 2
            pass
    assert limit.limit == 8
    for _ in range(10):
        with limit.sync_slot(), limit.sync_slot(), limit.sync_slot(), limit.sync_slot():
            pass  # the 4th of each group starts at half the limit: it counts
    assert limit.limit == 9


def test_never_grows_past_the_maximum() -> None:
    limit = AdaptiveLimit(initial=3, maximum=4)
    assert full_rounds(limit, 50)[-1] == 4


def test_a_throttle_cuts_the_limit_once_per_round() -> None:
    limit = AdaptiveLimit(initial=16)
    pipeline = Pipeline(limit)
    pipeline.fill()
    pipeline.throttle_oldest()
    assert limit.limit == 11  # 16 * 0.7, rounded
    for _ in range(10):  # the rest of that round was sent under 16: their throttles are old news
        pipeline.throttle_oldest()
    assert limit.limit == 11
    pipeline.close_all()
    pipeline.fill()  # a new round, under 11
    pipeline.throttle_oldest()
    assert limit.limit == 8
    pipeline.close_all()
    assert limit.in_flight == 0


def test_before_any_success_only_the_first_throttle_cuts() -> None:
    """Until a request has succeeded, starts cannot be paced: the retries a pause releases go
    together, and their throttles say nothing new of the limit."""
    limit = AdaptiveLimit(initial=8)
    for _ in range(3):
        with limit.sync_slot() as slot:
            slot.throttled()
    assert limit.limit == 6
    with limit.sync_slot():
        pass
    with limit.sync_slot() as slot:
        slot.throttled()
    assert limit.limit == 4


def test_cutting_stops_at_the_minimum() -> None:
    limit = after_slow_start(AdaptiveLimit(initial=5, minimum=3))
    for expected in (3, 3, 3):
        with limit.sync_slot() as slot:
            slot.throttled()
        assert limit.limit == expected


def test_successes_of_an_older_round_do_not_count_after_a_decrease() -> None:
    limit = AdaptiveLimit(initial=8)
    pipeline = Pipeline(limit)
    pipeline.fill()
    pipeline.throttle_oldest()  # 8 -> 6, with 7 requests of the old round still in flight
    pipeline.close_all()  # 7 successes, but sent under 8: no growth from them
    assert limit.limit == 6
    # A round under 6 grows it (the pipeline's first two start below half the limit: not counted).
    assert full_rounds(limit, 2 + 6)[-2:] == [6, 7]


def test_a_throttle_resets_the_count_toward_growth() -> None:
    limit = after_slow_start(AdaptiveLimit(initial=6))
    assert full_rounds(limit, 1 + 3) == [4, 4, 4, 4]  # 3 of the 4 successes a round needs
    with limit.sync_slot() as slot:
        slot.throttled()
    assert limit.limit == 3
    # The first success of the pipeline starts alone and does not count. Counting on from 3, the
    # next would grow the limit; counting afresh, the third after it does.
    assert full_rounds(limit, 1 + 3) == [3, 3, 3, 4]


def test_an_exception_is_neither_success_nor_throttle() -> None:
    limit = AdaptiveLimit(initial=2)
    for _ in range(20):
        with pytest.raises(KeyError), limit.sync_slot(), limit.sync_slot():
            raise KeyError("the request failed for another reason")
    assert (limit.limit, limit.in_flight) == (2, 0)


def test_a_throttle_stands_when_an_exception_follows_it() -> None:
    limit = AdaptiveLimit(initial=8)

    def refused() -> None:
        with limit.sync_slot() as slot:
            slot.throttled()
            raise RuntimeError("HTTP 429")

    with pytest.raises(RuntimeError, match="429"):
        refused()
    assert (limit.limit, limit.in_flight) == (6, 0)


def test_throttled_outside_its_block_is_a_mistake() -> None:
    limit = AdaptiveLimit()
    with limit.sync_slot() as slot:
        pass
    with pytest.raises(RuntimeError, match="inside its `with` block"):
        slot.throttled()
    assert limit.limit == 8


# --- waiting: threads ------------------------------------------------------------------------------


def wait_until_queued(limit: AdaptiveLimit, count: int) -> None:
    """Until ``count`` callers wait for a slot: known, not guessed with a sleep."""
    wait_until(lambda: len(limit._waiters) >= count, f"{count} callers never queued")


class Peak:
    """The most requests seen in flight at once, from any thread."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.order: list[int] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self, number: int = 0) -> Iterator[None]:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.order.append(number)
        try:
            yield
        finally:
            with self._lock:
                self.now -= 1


def test_threads_wait_for_room_and_never_exceed_the_limit() -> None:
    limit = AdaptiveLimit(initial=3, maximum=3)
    peak = Peak()
    limit_reached = threading.Event()

    def work() -> None:
        with limit.sync_slot(), peak.running():
            if peak.now >= 3:
                limit_reached.set()
            # The first ones keep their slots until three run, however slowly the threads start.
            limit_reached.wait(10)
            time.sleep(0.02)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert peak.most == 3
    assert len(peak.order) == 12
    assert limit.in_flight == 0


def test_waiters_start_in_the_order_they_came() -> None:
    limit = AdaptiveLimit(initial=1, maximum=1)
    peak = Peak()
    started = []

    def work(number: int) -> None:
        with limit.sync_slot(), peak.running(number):
            time.sleep(0.01)

    with limit.sync_slot():  # hold the only slot while the others queue up, one by one
        for number in range(6):
            thread = threading.Thread(target=work, args=(number,))
            thread.start()
            started.append(thread)
            wait_until_queued(limit, number + 1)  # in the queue before the next comes
    for thread in started:
        thread.join(30)
    assert peak.order == list(range(6))


def test_a_retry_after_pauses_every_new_request_in_threads() -> None:
    limit = AdaptiveLimit(initial=4)
    began = time.monotonic()  # before the pause begins: a slow machine can only add to the wait
    with limit.sync_slot() as slot:
        slot.throttled(retry_after=0.3)
    with limit.sync_slot():
        waited = time.monotonic() - began
    assert 0.29 <= waited < 1.5  # 1.5: five times the pause
    with limit.sync_slot():  # the pause is over: no wait now (microseconds; a second pause: 0.3 s)
        assert time.monotonic() - began - waited < 0.15


def test_a_pause_wakes_a_thread_that_was_already_waiting() -> None:
    """A waiter asleep until woken (no pause when it came) must still start once the pause ends,
    even when nothing is released after it."""
    limit = AdaptiveLimit(initial=1)
    entered = threading.Event()
    began = time.monotonic()

    def waiter() -> None:
        with limit.sync_slot():
            entered.set()

    with limit.sync_slot() as slot:
        thread = threading.Thread(target=waiter)
        thread.start()
        wait_until_queued(limit, 1)  # it is queued, asleep until woken
        slot.throttled(retry_after=0.15)
    assert entered.wait(10), "the waiter was never woken after the pause"
    assert time.monotonic() - began >= 0.15
    thread.join(1)


def test_the_longest_retry_after_wins() -> None:
    limit = AdaptiveLimit(initial=4)
    pipeline = Pipeline(limit)
    pipeline.fill()
    began = time.monotonic()  # before the pause begins: a slow machine can only add to the wait
    pipeline.throttle_oldest(retry_after=0.2)
    pipeline.throttle_oldest(retry_after=0.05)  # shorter: does not cut the pause short
    pipeline.close_all()
    with limit.sync_slot():
        assert time.monotonic() - began >= 0.15


def test_starts_are_spread_over_the_time_a_request_takes() -> None:
    """Requests of 0.4 s under a limit of 4, past slow start: one start every 0.4 / (1.25 * 4)
    = 0.08 s at least, rather than four at once (pacing only adds to a slow machine's waits)."""
    limit = AdaptiveLimit(initial=6, maximum=4 * 6)
    with limit.sync_slot() as slot:
        slot.throttled()  # 6 -> 4, the end of slow start
    assert limit._resume_at == 0  # no request time known yet: nothing is paced
    with limit.sync_slot():
        time.sleep(0.4)
    starts = []
    for _ in range(4):
        with limit.sync_slot():
            starts.append(time.monotonic())
    # Each quick success pulls the smoothed time down by an eighth: 0.4 * (7 / 8) ** 3 at least.
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.4 * (7 / 8) ** 3 / (1.25 * 4) * 0.95, gaps


async def test_paced_coroutines_start_one_by_one_in_order() -> None:
    limit = AdaptiveLimit(initial=4, maximum=4)
    async with limit.slot():
        await asyncio.sleep(0.2)  # the request time: 0.2 s; in slow start, a start each 0.025 s
    starts: list[tuple[float, int]] = []

    async def work(number: int) -> None:
        async with limit.slot():
            starts.append((time.monotonic(), number))

    await asyncio.gather(*(work(number) for number in range(4)))
    assert [number for _, number in starts] == [0, 1, 2, 3]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(starts)]
    assert min(gaps) >= 0.2 * (7 / 8) ** 3 / (2 * 4) * 0.95, gaps


# --- waiting: event loops --------------------------------------------------------------------------


async def test_async_waiters_never_block_the_event_loop() -> None:
    limit = AdaptiveLimit(initial=2, maximum=2)
    peak = Peak()
    ticks = 0

    async def work() -> None:
        async with limit.slot():
            with peak.running():
                await asyncio.sleep(0.02)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(work() for _ in range(20)))  # 10 rounds of 2: about 0.2 s
    ticking.cancel()
    assert peak.most == 2
    assert len(peak.order) == 20
    # The loop kept running while 18 coroutines waited: a tick a round at least, however slow the
    # machine (the 5 ms tick always falls due before the 20 ms round ends); a blocked loop, none.
    assert ticks >= 10


async def test_a_retry_after_pauses_every_new_request_on_a_loop() -> None:
    limit = AdaptiveLimit(initial=4)
    began = time.monotonic()  # before the pause begins: a slow machine can only add to the wait
    async with limit.slot() as slot:
        slot.throttled(retry_after=0.15)
    async with limit.slot():
        assert time.monotonic() - began >= 0.14


async def test_a_pause_wakes_a_coroutine_that_was_already_waiting() -> None:
    limit = AdaptiveLimit(initial=1)

    async def second() -> float:
        async with limit.slot():
            return time.monotonic()

    began = time.monotonic()
    async with limit.slot() as slot:
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        slot.throttled(retry_after=0.15)
    started = await asyncio.wait_for(waiting, 10)
    assert started - began >= 0.15


@pytest.mark.parametrize("handed_a_slot", [False, True], ids=["while_queued", "as_its_slot_came"])
async def test_a_cancelled_waiter_gives_its_place_to_the_next(handed_a_slot: bool) -> None:
    limit = AdaptiveLimit(initial=1, maximum=1)
    order = []

    async def work(name: str) -> None:
        async with limit.slot():
            order.append(name)

    async with limit.slot():
        first = asyncio.create_task(work("cancelled"))
        second = asyncio.create_task(work("next"))
        await asyncio.sleep(0.02)
        first.cancel()
        if not handed_a_slot:  # the cancellation lands while it waits in the queue
            with contextlib.suppress(asyncio.CancelledError):
                await first
    # Otherwise the slot is handed to it here, before its cancellation lands: it gives it back.
    await asyncio.wait_for(second, 10)
    assert first.cancelled()
    assert order == ["next"]
    assert limit.in_flight == 0


async def test_a_request_cancelled_inside_its_slot_releases_it() -> None:
    limit = AdaptiveLimit(initial=1)

    async def hold() -> None:
        async with limit.slot():
            await asyncio.sleep(10)

    holding = asyncio.create_task(hold())
    await asyncio.sleep(0.02)
    assert limit.in_flight == 1
    holding.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await holding
    assert limit.in_flight == 0

    async def again() -> int:
        async with limit.slot():
            return limit.limit

    assert await asyncio.wait_for(again(), 10) == 1  # a cancellation is neither success nor throttle


def test_one_limit_serves_loop_after_loop() -> None:
    """``asyncio.run`` called repeatedly (as a sync wrapper does): every run starts and finishes."""
    limit = AdaptiveLimit(initial=2, maximum=2)
    peak = Peak()

    async def batch() -> None:
        async def work() -> None:
            async with limit.slot():
                with peak.running():
                    await asyncio.sleep(0.005)

        await asyncio.gather(*(work() for _ in range(6)))

    for _ in range(5):
        asyncio.run(batch())
    assert (len(peak.order), peak.most, limit.in_flight) == (30, 2, 0)


def test_loops_in_threads_and_plain_threads_share_one_limit() -> None:
    limit = AdaptiveLimit(initial=3, maximum=3)
    peak = Peak()
    errors: list[BaseException] = []

    async def batch() -> None:
        async def work() -> None:
            async with limit.slot():
                with peak.running():
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(work() for _ in range(8)))

    def loop_thread() -> None:
        try:
            asyncio.run(batch())
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    def plain_thread() -> None:
        for _ in range(4):
            with limit.sync_slot(), peak.running():
                time.sleep(0.01)

    threads = [threading.Thread(target=loop_thread) for _ in range(3)]
    threads += [threading.Thread(target=plain_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(peak.order) == 3 * 8 + 2 * 4
    assert peak.most == 3
    assert limit.in_flight == 0
