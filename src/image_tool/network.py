"""The sockets under image-tool's own httpx clients: every wait bounded by the call's total time,
and image downloads connected only to public addresses.

httpx sets one read timeout per request, so a relay that sends a byte now and then, or an image
host that stalls near the end, could hold a call far past its ``total_timeout``. Here each
connect, read and write waits at most what is left of the current call (a context variable set
by the client for the whole call, downloads included: ``retries.Deadline``).

A download's host is resolved once, every address it gives is checked, and the socket connects
to a checked address (TLS and the Host header still name the host): checking a name's addresses
and then letting httpx resolve it again to connect proves nothing (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import typing
from collections.abc import Iterable, Iterator

import anyio
import httpcore
import httpx

from .errors import ConfigurationError, SaveError
from .leases import ConnectionLeases
from .retries import current_deadline
from .sockets import connect_tcp

LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100)
"""httpx queues calls beyond 100 connections; the client's ``max_concurrency`` is the cap that counts."""

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


def bounded_client(verify: ssl.SSLContext, *, public_only: bool = False) -> httpx.Client:
    """A pooled httpx client whose waits are bounded by the call's deadline; with ``public_only``,
    connected only to public addresses, and deaf to proxy variables (a proxy's address is not the
    host's, so the check would be meaningless)."""
    client = httpx.Client(verify=verify, limits=LIMITS, trust_env=not public_only)
    _install(client, _Backend(public_only))
    return client


def bounded_async_client(verify: ssl.SSLContext, *, public_only: bool = False) -> httpx.AsyncClient:
    """Async twin of ``bounded_client``."""
    client = httpx.AsyncClient(verify=verify, limits=LIMITS, trust_env=not public_only)
    _install(client, _AsyncBackend(public_only))
    return client


def leasing_async_client(verify: ssl.SSLContext) -> httpx.AsyncClient:
    """A ``bounded_async_client`` whose requests each lease a connection of their own
    (``leases.py``): one client serves any number of calls at once without scanning its pool."""
    client = bounded_async_client(verify)
    transport = client._transport
    if isinstance(transport, httpx.AsyncHTTPTransport):
        transport._pool = ConnectionLeases(verify, _AsyncBackend(False), LIMITS.keepalive_expiry)  # type: ignore[assignment]
    return client


def _install(client: httpx.Client | httpx.AsyncClient, backend: object) -> None:
    # httpx has no public way to choose httpcore's network backend; every transport it builds
    # (the default one, and one per proxy variable) keeps its httpcore pool in ``_pool``. Where
    # that is no longer so, no client is made: one without these sockets would download from any
    # address, and wait past the call's deadline.
    for transport in filter(None, [client._transport, *client._mounts.values()]):  # None: no proxy
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise ConfigurationError(
                f"image-tool cannot put its sockets under httpx {httpx.__version__}'s transport, so "
                "it connects nowhere: without them a download could reach a private address and a "
                "call could outlast its total_timeout. Install an httpx that image-tool supports."
            )
        pool._network_backend = backend


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


def _bounded(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
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
        raise httpcore.ConnectError(f"{host} has no address")
    return addresses


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, public_only: bool) -> None:
        self._public_only = public_only
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions | None = None,
    ) -> httpcore.NetworkStream:
        if not self._public_only:
            bounded = _bounded(timeout, httpcore.ConnectTimeout)
            return _Stream(self._backend.connect_tcp(host, port, bounded, local_address, socket_options))
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise httpcore.ConnectError(f"could not resolve {host}: {error}") from error
        failure: Exception = httpcore.ConnectError(f"could not connect to {host}")
        for address in _vetted(host, infos):
            bounded = _bounded(timeout, httpcore.ConnectTimeout)
            try:
                return _Stream(
                    self._backend.connect_tcp(address, port, bounded, local_address, socket_options)
                )
            except httpcore.ConnectError as error:
                failure = error
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions | None = None
    ) -> httpcore.NetworkStream:
        if self._public_only:
            raise SaveError(f"refused to download through the local socket {path}")
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _AsyncStream(await self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, public_only: bool) -> None:
        self._public_only = public_only
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if not self._public_only:
            bounded = _bounded(timeout, httpcore.ConnectTimeout)
            return await self._connect(host, port, bounded, local_address, socket_options)
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise httpcore.ConnectError(f"could not resolve {host}: {error}") from error
        failure: Exception = httpcore.ConnectError(f"could not connect to {host}")
        for address in _vetted(host, list(infos)):
            bounded = _bounded(timeout, httpcore.ConnectTimeout)
            try:
                return await self._connect(address, port, bounded, local_address, socket_options)
            except httpcore.ConnectError as error:
                failure = error
        raise failure

    async def _connect(
        self,
        host: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: SocketOptions | None,
    ) -> httpcore.AsyncNetworkStream:
        if socket_options:  # asyncio's transports take no socket options: anyio's sockets do
            stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
            return _AsyncStream(stream)
        return await connect_tcp(host, port, timeout, local_address, bound=_bounded)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions | None = None
    ) -> httpcore.AsyncNetworkStream:
        if self._public_only:
            raise SaveError(f"refused to download through the local socket {path}")
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _AsyncStream(await self._backend.connect_unix_socket(path, bounded, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)
