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

- Additive increase: after ``limit`` successes in a row (a round), the limit grows by one.
- Multiplicative decrease: a throttle (a 429, a saturated relay) halves it, not below ``minimum``;
  once per round: requests that started before a decrease were sent under the old limit, and
  their throttles do not halve it again (nor do their successes count toward growth).
- A pause: a throttle with a ``Retry-After`` holds every new request back until it has passed.
- Growth only when the limit is what holds the caller back: a success counts toward it when at
  least half the limit was in flight as its request started (RFC 7661's rule for TCP's window),
  so a caller that runs four requests at a time does not grow the limit to 512 and then burst.

One state under a ``threading.Lock``, shared by async callers on any number of event loops (one
after another with ``asyncio.run``, or at once in several threads) and by threads
(``with limit.slot()``). Waiters queue in arrival order; a slot that frees is handed to the first waiter
under the lock, and an async waiter is woken on its own loop with ``loop.call_soon_threadsafe``
on a future: the loop never blocks (the lock is held only to update a few numbers, never across
an ``await``) and no waiter polls. During a pause, waiters sleep until it ends (a timed wait),
then start in order; those asleep when it begins are woken once, to learn of it.
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


class Slot:
    """One request's place under an ``AdaptiveLimit``: call ``throttled`` if the relay refused it
    for load; leaving the block otherwise counts as a success (or, on an exception, as nothing)."""

    __slots__ = ("_counts", "_epoch", "_limit", "_open", "_throttled")

    def __init__(self, limit: AdaptiveLimit, epoch: int, counts: bool) -> None:
        self._limit = limit
        self._epoch = epoch
        self._counts = counts
        self._open = True
        self._throttled = False

    def throttled(self, retry_after: float | None = None) -> None:
        """The relay answered 429 or said it is saturated: halve the limit (once per round) and,
        with ``retry_after`` seconds, start no request until they have passed."""
        if not self._open:
            raise RuntimeError("Slot.throttled() must be called inside its `with` block")
        self._limit._throttle(self, retry_after)


class _Waiter:
    """A caller waiting for a slot. Under the lock: ``slot`` is set when one is handed to it;
    ``timed`` says whether it sleeps until a pause ends (else until it is woken)."""

    __slots__ = ("slot", "timed")

    def __init__(self) -> None:
        self.slot: Slot | None = None
        self.timed = False

    def wake(self) -> None:
        """Make it look again (a slot was handed to it, or a pause began): any thread."""
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
    """A concurrency limit that adapts to a relay's throttling: additive increase, multiplicative
    decrease, and pauses for ``Retry-After`` (see the module's docstring).

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
        self._resume_at = 0.0
        """``time.monotonic()`` before which no request starts (a Retry-After pause)."""
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
                found = self._pause_left()
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
        """Under the lock: hand slots to the first waiters while there is room and no pause; the
        waiters to wake (after the lock is released)."""
        woken: list[_Waiter] = []
        if self._pause_left() is not None:
            return woken
        while self._waiters and self._in_flight < self._limit:
            waiter = self._waiters.popleft()
            self._in_flight += 1
            waiter.slot = Slot(self, self._epoch, counts=2 * self._in_flight >= self._limit)
            woken.append(waiter)
        return woken

    def _pause_left(self) -> float | None:
        left = self._resume_at - time.monotonic()
        return left if left > 0 else None

    def _throttle(self, slot: Slot, retry_after: float | None) -> None:
        with self._lock:
            if not slot._throttled and slot._epoch == self._epoch:
                self._limit = max(self.minimum, self._limit // 2)
                self._epoch += 1
                self._successes = 0
            slot._throttled = True
            woken: list[_Waiter] = []
            if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
                self._resume_at = max(self._resume_at, time.monotonic() + retry_after)
                # Waiters asleep until woken must learn of the pause, to sleep until it ends.
                woken = [waiter for waiter in self._waiters if not waiter.timed]
                for waiter in woken:
                    waiter.timed = True
        _wake(woken)

    def _release(self, slot: Slot, *, succeeded: bool) -> None:
        with self._lock:
            slot._open = False
            self._in_flight -= 1
            if succeeded and not slot._throttled and slot._counts and slot._epoch == self._epoch:
                self._successes += 1
                if self._successes >= self._limit:
                    self._limit = min(self.maximum, self._limit + 1)
                    self._successes = 0
            woken = self._dispatch()
        _wake(woken)


def _wake(waiters: list[_Waiter]) -> None:
    for waiter in waiters:
        waiter.wake()
