"""The connection pool under the async client's transport: each request leases an HTTP/1.1
connection of its own, the last one returned, and gives it back when its answer is closed.

httpcore's ``AsyncConnectionPool`` looks at every connection and every waiting request on each
request and each answer: with hundreds of calls in flight through one client, the scanning took
more CPU than the HTTP (1,000 concurrent calls: 20 s through one client). Here a lease is a
``pop`` from the connections that are free, a return an ``append``: nothing scans.

The number of requests at once is capped above, by the client's ``max_concurrency``.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import typing
from collections.abc import AsyncIterator

import httpcore

Key = tuple[bytes, bytes, int | None]


class ConnectionLeases:
    """What httpx's ``AsyncHTTPTransport`` needs of its httpcore pool, with a connection per request."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        network_backend: httpcore.AsyncNetworkBackend,
        keepalive_expiry: float | None,
    ) -> None:
        self._ssl_context = ssl_context
        self._network_backend = network_backend
        self._keepalive_expiry = keepalive_expiry
        self._free: dict[Key, collections.deque[_HTTP11Connection]] = {}
        self._leased: set[_HTTP11Connection] = set()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        scheme = request.url.scheme
        if scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme!r}'.")
        while True:
            connection = await self._lease(request)
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                await self._discard(connection)  # closed under it, as it was leased: another one
                continue
            except BaseException:
                await self._discard(connection)
                raise
            stream = typing.cast(typing.AsyncIterable[bytes], response.stream)
            return httpcore.Response(
                status=response.status,
                headers=response.headers,
                content=_Lease(stream, self, connection, _key(request.url.origin)),
                extensions=response.extensions,
            )

    async def aclose(self) -> None:
        connections = [*self._leased, *(c for free in self._free.values() for c in free)]
        self._leased.clear()
        self._free.clear()
        for connection in connections:
            await connection.aclose()

    async def __aenter__(self) -> ConnectionLeases:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _lease(self, request: httpcore.Request) -> _HTTP11Connection:
        """The last connection returned to the request's origin that is still good, else a new one."""
        free = self._free.get(_key(request.url.origin))
        while free:
            connection = free.pop()
            if connection.is_available() and not connection.has_expired():
                self._leased.add(connection)
                return connection
            await connection.aclose()
        connection = await self._connect(request)
        self._leased.add(connection)
        return connection

    async def _connect(self, request: httpcore.Request) -> _HTTP11Connection:
        """A new connection to the request's origin, TLS for https."""
        origin = request.url.origin
        timeout = request.extensions.get("timeout", {}).get("connect")
        host = origin.host.decode("ascii")
        stream = await self._network_backend.connect_tcp(host, origin.port, timeout=timeout)
        if origin.scheme == b"https":
            server_name = request.extensions.get("sni_hostname") or host
            try:
                stream = await stream.start_tls(
                    self._ssl_context, server_hostname=server_name, timeout=timeout
                )
            except BaseException:
                await stream.aclose()
                raise
        return _HTTP11Connection(origin=origin, stream=stream, keepalive_expiry=self._keepalive_expiry)

    async def _give_back(self, connection: _HTTP11Connection, key: Key) -> None:
        """Keep a connection whose answer was read to its end; close any other. Connections left
        free past their keep-alive are closed from the oldest."""
        self._leased.discard(connection)
        if not connection.is_idle() or connection.has_expired():
            await connection.aclose()
            return
        free = self._free.setdefault(key, collections.deque())
        free.append(connection)
        while free and free[0].has_expired():
            await free.popleft().aclose()

    async def _discard(self, connection: _HTTP11Connection) -> None:
        self._leased.discard(connection)
        await connection.aclose()


class _HTTP11Connection(httpcore.AsyncHTTP11Connection):
    """httpcore's HTTP/1.1 connection, its state guarded by an asyncio lock.

    httpcore's own lock (anyio's) hands the event loop to every other task on each request, even
    uncontended: a thousand calls started together then all queued their requests before the
    first one was sent, and the relay got them in one burst (1,000 concurrent calls: 1.7 s against
    1.45 s). asyncio's lock takes a free lock at once. One request at a time holds a leased
    connection, so the lock is never contended here.
    """

    def __init__(
        self, origin: httpcore.Origin, stream: httpcore.AsyncNetworkStream, keepalive_expiry: float | None
    ) -> None:
        super().__init__(origin=origin, stream=stream, keepalive_expiry=keepalive_expiry)
        self._state_lock = asyncio.Lock()  # type: ignore[assignment]


class _Lease:
    """An answer's body; its connection goes back to the pool when the body is closed."""

    def __init__(
        self,
        stream: typing.AsyncIterable[bytes],
        leases: ConnectionLeases,
        connection: _HTTP11Connection,
        key: Key,
    ) -> None:
        self._stream = stream
        self._leases = leases
        self._connection: _HTTP11Connection | None = connection
        self._key = key

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        except BaseException:
            await self._leases._discard(connection)
            raise
        await self._leases._give_back(connection, self._key)


def _key(origin: httpcore.Origin) -> Key:
    return origin.scheme, origin.host, origin.port
