"""The httpx2 clients image-tool makes.

Relay calls use httpx2's own transport (the one cassettes record). The client cuts each request's
timeouts to what is left of the call and checks the call's deadline between chunks.

Image downloads use a transport of ours over httpcore2's connection pool, whose public extension
point, ``network_backend=``, puts guarded sockets under every connection: a host is resolved once,
refused unless every address it gives is public, and connected to at a checked address (TLS and the
Host header still name the host): checking a name's addresses and then letting the pool resolve it
again to connect proves nothing (DNS rebinding). Every connect, read and write of a download waits
at most what is left of the call (``retries.Deadline``), so a host dripping a byte at a time ends
with the call.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from collections.abc import AsyncIterator, Iterable, Iterator

import httpcore2
import httpx2

from .._policy.retries import current_deadline
from ..errors import ConfigurationError, SaveError

LIMITS = httpx2.Limits(max_connections=None, max_keepalive_connections=100)
"""No queue in httpx2's pool: the client's ``max_concurrency`` is the cap that counts."""

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

SocketOptions = Iterable[typing.Any]


def is_public_address(address: str) -> bool:
    """Whether ``address`` is a public (global) address, and so is any IPv4 address it embeds
    (IPv4-mapped, NAT64, 6to4, Teredo, IPv4-compatible): those reach private hosts too."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    judged = list(_with_embedded(ip))
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        # 6to4 is judged by the IPv4 address it carries alone: Python 3.13 counts the whole
        # 2002::/16 prefix as not global, earlier versions as global.
        judged = judged[1:]
    return all(candidate.is_global for candidate in judged)


def relay_client(verify: ssl.SSLContext) -> httpx2.Client:
    """A pooled client for relay calls, on httpx2's own transport (proxy variables apply)."""
    return httpx2.Client(verify=verify, limits=LIMITS)


def relay_async_client(verify: ssl.SSLContext) -> httpx2.AsyncClient:
    """Async twin of ``relay_client``."""
    return httpx2.AsyncClient(verify=verify, limits=LIMITS)


def download_client(verify: ssl.SSLContext, *, public_only: bool) -> httpx2.Client:
    """A client for image downloads on guarded sockets; with ``public_only``, connected only to
    public addresses. It ignores proxy variables: a proxy's address is not the host's, so the check
    would be meaningless."""
    pool = _pool(httpcore2.ConnectionPool, verify, _Backend(public_only))
    return httpx2.Client(transport=_Transport(pool), trust_env=False)


def download_async_client(verify: ssl.SSLContext, *, public_only: bool) -> httpx2.AsyncClient:
    """Async twin of ``download_client``."""
    pool = _pool(httpcore2.AsyncConnectionPool, verify, _AsyncBackend(public_only))
    return httpx2.AsyncClient(transport=_AsyncTransport(pool), trust_env=False)


Pool = typing.TypeVar("Pool", httpcore2.ConnectionPool, httpcore2.AsyncConnectionPool)


def _pool(pool_class: type[Pool], verify: ssl.SSLContext, backend: object) -> Pool:
    """httpcore2's pool on the guarded sockets; where it no longer takes them, no pool (fail closed)."""
    try:
        return pool_class(
            ssl_context=verify,
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=backend,  # type: ignore[arg-type]
        )
    except TypeError as error:
        raise ConfigurationError(
            f"image-tool cannot put its guarded sockets under httpcore2 {httpcore2.__version__}'s "
            "connection pool, so it downloads nothing: without them a download could reach a private "
            "address and outlast the call's total_timeout. Install an httpx2 that image-tool supports."
        ) from error


# --- The transports: httpx2's requests on httpcore2's pool --------------------------------------


def _core_request(request: httpx2.Request) -> httpcore2.Request:
    url = request.url
    return httpcore2.Request(
        method=request.method,
        url=httpcore2.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def _as_httpx2(error: Exception, request: httpx2.Request) -> Exception:
    """httpcore2's error as httpx2's class of the same name (httpx2 has one for each)."""
    for kind in type(error).__mro__:
        if getattr(httpcore2, kind.__name__, None) is kind and issubclass(kind, Exception):
            mapped = getattr(httpx2, kind.__name__, httpx2.TransportError)
            return typing.cast(Exception, mapped(str(error), request=request))
    return error


class _Transport(httpx2.BaseTransport):
    def __init__(self, pool: httpcore2.ConnectionPool) -> None:
        self.pool = pool

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            answer = self.pool.handle_request(_core_request(request))
        except Exception as error:
            raise _as_httpx2(error, request) from error
        body = typing.cast(Iterable[bytes], answer.stream)
        return httpx2.Response(
            answer.status, headers=answer.headers, stream=_Body(body, request), extensions=answer.extensions
        )

    def close(self) -> None:
        self.pool.close()


class _Body(httpx2.SyncByteStream):
    def __init__(self, chunks: Iterable[bytes], request: httpx2.Request) -> None:
        self.chunks = chunks
        self.request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.chunks
        except Exception as error:
            raise _as_httpx2(error, self.request) from error

    def close(self) -> None:
        if close := getattr(self.chunks, "close", None):
            close()


class _AsyncTransport(httpx2.AsyncBaseTransport):
    def __init__(self, pool: httpcore2.AsyncConnectionPool) -> None:
        self.pool = pool

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            answer = await self.pool.handle_async_request(_core_request(request))
        except Exception as error:
            raise _as_httpx2(error, request) from error
        body = typing.cast(typing.AsyncIterable[bytes], answer.stream)
        return httpx2.Response(
            answer.status,
            headers=answer.headers,
            stream=_AsyncBody(body, request),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


class _AsyncBody(httpx2.AsyncByteStream):
    def __init__(self, chunks: typing.AsyncIterable[bytes], request: httpx2.Request) -> None:
        self.chunks = chunks
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.chunks:
                yield chunk
        except Exception as error:
            raise _as_httpx2(error, self.request) from error

    async def aclose(self) -> None:
        if aclose := getattr(self.chunks, "aclose", None):
            await aclose()


# --- The guarded sockets: httpcore2's network backends, vetted and bounded ----------------------


def _with_embedded(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    yield ip
    if isinstance(ip, ipaddress.IPv4Address):
        return
    if ip.ipv4_mapped is not None:
        yield ip.ipv4_mapped
    if ip.sixtofour is not None:
        yield ip.sixtofour
    if ip.teredo is not None:
        yield from ip.teredo
    if any(ip in network for network in (*_NAT64, _IPV4_COMPATIBLE)):
        yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _bounded(timeout: float | None, expired: type[httpcore2.TimeoutException]) -> float | None:
    """``timeout``, cut to what is left of the current call; expired at once when nothing is."""
    deadline = current_deadline()
    remaining = deadline.remaining() if deadline is not None else None
    if remaining is None:
        return timeout
    if remaining <= 0:
        raise expired("the call's total timeout ran out")
    return remaining if timeout is None else min(timeout, remaining)


def _vetted(host: str, infos: list[tuple[typing.Any, ...]]) -> list[str]:
    """The addresses of ``host`` to connect to, when every one of them is public."""
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if not is_public_address(address):
            raise SaveError(
                f"refused to download from {host} ({address}): a loopback, private, link-local or "
                "metadata address; set allow_private_downloads=True to allow it for local use"
            )
    if not addresses:
        raise httpcore2.ConnectError(f"{host} has no address")
    return addresses


class _Stream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self.stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, _bounded(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, _bounded(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        bounded = _bounded(timeout, httpcore2.ConnectTimeout)
        return _Stream(self.stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self.stream.get_extra_info(info)


class _Backend(httpcore2.NetworkBackend):
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
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as error:
                raise httpcore2.ConnectError(f"could not resolve {host}: {error}") from error
            addresses = _vetted(host, infos)
        failure: Exception = httpcore2.ConnectError(f"could not connect to {host}")
        for address in addresses:
            bounded = _bounded(timeout, httpcore2.ConnectTimeout)
            try:
                return _Stream(
                    self.backend.connect_tcp(address, port, bounded, local_address, socket_options)
                )
            except httpcore2.ConnectError as error:
                failure = error
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions | None = None
    ) -> httpcore2.NetworkStream:
        raise SaveError(f"refused to download through the local socket {path}")

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)


class _AsyncStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self.stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.stream.read(max_bytes, _bounded(timeout, httpcore2.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.stream.write(buffer, _bounded(timeout, httpcore2.WriteTimeout))

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.AsyncNetworkStream:
        bounded = _bounded(timeout, httpcore2.ConnectTimeout)
        return _AsyncStream(await self.stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self.stream.get_extra_info(info)


class _AsyncBackend(httpcore2.AsyncNetworkBackend):
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
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as error:
                raise httpcore2.ConnectError(f"could not resolve {host}: {error}") from error
            addresses = _vetted(host, list(infos))
        failure: Exception = httpcore2.ConnectError(f"could not connect to {host}")
        for address in addresses:
            bounded = _bounded(timeout, httpcore2.ConnectTimeout)
            try:
                stream = await self.backend.connect_tcp(address, port, bounded, local_address, socket_options)
                return _AsyncStream(stream)
            except httpcore2.ConnectError as error:
                failure = error
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise SaveError(f"refused to download through the local socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)
