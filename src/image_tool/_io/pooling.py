"""The connections an ImageClient holds: one pooled httpx2 client for sync calls, and for async calls
a few AsyncClients per event loop, closed with their loop.

    pools = AsyncPools(max_concurrency=512, injected=None)     # SyncPool: the same, sync
    pool = await pools.current()
    async with pool.slots:
        with pool.http() as http:
            response = await pool.send(http, request, within=30.0)

One AsyncClient's pool scans all its connections for each request, so its cost per call grows with
the calls in flight: async calls are spread over clients side by side (shards) of at most
``CALLS_PER_SHARD`` calls each. The clients are built on first use (``network.py`` and the guarded
download transport, which imports httpcore2, are loaded then).
"""

from __future__ import annotations

import asyncio
import functools
import queue
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx2

MAX_DOWNLOADS = 8
"""Downloads one client runs at once (per event loop); more wait for a free slot."""

CALLS_PER_SHARD = 32
"""Async calls one httpx2 AsyncClient carries at once; more go to another client beside it."""


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context for every client: building one loads the CA bundle."""
    return httpx2.create_ssl_context()


class SyncPool:
    """The sync side, one pool for every thread: the client that posts generations (or the injected
    one), the client that downloads images, and the caps on requests and downloads at once."""

    def __init__(self, *, max_concurrency: int, injected: httpx2.Client | None) -> None:
        self.slots = threading.BoundedSemaphore(max_concurrency)
        self.download_slots = threading.BoundedSemaphore(MAX_DOWNLOADS)
        self._injected = injected
        self._http: httpx2.Client | None = None
        self._downloads: httpx2.Client | None = None
        self._lock = threading.Lock()

    def current(self) -> SyncPool:
        """The pool of this thread: the one pool."""
        return self

    @staticmethod
    def send(http: httpx2.Client, request: httpx2.Request, *, within: float | None) -> httpx2.Response:
        """``http.send(request, stream=True)``, given up after ``within`` seconds (``ReadTimeout``);
        a response that comes later is closed.

        A blocking read ends only when nothing arrives for its timeout, so a relay sending its
        headers a byte at a time would hold the caller past the call's deadline: a sender thread
        reads them while the caller waits the time left.
        """
        if within is None:
            return http.send(request, stream=True)
        sending = _SENDERS.submit(lambda: http.send(request, stream=True))
        try:
            return sending.result(timeout=within)
        except BaseException as error:
            sending.add_done_callback(_close_answer)
            if isinstance(error, TimeoutError):
                raise httpx2.ReadTimeout("the call's total timeout ran out", request=request) from None
            raise

    @contextmanager
    def http(self) -> Iterator[httpx2.Client]:
        """The client generations are posted with: the injected one, else one pooled client."""
        if self._injected is not None:
            yield self._injected
            return
        with self._lock:
            if self._http is None:
                from .network import relay_client

                self._http = relay_client(shared_ssl_context())
                # A pool dropped without close() still closes its connections.
                weakref.finalize(self, self._http.close)
        yield self._http

    def downloads(self, *, public_only: bool) -> httpx2.Client:
        """Where images are downloaded from: public addresses only, unless allowed."""
        with self._lock:
            if self._downloads is None:
                from .._sync.guarded import guarded_client

                self._downloads = guarded_client(shared_ssl_context(), public_only=public_only)
                weakref.finalize(self, self._downloads.close)
            return self._downloads

    def close(self) -> None:
        """Close the pooled connections (an injected client stays open)."""
        with self._lock:
            clients = [self._http, self._downloads]
            self._http = self._downloads = None
        for client in clients:
            if client is not None:
                client.close()


class _Senders:
    """Daemon threads that send sync requests (Ctrl-C never waits for a daemon), kept between
    calls: starting a thread costs more than handing it a request. One leaves after a minute idle."""

    IDLE = 60.0

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], httpx2.Response], Future[httpx2.Response]]]
        self.jobs = queue.SimpleQueue()
        self.idle = 0
        """Threads waiting for a job that no submitted job has counted on yet."""
        self.threads = 0
        self.lock = threading.Lock()

    def submit(self, job: Callable[[], httpx2.Response]) -> Future[httpx2.Response]:
        sending: Future[httpx2.Response] = Future()
        with self.lock:
            if self.idle:
                self.idle -= 1
            else:
                self.threads += 1
                threading.Thread(target=self.work, name="image-tool-send", daemon=True).start()
        self.jobs.put((job, sending))
        return sending

    def work(self) -> None:
        while True:
            try:
                job, sending = self.jobs.get(timeout=self.IDLE)
            except queue.Empty:
                with self.lock:
                    if self.idle:  # no job counts on this thread: it may go
                        self.idle -= 1
                        self.threads -= 1
                        return
                continue
            try:
                sending.set_result(job())
            except BaseException as error:
                sending.set_exception(error)
            del job, sending  # an idle thread holds no client or response
            with self.lock:
                self.idle += 1


_SENDERS = _Senders()


def _close_answer(sending: Future[httpx2.Response]) -> None:
    if not sending.cancelled() and sending.exception() is None:
        sending.result().close()


@dataclass
class AsyncPool:
    """What one event loop needs: its AsyncClients, caps, and the closer that ends with it."""

    slots: asyncio.Semaphore
    closer: AsyncGenerator[None, None]
    verify: ssl.SSLContext
    injected: httpx2.AsyncClient | None
    """The user's own client, used for every request instead."""
    owned: list[httpx2.AsyncClient]
    """The clients this pool made, closed with the loop."""
    download_slots: asyncio.Semaphore
    shards: list[httpx2.AsyncClient] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    """Calls in flight on each of ``shards``."""
    download_http: httpx2.AsyncClient | None = None

    @contextmanager
    def http(self) -> Iterator[httpx2.AsyncClient]:
        """The client one generation is posted with: the injected one, else the first shard with
        room (one shard while calls are few, so they share its connections)."""
        if self.injected is not None:
            yield self.injected
            return
        index = next(
            (i for i, calls in enumerate(self.in_flight) if calls < CALLS_PER_SHARD), len(self.shards)
        )
        if index == len(self.shards):
            from .network import relay_async_client

            self.shards.append(relay_async_client(self.verify))
            self.owned.append(self.shards[-1])
            self.in_flight.append(0)
        self.in_flight[index] += 1
        try:
            yield self.shards[index]
        finally:
            self.in_flight[index] -= 1

    @staticmethod
    async def send(
        http: httpx2.AsyncClient, request: httpx2.Request, *, within: float | None
    ) -> httpx2.Response:
        """``http.send(request, stream=True)``, given up after ``within`` seconds (a relay dripping
        its headers never ends a read timeout). ``send``, not ``stream()``: no async generator held
        by each call in flight."""
        async with asyncio.timeout(within):
            return await http.send(request, stream=True)

    def downloads(self, *, public_only: bool) -> httpx2.AsyncClient:
        """Where images are downloaded from: public addresses only, unless allowed."""
        if self.download_http is None:
            from .._async.guarded import guarded_client

            self.download_http = guarded_client(self.verify, public_only=public_only)
            self.owned.append(self.download_http)
        return self.download_http


class AsyncPools:
    """One ``AsyncPool`` per event loop: an AsyncClient's connections belong to the loop that opened
    them, and a client cached across loops breaks ("Event loop is closed")."""

    def __init__(self, *, max_concurrency: int, injected: httpx2.AsyncClient | None) -> None:
        self._max_concurrency = max_concurrency
        self._injected = injected
        self._pools: dict[asyncio.AbstractEventLoop, AsyncPool] = {}

    async def current(self) -> AsyncPool:
        """The running loop's pool, made on first use."""
        loop = asyncio.get_running_loop()
        if (pool := self._pools.get(loop)) is not None:
            return pool
        # Loading the CA bundle blocks (docs/performance.md, choices in the code): off the loop, once.
        verify = await asyncio.to_thread(shared_ssl_context)
        if (pool := self._pools.get(loop)) is not None:  # another task made it meanwhile
            return pool
        owned: list[httpx2.AsyncClient] = []  # made on first lease; an injected client is not ours
        for dead in [other for other in self._pools if other.is_closed()]:
            del self._pools[dead]
        closer = _closed_with_loop(owned)
        pool = AsyncPool(
            slots=asyncio.Semaphore(self._max_concurrency),
            closer=closer,
            verify=verify,
            injected=self._injected,
            owned=owned,
            download_slots=asyncio.Semaphore(MAX_DOWNLOADS),
        )
        self._pools[loop] = pool
        await closer.__anext__()  # started, so the loop finalises it at shutdown
        return pool

    async def aclose(self) -> None:
        """Close the running loop's pool (an injected client stays open)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.closer.aclose()


async def _closed_with_loop(clients: list[httpx2.AsyncClient]) -> AsyncGenerator[None, None]:
    """Closes ``clients`` (ours, including those added later; an injected client is not listed)
    when their event loop shuts down.

    ``asyncio.run`` (and ``asyncio.Runner``) finalise every async generator still open before
    closing the loop, so a pool left open by its user is closed cleanly, on its own loop.
    """
    try:
        yield
    finally:
        for client in clients:
            await client.aclose()
