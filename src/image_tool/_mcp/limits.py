"""What each client of a shared MCP server may do at once and per minute, and the whole server:
calls running at once, and images drawn in the last minute. A call past a limit is refused at
once, with the wait it needs, rather than queued behind the others."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ImageToolError

WINDOW = 60.0
"""Seconds of the images-per-minute window (a sliding one)."""


class LimitReachedError(ImageToolError):
    """A call past a client's or the server's limits; the message tells the model what to do."""


@dataclass(frozen=True)
class Limits:
    """``None``: no limit."""

    calls_at_once: int | None = None
    images_per_minute: int | None = None


@dataclass
class _Drawn:
    """Images of one call in the window: reserved as ``n``, then what was drawn."""

    at: float
    images: int


@dataclass
class _Usage:
    running: int = 0
    window: deque[_Drawn] = field(default_factory=deque)

    def in_window(self, now: float) -> int:
        while self.window and self.window[0].at <= now - WINDOW:
            self.window.popleft()
        return sum(drawn.images for drawn in self.window)

    def wait_for(self, room: int, now: float) -> float:
        """Seconds until the window frees ``room`` images."""
        freed = 0
        for drawn in self.window:
            freed += drawn.images
            if freed >= room:
                return max(0.0, drawn.at + WINDOW - now)
        return WINDOW


class Gate:
    """Admits each call of a client within its own limits (``per_client``) and the server's."""

    def __init__(
        self, per_client: Limits, server: Limits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_client, self.server, self.clock = per_client, server, clock
        self._lock = threading.Lock()
        self._clients: dict[str, _Usage] = {}
        self._all = _Usage()

    def admit(self, client: str, n: int) -> Admitted:
        """The call's pass, its ``n`` images reserved in the window; ``LimitReachedError`` when
        a limit leaves no room."""
        with self._lock:
            now = self.clock()
            usage = self._clients.setdefault(client, _Usage())
            for scope, limits, counted in (
                ("This client", self.per_client, usage),
                ("The server", self.server, self._all),
            ):
                _check(scope, limits, counted, n, now)
            drawn = [_Drawn(now, n), _Drawn(now, n)]
            for counted, entry in zip((usage, self._all), drawn, strict=True):
                counted.running += 1
                counted.window.append(entry)
        return Admitted(self, usage, drawn)

    def report(self, client: str) -> dict[str, Any]:
        """What ``client`` has used of its limits, for the tool's result."""
        with self._lock:
            usage = self._clients.setdefault(client, _Usage())
            report: dict[str, Any] = {"client": client, "calls_running": usage.running}
            report["images_last_minute"] = usage.in_window(self.clock())
        report["calls_at_once_limit"] = self.per_client.calls_at_once
        report["images_per_minute_limit"] = self.per_client.images_per_minute
        return report

    def _leave(self, usage: _Usage) -> None:
        with self._lock:
            usage.running -= 1
            self._all.running -= 1

    def _settle(self, drawn: list[_Drawn], images: int) -> None:
        with self._lock:
            for entry in drawn:
                entry.images = images


class Admitted:
    """A call let through: ``settle`` it with the images drawn, ``leave`` when it ends."""

    def __init__(self, gate: Gate, usage: _Usage, drawn: list[_Drawn]) -> None:
        self._gate, self._usage, self._drawn = gate, usage, drawn

    def settle(self, images: int) -> None:
        self._gate._settle(self._drawn, images)

    def leave(self) -> None:
        self._gate._leave(self._usage)

    def __enter__(self) -> Admitted:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.leave()


def _check(scope: str, limits: Limits, usage: _Usage, n: int, now: float) -> None:
    if limits.calls_at_once is not None and usage.running >= limits.calls_at_once:
        raise LimitReachedError(
            f"{scope} already has {usage.running} generate_image call(s) running, its limit. Wait for "
            "one to finish before calling generate_image again."
        )
    if limits.images_per_minute is None:
        return
    drawn = usage.in_window(now)
    if n > limits.images_per_minute:
        raise LimitReachedError(
            f"{scope} may draw at most {limits.images_per_minute} image(s) a minute: ask for "
            f"n={limits.images_per_minute} or fewer."
        )
    if drawn + n > limits.images_per_minute:
        wait = math.ceil(usage.wait_for(drawn + n - limits.images_per_minute, now))
        raise LimitReachedError(
            f"{scope} has drawn {drawn} image(s) in the last minute, and may draw "
            f"{limits.images_per_minute} a minute. Wait {wait} seconds before calling generate_image again."
        )
