"""httpcore's async network streams on asyncio's own transports.

httpcore's default async backend goes through anyio, which wraps every read and write in cancel
scopes and checkpoints: with a thousand calls in flight on one event loop, a tenth of the CPU.
Here a connection is an ``asyncio.Protocol`` with a buffer: a read returns what has arrived, or
waits for more, at most its timeout (a timer, not a task).

    stream = await connect_tcp("relay.example", 443, timeout=10)
    stream = await stream.start_tls(context, "relay.example", timeout=10)
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import typing
from collections.abc import Callable

import httpcore

HIGH_WATER = 256 * 1024
"""Bytes received and not yet read past which the socket stops reading (TCP flow control)."""


Bound = Callable[[float | None, type[httpcore.TimeoutException]], float | None]
"""Cuts the timeout of each wait (image-tool's: to what is left of the call's deadline)."""


def _unbounded(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    return timeout


async def connect_tcp(
    host: str,
    port: int,
    timeout: float | None,
    local_address: str | None = None,
    *,
    bound: Bound = _unbounded,
) -> AsyncioStream:
    """A TCP connection to ``host``, made within ``timeout`` seconds; every later wait's timeout
    goes through ``bound``."""
    loop = asyncio.get_running_loop()
    local = (local_address, 0) if local_address else None
    connecting = loop.create_connection(lambda: _Connection(loop), host, port, local_addr=local)
    try:
        _, connection = await asyncio.wait_for(connecting, timeout)
    except TimeoutError as error:
        raise httpcore.ConnectTimeout(f"could not connect to {host} in {timeout:g} s") from error
    except OSError as error:
        raise httpcore.ConnectError(str(error) or f"could not connect to {host}") from error
    transport = connection.transport
    if transport is not None and (sock := transport.get_extra_info("socket")) is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return AsyncioStream(connection, bound)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection, as httpcore reads and writes it."""

    def __init__(self, connection: _Connection, bound: Bound = _unbounded) -> None:
        self._connection = connection
        self._bound = bound

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        while not connection.buffer:
            if connection.error is not None:
                raise httpcore.ReadError(str(connection.error) or "the connection broke")
            if connection.ended:
                return b""
            await connection.arrival(self._bound(timeout, httpcore.ReadTimeout))
        return connection.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        connection = self._connection
        if connection.ended or connection.transport is None or connection.transport.is_closing():
            raise httpcore.WriteError(str(connection.error or "the connection is closed"))
        connection.transport.write(buffer)
        await connection.drained(self._bound(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        if self._connection.transport is not None:
            self._connection.transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        connection = self._connection
        assert connection.transport is not None
        timeout = self._bound(timeout, httpcore.ConnectTimeout)
        try:
            transport = await connection.loop.start_tls(
                connection.transport,
                connection,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError) as error:
            connection.transport.close()
            if isinstance(error, TimeoutError):
                raise httpcore.ConnectTimeout("the TLS handshake took too long") from error
            raise httpcore.ConnectError(str(error) or "the TLS handshake failed") from error
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        connection.transport = transport
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        connection = self._connection
        if info == "is_readable":  # idle and readable: the server closed it, or sent what it should not
            return bool(connection.buffer) or connection.ended
        transport = connection.transport
        if transport is None:
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


class _Connection(asyncio.Protocol):
    """What the event loop reports of one connection: bytes received, its end, write pauses."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False
        self.error: Exception | None = None
        self._reading_paused = False
        self._arrival: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        _settle(self._arrival)

    def eof_received(self) -> bool:
        self.ended = True
        _settle(self._arrival)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        _settle(self._arrival)
        _settle(self._drained)

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        _settle(self._drained)
        self._drained = None

    def take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of what has arrived."""
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) <= HIGH_WATER // 2 and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False
        return data

    async def arrival(self, timeout: float | None) -> None:
        """Until more bytes arrive or the connection ends; ``httpcore.ReadTimeout`` after ``timeout``."""
        self._arrival = self.loop.create_future()
        await _within(self.loop, self._arrival, timeout, httpcore.ReadTimeout)

    async def drained(self, timeout: float | None) -> None:
        """Until the socket takes more writes (at once unless the kernel's buffer is full)."""
        if self._drained is not None:
            await _within(self.loop, asyncio.shield(self._drained), timeout, httpcore.WriteTimeout)


async def _within(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[None],
    timeout: float | None,
    expired: type[httpcore.TimeoutException],
) -> None:
    """Wait for ``future``, failing with ``expired`` after ``timeout`` seconds: a timer, not
    ``asyncio.wait_for``, which would make a task of every wait."""
    if timeout is None:
        await future
        return
    timer = loop.call_later(timeout, _expire, future, expired, timeout)
    try:
        await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[None], expired: type[httpcore.TimeoutException], timeout: float) -> None:
    if not future.done():
        future.set_exception(expired(f"nothing happened in {timeout:g} s"))


def _settle(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
