"""The downloads' transport: httpx2's requests on httpcore2's pool, over guarded sockets.

``AsyncBackend`` is httpcore2's network backend, vetted and bounded: a host is resolved once and
refused unless every address is public (with ``public_only``), then connected to at a checked
address; every connect, read and write waits at most what is left of the call
(``_io/network.py`` says why).
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import AsyncIterator

import httpcore2
import httpx2

from .._io.network import SocketOptions, as_httpx2, bounded, core_request, guarded_pool, vetted
from .._io.runtime import AsyncRuntime
from ..errors import SaveError


def guarded_client(verify: ssl.SSLContext, *, public_only: bool) -> httpx2.AsyncClient:
    """A client for image downloads on guarded sockets; with ``public_only``, connected only to
    public addresses. It ignores proxy variables: a proxy's address is not the host's, so the check
    would be meaningless."""
    pool = guarded_pool(httpcore2.AsyncConnectionPool, verify, AsyncBackend(public_only))
    return httpx2.AsyncClient(transport=AsyncTransport(pool), trust_env=False)


class AsyncTransport(httpx2.AsyncBaseTransport):
    def __init__(self, pool: httpcore2.AsyncConnectionPool) -> None:
        self.pool = pool

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            answer = await self.pool.handle_async_request(core_request(request))
        except Exception as error:
            raise as_httpx2(error, request) from error
        body = typing.cast(typing.AsyncIterable[bytes], answer.stream)
        return httpx2.Response(
            answer.status,
            headers=answer.headers,
            stream=AsyncBody(body, request),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


class AsyncBody(httpx2.AsyncByteStream):
    def __init__(self, chunks: typing.AsyncIterable[bytes], request: httpx2.Request) -> None:
        self.chunks = chunks
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.chunks:
                yield chunk
        except Exception as error:
            raise as_httpx2(error, self.request) from error

    async def aclose(self) -> None:
        if aclose := getattr(self.chunks, "aclose", None):
            await aclose()


class AsyncStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self.stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.stream.read(max_bytes, bounded(timeout, httpcore2.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.stream.write(buffer, bounded(timeout, httpcore2.WriteTimeout))

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.AsyncNetworkStream:
        limit = bounded(timeout, httpcore2.ConnectTimeout)
        return AsyncStream(await self.stream.start_tls(ssl_context, server_hostname, limit))

    def get_extra_info(self, info: str) -> typing.Any:
        return self.stream.get_extra_info(info)


class AsyncBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, public_only: bool) -> None:
        self.public_only = public_only
        self.backend = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses = [host]
        if self.public_only:
            try:
                infos = await AsyncRuntime.resolve(host, port)
            except OSError as error:
                raise httpcore2.ConnectError(f"could not resolve {host}: {error}") from error
            addresses = vetted(host, infos)
        failure: Exception = httpcore2.ConnectError(f"could not connect to {host}")
        for address in addresses:
            limit = bounded(timeout, httpcore2.ConnectTimeout)
            try:
                stream = await self.backend.connect_tcp(address, port, limit, local_address, socket_options)
                return AsyncStream(stream)
            except httpcore2.ConnectError as error:
                failure = error
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise SaveError(f"refused to download through the local socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)
