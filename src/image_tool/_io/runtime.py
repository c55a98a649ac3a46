"""The waiting that sync and async code do differently, behind one set of names.

The core of a call is written once, async, in ``_async/``, against ``AsyncRuntime``;
``scripts/make_sync.py`` makes the sync core of ``_sync/`` from it, where the same calls read
``SyncRuntime`` and lose their ``await``. Everything that differs between the two lives here.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

AsyncAttempt = Callable[[], Awaitable[T]]
"""Something to try (again): async."""
SyncAttempt = Callable[[], T]
"""Something to try (again): sync."""

_cancelled: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "image_tool_cancelled", default=None
)


class AsyncRuntime:
    """Waiting on the event loop: nothing here blocks it."""

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    @staticmethod
    async def off_loop(function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on a worker thread (for CPU or disk work that would stall the loop)."""
        return await asyncio.to_thread(function, *args)

    @staticmethod
    async def each(jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Every job at once; a cancelled call cancels them all."""
        return list(await asyncio.gather(*(job() for job in jobs)))

    @staticmethod
    async def checkpoint() -> None:
        """Where a long loop may be stopped: cancellation reaches a task as ``CancelledError`` at its
        next ``await``, so there is nothing to check."""

    @staticmethod
    async def call(callback: Callable[..., object], *args: Any) -> None:
        """``callback(*args)``; awaited when the callback is a coroutine function."""
        outcome = callback(*args)
        if inspect.isawaitable(outcome):
            await outcome

    @staticmethod
    async def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(infos)


class SyncRuntime:
    """Waiting in threads: the same names, blocking the calling thread."""

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    @staticmethod
    def off_loop(function: Callable[..., T], *args: Any) -> T:
        return function(*args)

    @staticmethod
    def each(jobs: Sequence[Callable[[], T]]) -> list[T]:
        """Every job at once, on threads that see this thread's context (the call's deadline). An
        interrupt (Ctrl-C) stops each job at its next ``checkpoint`` before it is raised."""
        if len(jobs) == 1:
            return [jobs[0]()]
        cancelled = threading.Event()

        def run(job: Callable[[], T]) -> T:
            _cancelled.set(cancelled)
            return job()

        workers = ThreadPoolExecutor(max_workers=len(jobs))
        try:
            futures = [workers.submit(contextvars.copy_context().run, run, job) for job in jobs]
            return [future.result() for future in futures]
        except BaseException:
            cancelled.set()
            raise
        finally:
            workers.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def checkpoint() -> None:
        """Raises ``CancelledError`` once the call that started this job was interrupted."""
        cancelled = _cancelled.get()
        if cancelled is not None and cancelled.is_set():
            raise CancelledError

    @staticmethod
    def call(callback: Callable[..., object], *args: Any) -> None:
        callback(*args)

    @staticmethod
    def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        return list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
