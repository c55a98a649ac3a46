"""The asyncio streams under the async clients (image_tool.sockets), against loopback servers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest
import trustme

from image_tool.sockets import HIGH_WATER, connect_tcp

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler, context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A loopback server running ``handler`` for each connection; yields its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up first
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    async with listener:
        yield listener.sockets[0].getsockname()[1]


async def test_reads_what_arrives_then_the_end() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello " + await reader.readexactly(5))
        await writer.drain()
        writer.close()

    async with server(answer) as port:
        stream = await connect_tcp("127.0.0.1", port, timeout=5)
        assert stream.get_extra_info("is_readable") is False  # idle: nothing sent yet
        await stream.write(b"world", timeout=5)
        received = b""
        while chunk := await stream.read(4, timeout=5):  # at most max_bytes a read
            assert len(chunk) <= 4
            received += chunk
        assert received == b"hello world"
        assert stream.get_extra_info("is_readable") is True  # closed by the server: not reusable
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        await stream.aclose()


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with server(silent) as port:
        stream = await connect_tcp("127.0.0.1", port, timeout=5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(1024, timeout=0.2)
        assert 0.15 < loop.time() - started < 2
        await stream.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with server(lambda reader, writer: asyncio.sleep(0)) as port:
        pass  # closed: nothing listens on the port now
    with pytest.raises(httpcore.ConnectError):
        await connect_tcp("127.0.0.1", port, timeout=5)


async def test_writing_to_a_closed_connection_is_a_write_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with server(hang_up) as port:
        stream = await connect_tcp("127.0.0.1", port, timeout=5)
        assert await stream.read(1024, timeout=5) == b""
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"anyone there?", timeout=5)


async def test_a_fast_sender_is_held_to_the_buffer_limit() -> None:
    """Unread bytes stop the socket's reading past HIGH_WATER: a relay cannot fill memory
    faster than the client reads."""
    total = HIGH_WATER * 8

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * total)
        await writer.drain()
        writer.close()

    async with server(flood) as port:
        stream = await connect_tcp("127.0.0.1", port, timeout=5)
        await asyncio.sleep(0.3)  # let the sender run ahead
        connection = stream._connection
        assert len(connection.buffer) <= HIGH_WATER + 256 * 1024  # and one read: 256 KiB
        received = 0
        while chunk := await stream.read(65536, timeout=5):
            received += len(chunk)
        assert received == total


async def test_a_writer_waits_while_the_peer_reads_nothing() -> None:
    """A peer that reads nothing: the write waits for the kernel's buffer, at most its timeout."""

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with server(deaf) as port:
        stream = await connect_tcp("127.0.0.1", port, timeout=5)
        with pytest.raises(httpcore.WriteTimeout):  # noqa: PT012 (the kernel's buffers fill first)
            for _ in range(1000):
                await stream.write(b"y" * 1024 * 1024, timeout=0.2)
        await stream.aclose()


async def test_tls_with_a_trusted_certificate_and_not_without() -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("relay.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(4))
        await writer.drain()
        writer.close()

    async with server(echo, server_context) as port:
        stream = await connect_tcp("127.0.0.1", port, timeout=5)
        secure = await stream.start_tls(trusted, "relay.test", timeout=5)
        assert secure.get_extra_info("ssl_object") is not None
        await secure.write(b"ping", timeout=5)
        assert await secure.read(1024, timeout=5) == b"ping"
        await secure.aclose()

        stream = await connect_tcp("127.0.0.1", port, timeout=5)
        with pytest.raises(httpcore.ConnectError):  # the system's authorities do not know ours
            await stream.start_tls(ssl.create_default_context(), "relay.test", timeout=5)


async def test_httpx_sees_its_own_errors() -> None:
    """What an httpx user of these sockets sees: httpx's exception types."""
    from image_tool.network import bounded_async_client
    from image_tool.pooling import shared_ssl_context

    async with server(lambda reader, writer: asyncio.sleep(0)) as port:
        pass  # closed: nothing listens on the port now
    async with bounded_async_client(shared_ssl_context()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
