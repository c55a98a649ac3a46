"""AdaptiveLimit: finds how many requests at once a rate-limited relay takes, as TCP finds a window.

```python
limit = AdaptiveLimit(initial=8)

async def generate(prompt: str) -> ImageGenerationResult:
    while True:
        async with limit.slot() as slot:
            try:
                return await client.agenerate(prompt)
            except RateLimitError as error:
                slot.throttled(retry_after=error.retry_after)
```

- Slow start (RFC 5681): until the first throttle, each success adds one, so the limit doubles
  each round (``limit`` successes); after it, additive increase: one per round.
- Multiplicative decrease: a throttle (a 429, a saturated relay) cuts it to ``DECREASE`` (0.7,
  CUBIC's factor, RFC 9438) of itself, not below ``minimum``; once per round: requests that
  started before a decrease were sent under the old limit, and their throttles do not cut it
  again (nor do their successes count toward growth). Until a request has succeeded, only the
  first throttle cuts: with no request time to pace by, the retries a pause releases go out
  together, and their throttles say nothing new of the limit.
- Pacing (RFC 9002, 7.7): starts are spread over the time a request takes, ``PACING_GAIN``
  times the limit per smoothed request time (RFC 6298's average of successes), so a relay that
  counts requests a second sees a steady rate, not the bursts of requests that ended together.
- A pause: a throttle with a ``Retry-After`` holds every new request back until it has passed.
- Growth only when the limit is what holds the caller back: a success counts toward it when at
  least half the limit was in flight as its request started (RFC 7661's rule for TCP's window),
  so a caller that runs four requests at a time does not grow the limit to 512 and then burst.

One state under a ``threading.Lock``, shared by async callers on any number of event loops (one
after another with ``asyncio.run``, or at once in several threads) and by threads
(``with limit.slot()``). Waiters queue in arrival order; a slot that frees is handed to the first waiter
under the lock, and an async waiter is woken on its own loop with ``loop.call_soon_threadsafe``
on a future: the loop never blocks (the lock is held only to update a few numbers, never across
an ``await``) and no waiter polls. While a pause or the pace holds starts back, the first waiter
alone sleeps until the next start (a timed wait); the others sleep until they are woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Iterator

__all__ = ["AdaptiveLimit", "Slot", "SlotRequest"]

DECREASE = 0.7
"""What a throttle leaves of the limit."""
PACING_GAIN = 1.25
"""Starts a request time allows, per slot of the limit: above 1, so pacing never holds the limit
below itself; in slow start, ``SLOW_START_PACING_GAIN``, so the limit can double each round
(Linux's ``tcp_pacing_ca_ratio`` and ``tcp_pacing_ss_ratio``)."""
SLOW_START_PACING_GAIN = 2.0


class Slot:
    """One request's place under an ``AdaptiveLimit``: call ``throttled`` if the relay refused it
    for load; leaving the block otherwise counts as a success (or, on an exception, as nothing)."""

    __slots__ = ("_counts", "_epoch", "_limit", "_open", "_started", "_throttled")

    def __init__(self, limit: AdaptiveLimit, epoch: int, counts: bool, started: float) -> None:
        self._limit = limit
        self._epoch = epoch
        self._counts = counts
        self._started = started
        self._open = True
        self._throttled = False

    def throttled(self, retry_after: float | None = None) -> None:
        """The relay answered 429 or said it is saturated: cut the limit (once per round) and,
        with ``retry_after`` seconds, start no request until they have passed."""
        if not self._open:
            raise RuntimeError("Slot.throttled() must be called inside its `with` block")
        self._limit._throttle(self, retry_after)


class _Waiter:
    """A caller waiting for a slot. Under the lock: ``slot`` is set when one is handed to it;
    ``timed`` says whether it sleeps until the next start (else until it is woken)."""

    __slots__ = ("slot", "timed")

    def __init__(self) -> None:
        self.slot: Slot | None = None
        self.timed = False

    def wake(self) -> None:
        """Make it look again (a slot was handed to it, or it is first in line): any thread."""
        raise NotImplementedError

    def rearm(self) -> None:
        """Under the lock, before it sleeps again: forget earlier wakes."""
        raise NotImplementedError


class _ThreadWaiter(_Waiter):
    __slots__ = ("event",)

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def wait(self, seconds: float | None) -> None:
        self.event.wait(seconds)

    def wake(self) -> None:
        self.event.set()

    def rearm(self) -> None:
        self.event.clear()


class _LoopWaiter(_Waiter):
    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    async def wait(self, seconds: float | None) -> None:
        await asyncio.wait((self.future,), timeout=seconds)

    def wake(self) -> None:
        # A closed loop means the waiter was cancelled; it gave its place (or slot) back then.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_resolve, self.future)

    def rearm(self) -> None:
        if self.future.done():
            self.future = self.loop.create_future()


class SlotRequest:
    """What ``AdaptiveLimit.slot()`` returns: entered with ``async with`` or ``with``, it waits
    for a slot and holds it for the block; leaving the block counts as a success unless an
    exception left it."""

    __slots__ = ("_limit", "_slot")

    def __init__(self, limit: AdaptiveLimit) -> None:
        self._limit = limit

    async def __aenter__(self) -> Slot:
        waiter = _LoopWaiter(asyncio.get_running_loop())
        with self._limit._queued(waiter):
            while not isinstance(found := self._limit._look(waiter), Slot):
                await waiter.wait(found)
        self._slot = found
        return found

    def __enter__(self) -> Slot:
        waiter = _ThreadWaiter()
        with self._limit._queued(waiter):
            while not isinstance(found := self._limit._look(waiter), Slot):
                waiter.wait(found)
        self._slot = found
        return found

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._limit._release(self._slot, succeeded=kind is None)

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._limit._release(self._slot, succeeded=kind is None)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AdaptiveLimit:
    """A concurrency limit that adapts to a relay's throttling: slow start, additive increase,
    multiplicative decrease, paced starts, and pauses for ``Retry-After`` (see the module's
    docstring).

    ```python
    limit = AdaptiveLimit(initial=8, minimum=1, maximum=512)
    async with limit.slot() as slot:      # waits for room, and for a pause to end
        ...                               # one request
        slot.throttled(retry_after=2.0)   # on a 429 / saturation
    with limit.slot() as slot: ...        # the same, in threads
    limit.limit, limit.in_flight
    ```
    """

    def __init__(self, initial: int = 8, minimum: int = 1, maximum: int = 512) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(
                f"expected 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}"
            )
        self.minimum = minimum
        self.maximum = maximum
        self._lock = threading.Lock()
        self._limit = initial
        self._in_flight = 0
        self._successes = 0
        self._epoch = 0
        """Counts decreases: a slot remembers the epoch it started in."""
        self._slow_start = True
        """No throttle yet: each success grows the limit."""
        self._request_time: float | None = None
        """The smoothed time a successful request held its slot, in seconds."""
        self._resume_at = 0.0
        """``time.monotonic()`` before which no request starts (a Retry-After pause, the pace)."""
        self._waiters: deque[_Waiter] = deque()

    @property
    def limit(self) -> int:
        """How many requests may be in flight at once, now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """How many requests hold a slot, now."""
        return self._in_flight

    def slot(self) -> SlotRequest:
        """Wait for room and for any pause to end, then hold a slot for one request:
        ``async with limit.slot()`` waits without blocking the event loop, ``with limit.slot()``
        blocks the calling thread."""
        return SlotRequest(self)

    sync_slot = slot
    """``slot()``'s earlier name for threads."""

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self._limit}, in_flight={self._in_flight})"

    @contextlib.contextmanager
    def _queued(self, waiter: _Waiter) -> Iterator[None]:
        """``waiter`` in the queue while it waits; a waiter that gives up (cancelled, interrupted)
        hands its place, or the slot it was handed, on."""
        with self._lock:
            self._waiters.append(waiter)
        try:
            yield
        except BaseException:
            self._abandon(waiter)
            raise

    def _look(self, waiter: _Waiter) -> Slot | float | None:
        """Hand out the slots that can start, to ``waiter`` among others: its slot, else how long
        it may sleep: until the pause ends, or (None) until it is woken."""
        with self._lock:
            woken = self._dispatch()
            found: Slot | float | None = waiter.slot
            if found is None:
                waiter.rearm()
                # First in line with room: only the clock holds it back (0: it just let go).
                found = (
                    max(0.0, self._resume_at - time.monotonic()) if self._first_with_room(waiter) else None
                )
                waiter.timed = found is not None
        _wake(woken)
        return found

    def _abandon(self, waiter: _Waiter) -> None:
        """The waiter gave up (cancelled, interrupted): its place, or the slot it was handed, goes on."""
        with self._lock:
            if waiter.slot is None:
                self._waiters.remove(waiter)
                woken = self._dispatch()
            else:
                waiter.slot._open = False
                self._in_flight -= 1
                woken = self._dispatch()
        _wake(woken)

    def _dispatch(self) -> list[_Waiter]:
        """Under the lock: hand slots to the first waiters while there is room and no pause,
        spacing the starts by the pace; the waiters to wake (after the lock is released): those
        handed a slot, and the first one left when the clock is what holds it back."""
        woken: list[_Waiter] = []
        while self._waiters and self._in_flight < self._limit and self._pause_left() is None:
            waiter = self._waiters.popleft()
            self._in_flight += 1
            now = time.monotonic()
            counts = 2 * self._in_flight >= self._limit
            waiter.slot = Slot(self, self._epoch, counts, started=now)
            woken.append(waiter)
            if self._request_time is not None:
                gain = SLOW_START_PACING_GAIN if self._slow_start else PACING_GAIN
                self._resume_at = now + self._request_time / (gain * self._limit)
        if self._waiters and self._first_with_room(first := self._waiters[0]) and not first.timed:
            first.timed = True  # it sleeps until the next start
            woken.append(first)
        return woken

    def _first_with_room(self, waiter: _Waiter) -> bool:
        """Under the lock: ``waiter`` is first in line and a slot is free."""
        return self._waiters[0] is waiter and self._in_flight < self._limit

    def _pause_left(self) -> float | None:
        left = self._resume_at - time.monotonic()
        return left if left > 0 else None

    def _throttle(self, slot: Slot, retry_after: float | None) -> None:
        with self._lock:
            if (
                not slot._throttled
                and slot._epoch == self._epoch
                and (self._slow_start or self._request_time is not None)
            ):
                self._limit = max(self.minimum, round(self._limit * DECREASE))
                self._epoch += 1
                self._successes = 0
                self._slow_start = False
            slot._throttled = True
            if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
                self._resume_at = max(self._resume_at, time.monotonic() + retry_after)
            woken = self._dispatch()  # the first waiter learns of the pause
        _wake(woken)

    def _release(self, slot: Slot, *, succeeded: bool) -> None:
        with self._lock:
            slot._open = False
            self._in_flight -= 1
            if succeeded and not slot._throttled:
                held = time.monotonic() - slot._started
                smoothed = self._request_time
                self._request_time = held if smoothed is None else smoothed + (held - smoothed) / 8
                if slot._counts and slot._epoch == self._epoch:
                    self._grow()
            woken = self._dispatch()
        _wake(woken)

    def _grow(self) -> None:
        """Under the lock: one more success toward growth (each one, in slow start)."""
        self._successes += 1
        if self._slow_start or self._successes >= self._limit:
            self._limit = min(self.maximum, self._limit + 1)
            self._successes = 0


def _wake(waiters: list[_Waiter]) -> None:
    for waiter in waiters:
        waiter.wake()
