# Made from _async/guarded.py by scripts/make_sync.py: edit that file, then run the script.
"""The downloads' transport: httpx2's requests on httpcore2's pool, over guarded sockets.

``AsyncBackend`` is httpcore2's network backend, vetted and bounded: a host is resolved once and
refused unless every address is public (with ``public_only``), then connected to at a checked
address; every connect, read and write waits at most what is left of the call
(``_io/network.py`` says why).
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import Iterator

import httpcore2
import httpx2

from .._io.network import SocketOptions, as_httpx2, bounded, core_request, guarded_pool, vetted
from .._io.runtime import SyncRuntime
from ..errors import SaveError


def guarded_client(verify: ssl.SSLContext, *, public_only: bool) -> httpx2.Client:
    """A client for image downloads on guarded sockets; with ``public_only``, connected only to
    public addresses. It ignores proxy variables: a proxy's address is not the host's, so the check
    would be meaningless."""
    pool = guarded_pool(httpcore2.ConnectionPool, verify, SyncBackend(public_only))
    return httpx2.Client(transport=SyncTransport(pool), trust_env=False)


class SyncTransport(httpx2.BaseTransport):
    def __init__(self, pool: httpcore2.ConnectionPool) -> None:
        self.pool = pool

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            answer = self.pool.handle_request(core_request(request))
        except Exception as error:
            raise as_httpx2(error, request) from error
        body = typing.cast(typing.Iterable[bytes], answer.stream)
        return httpx2.Response(
            answer.status,
            headers=answer.headers,
            stream=SyncBody(body, request),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self.pool.close()


class SyncBody(httpx2.SyncByteStream):
    def __init__(self, chunks: typing.Iterable[bytes], request: httpx2.Request) -> None:
        self.chunks = chunks
        self.request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.chunks:
                yield chunk
        except Exception as error:
            raise as_httpx2(error, self.request) from error

    def close(self) -> None:
        if close := getattr(self.chunks, "close", None):
            close()


class SyncStream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self.stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, bounded(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, bounded(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        limit = bounded(timeout, httpcore2.ConnectTimeout)
        return SyncStream(self.stream.start_tls(ssl_context, server_hostname, limit))

    def get_extra_info(self, info: str) -> typing.Any:
        return self.stream.get_extra_info(info)


class SyncBackend(httpcore2.NetworkBackend):
    def __init__(self, public_only: bool) -> None:
        self.public_only = public_only
        self.backend = httpcore2.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions | None = None,
    ) -> httpcore2.NetworkStream:
        addresses = [host]
        if self.public_only:
            try:
                infos = SyncRuntime.resolve(host, port)
            except OSError as error:
                raise httpcore2.ConnectError(f"could not resolve {host}: {error}") from error
            addresses = vetted(host, infos)
        failure: Exception = httpcore2.ConnectError(f"could not connect to {host}")
        for address in addresses:
            limit = bounded(timeout, httpcore2.ConnectTimeout)
            try:
                stream = self.backend.connect_tcp(address, port, limit, local_address, socket_options)
                return SyncStream(stream)
            except httpcore2.ConnectError as error:
                failure = error
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions | None = None
    ) -> httpcore2.NetworkStream:
        raise SaveError(f"refused to download through the local socket {path}")

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)
