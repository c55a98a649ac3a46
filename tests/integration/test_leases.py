"""The async client's pool (image_tool.leases): a connection per request, given back when its answer
is closed, against a loopback server that counts connections."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest
import trustme

from image_tool import ImageClient, sockets
from image_tool.leases import ConnectionLeases
from image_tool.network import leasing_async_client
from image_tool.pooling import shared_ssl_context

BODY = b"x" * 100_000


class Server:
    """Answers each request with ``body`` after ``delay`` seconds (nothing, when the client hangs
    up first); with ``hang_up``, closes each connection soon after answering, keep-alive said.
    Counts connections, requests, and how many were in flight at once."""

    def __init__(self, delay: float = 0.0, body: bytes = BODY, *, hang_up: bool = False) -> None:
        self.delay = delay
        self.body = body
        self.hang_up = hang_up
        self.connections = 0
        self.open = 0
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(_content_length(head))
                self.requests += 1
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                try:  # wait the delay, or until the client hangs up
                    if not await asyncio.wait_for(reader.read(1), self.delay or 0.001):
                        return
                except TimeoutError:
                    pass
                finally:
                    self.in_flight -= 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(self.body), self.body))
                await writer.drain()
                if self.hang_up:
                    await asyncio.sleep(0.05)
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def _content_length(head: bytes) -> int:
    lengths = [
        line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    ]
    return int(lengths[0]) if lengths else 0


@asynccontextmanager
async def serving(server: Server, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    listener = await asyncio.start_server(server, "127.0.0.1", 0, ssl=tls)
    async with listener:
        scheme = "https" if tls else "http"
        yield f"{scheme}://127.0.0.1:{listener.sockets[0].getsockname()[1]}/"


async def test_concurrent_requests_each_get_a_connection_then_reuse_them() -> None:
    server = Server(delay=1.0)  # all fifty arrive within it, even on a loaded machine
    async with serving(server) as url, leasing_async_client(shared_ssl_context()) as client:
        for _ in range(2):
            answers = await asyncio.gather(*(client.get(url) for _ in range(50)))
            assert [answer.content for answer in answers] == [BODY] * 50
        assert server.most_in_flight == 50  # none waited for another's connection
        assert server.connections == 50  # the second round reused the first round's
    await asyncio.sleep(0.05)
    assert server.open == 0  # closing the client closed them all


async def test_an_answer_not_read_to_its_end_closes_its_connection() -> None:
    server = Server()
    async with serving(server) as url, leasing_async_client(shared_ssl_context()) as client:
        async with client.stream("GET", url) as answer:
            async for _ in answer.aiter_raw(1024):
                break  # walked away mid-body: the connection cannot carry another request
        assert (await client.get(url)).content == BODY
        assert (await client.get(url)).content == BODY
        assert server.connections == 2


async def test_a_cancelled_request_does_not_leak_its_connection() -> None:
    server = Server(delay=5)
    leases = ConnectionLeases(shared_ssl_context(), _backend(), keepalive_expiry=5)
    async with serving(server) as url, httpx.AsyncClient(transport=_transport(leases)) as client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.get(url), 0.2)
        await asyncio.sleep(0.05)
        assert server.open == 0
        assert not leases._leased  # nor held by the pool
        server.delay = 0
        assert (await client.get(url)).content == BODY


async def test_connections_free_past_their_keep_alive_are_closed() -> None:
    server = Server()
    leases = ConnectionLeases(shared_ssl_context(), _backend(), keepalive_expiry=0.1)
    async with serving(server) as url, httpx.AsyncClient(transport=_transport(leases)) as client:
        await asyncio.gather(*(client.get(url) for _ in range(3)))
        await asyncio.sleep(0.3)
        await client.get(url)  # expired ones are closed, not reused
        await asyncio.sleep(0.05)
        assert server.connections == 4
        assert server.open == 1


async def test_an_unsupported_scheme_is_httpx_s_error() -> None:
    async with leasing_async_client(shared_ssl_context()) as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("ftp://127.0.0.1/")


def _backend() -> httpcore.AsyncNetworkBackend:
    from image_tool.network import _AsyncBackend

    return _AsyncBackend(public_only=False)


def _transport(leases: ConnectionLeases) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport()
    transport._pool = leases  # type: ignore[assignment]
    return transport


async def test_https_with_a_trusted_certificate_and_not_without() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    server = Server()
    async with serving(server, server_context) as url:
        async with leasing_async_client(trusted) as client:
            assert [(await client.get(url)).content for _ in range(2)] == [BODY, BODY]
        assert server.connections == 1
        async with leasing_async_client(shared_ssl_context()) as client:
            with pytest.raises(httpx.ConnectError):  # the system's authorities do not know ours
                await client.get(url)


async def test_a_request_on_a_free_connection_is_sent_before_the_next_task_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calls started together go out one by one as each is built, not all after all are built:
    the relay gets them spread out, not in one burst."""
    events: list[str] = []
    real_write = sockets.AsyncioStream.write

    async def write(self: sockets.AsyncioStream, buffer: bytes, timeout: float | None = None) -> None:
        events.append("sent")
        await real_write(self, buffer, timeout)

    async def get(client: httpx.AsyncClient, url: str) -> bytes:
        events.append("started")
        return (await client.get(url)).content

    server = Server()
    async with serving(server) as url, leasing_async_client(shared_ssl_context()) as client:
        await asyncio.gather(*(get(client, url) for _ in range(5)))  # five free connections
        events.clear()
        monkeypatch.setattr(sockets.AsyncioStream, "write", write)
        await asyncio.gather(*(get(client, url) for _ in range(5)))
    assert [event for event, _ in itertools.groupby(events)] == ["started", "sent"] * 5


@pytest.mark.parametrize("hang_up", [False, True])
async def test_the_client_keeps_a_connection_unless_the_relay_closed_it(hang_up: bool) -> None:
    """Calls one after another reuse one connection; one the relay closed while it was idle
    is replaced, not failed on."""
    server = Server(body=b'{"created": 1, "data": [{"url": "https://img.example/a.png"}]}', hang_up=hang_up)
    async with serving(server) as url, ImageClient(api_key="sk-test", base_url=f"{url}v1") as client:
        for _ in range(3):
            assert (await client.agenerate("A cat")).images
            await asyncio.sleep(0.2)
    assert server.requests == 3
    assert server.connections == (3 if hang_up else 1)
