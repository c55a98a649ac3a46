"""The connections an ImageClient holds: one pooled httpx client for sync calls, and for async calls
one AsyncClient per event loop, closed with its loop.

    pools = SyncPool(max_concurrency=512, injected=None)
    with pools.slots:
        pools.http().post(...)

    loops = LoopPools(max_concurrency=512, injected=None)
    pool = await loops.current()
    async with pool.slots:
        await pool.http().post(...)

The httpx clients are built on first use, with ``network.py``'s bounded sockets (which import
httpcore, as httpx itself does only when it builds a transport).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

MAX_DOWNLOADS = 8
"""Downloads one client runs at once (per event loop); more wait for a free slot."""


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context for every client: building one loads the CA bundle."""
    return httpx.create_ssl_context()


def _sync_client(public_only: bool = False) -> httpx.Client:
    from .network import bounded_client

    return bounded_client(shared_ssl_context(), public_only=public_only)


def _async_client(verify: ssl.SSLContext, public_only: bool = False) -> httpx.AsyncClient:
    from .network import bounded_async_client

    return bounded_async_client(verify, public_only=public_only)


def _leasing_async_client(verify: ssl.SSLContext) -> httpx.AsyncClient:
    from .network import leasing_async_client

    return leasing_async_client(verify)


class SyncPool:
    """The sync side: the client that posts generations (or the injected one), the client that
    downloads images, and the caps on requests and downloads at once."""

    def __init__(self, *, max_concurrency: int, injected: httpx.Client | None) -> None:
        self.slots = threading.BoundedSemaphore(max_concurrency)
        self.download_slots = threading.BoundedSemaphore(MAX_DOWNLOADS)
        self._injected = injected
        self._http: httpx.Client | None = None
        self._downloads: httpx.Client | None = None
        self._lock = threading.Lock()

    def http(self) -> httpx.Client:
        """The client generations are posted with: the injected one, else one pooled client."""
        if self._injected is not None:
            return self._injected
        with self._lock:
            if self._http is None:
                self._http = _sync_client()
                # A pool dropped without close() still closes its connections.
                weakref.finalize(self, self._http.close)
            return self._http

    def downloads(self, *, public_only: bool) -> httpx.Client:
        """Where images are downloaded from: public addresses only, unless allowed."""
        with self._lock:
            if self._downloads is None:
                self._downloads = _sync_client(public_only=public_only)
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


@dataclass
class LoopPool:
    """What one event loop needs: its AsyncClients, caps, and the closer that ends with it."""

    slots: asyncio.Semaphore
    closer: AsyncGenerator[None, None]
    verify: ssl.SSLContext
    injected: httpx.AsyncClient | None
    """The user's own client, used for every request instead."""
    owned: list[httpx.AsyncClient]
    """The clients this pool made, closed with the loop."""
    download_slots: asyncio.Semaphore
    generations: httpx.AsyncClient | None = None
    downloads: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        """The client generations are posted with: the injected one, else one whose requests each
        lease a connection of their own (``leases.py``)."""
        if self.injected is not None:
            return self.injected
        if self.generations is None:
            self.generations = _leasing_async_client(self.verify)
            self.owned.append(self.generations)
        return self.generations

    def download_client(self, *, public_only: bool) -> httpx.AsyncClient:
        if self.downloads is None:
            self.downloads = _async_client(self.verify, public_only=public_only)
            self.owned.append(self.downloads)
        return self.downloads


class LoopPools:
    """One ``LoopPool`` per event loop: an AsyncClient's connections belong to the loop that opened
    them, and a client cached across loops breaks ("Event loop is closed")."""

    def __init__(self, *, max_concurrency: int, injected: httpx.AsyncClient | None) -> None:
        self._max_concurrency = max_concurrency
        self._injected = injected
        self._pools: dict[asyncio.AbstractEventLoop, LoopPool] = {}

    async def current(self) -> LoopPool:
        """The running loop's pool, made on first use."""
        loop = asyncio.get_running_loop()
        if (pool := self._pools.get(loop)) is not None:
            return pool
        # Loading the CA bundle blocks for tens of milliseconds: do it off the loop (once).
        verify = await asyncio.to_thread(shared_ssl_context)
        if (pool := self._pools.get(loop)) is not None:  # another task made it meanwhile
            return pool
        owned: list[httpx.AsyncClient] = []  # made on first lease; an injected client is not ours
        for dead in [other for other in self._pools if other.is_closed()]:
            del self._pools[dead]
        closer = _closed_with_loop(owned)
        pool = LoopPool(
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

    async def aclose_current(self) -> None:
        """Close the running loop's pool (an injected client stays open)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.closer.aclose()


async def _closed_with_loop(clients: list[httpx.AsyncClient]) -> AsyncGenerator[None, None]:
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
