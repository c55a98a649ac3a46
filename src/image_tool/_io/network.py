"""The httpx2 clients image-tool makes, and what the downloads' guarded transport
(``_async/guarded.py``) builds on.

Relay calls use httpx2's own transport (the one cassettes record). The client cuts each request's
timeouts to what is left of the call and checks the call's deadline between chunks.

Image downloads use a transport of ours over httpcore2's connection pool, whose public extension
point, ``network_backend=``, puts guarded sockets under every connection: a host is resolved once,
refused unless every address it gives is public, and connected to at a checked address (TLS and the
Host header still name the host): checking a name's addresses and then letting the pool resolve it
again to connect proves nothing (DNS rebinding). Every connect, read and write of a download waits
at most what is left of the call (``_policy.retries.Deadline``), so a host dripping a byte at a time ends
with the call.
"""

from __future__ import annotations

import ipaddress
import ssl
import typing
from collections.abc import Iterable, Iterator

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


Pool = typing.TypeVar("Pool", httpcore2.ConnectionPool, httpcore2.AsyncConnectionPool)


def guarded_pool(pool_class: type[Pool], verify: ssl.SSLContext, backend: object) -> Pool:
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


def core_request(request: httpx2.Request) -> httpcore2.Request:
    url = request.url
    return httpcore2.Request(
        method=request.method,
        url=httpcore2.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def as_httpx2(error: Exception, request: httpx2.Request) -> Exception:
    """httpcore2's error as httpx2's class of the same name (httpx2 has one for each)."""
    for kind in type(error).__mro__:
        if getattr(httpcore2, kind.__name__, None) is kind and issubclass(kind, Exception):
            mapped = getattr(httpx2, kind.__name__, httpx2.TransportError)
            return typing.cast(Exception, mapped(str(error), request=request))
    return error


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


def bounded(timeout: float | None, expired: type[httpcore2.TimeoutException]) -> float | None:
    """``timeout``, cut to what is left of the current call; expired at once when nothing is."""
    deadline = current_deadline()
    remaining = deadline.remaining() if deadline is not None else None
    if remaining is None:
        return timeout
    if remaining <= 0:
        raise expired("the call's total timeout ran out")
    return remaining if timeout is None else min(timeout, remaining)


def vetted(host: str, infos: list[tuple[typing.Any, ...]]) -> list[str]:
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
