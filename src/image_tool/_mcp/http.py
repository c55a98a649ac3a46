"""The MCP server over streamable HTTP, as the MCP SDK serves it: each request's bearer token is
a named client's (``tokens.py``), Host and Origin are checked (the SDK's DNS-rebinding guard),
TLS comes from a certificate or a reverse proxy in front, and a stop lets the generations in
flight finish."""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .tokens import ClientTokens

if TYPE_CHECKING:
    from mcp.server import Server

logger = logging.getLogger("image_tool")

PATH = "/mcp"
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")


@dataclass(frozen=True)
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    allowed_hosts: Sequence[str] = ()
    """Host header values clients may send (``name:port`` or ``name:*``); loopback names when
    bound to loopback."""
    allowed_origins: Sequence[str] = ()
    """Origin header values browsers may send; requests without one (every non-browser client) pass."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_grace: float = 600.0
    """Seconds a stop waits for generations in flight before cancelling them."""

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check(options: HttpOptions) -> None:
    """Settings that would fail open, or later, refused now with the fix."""
    if not options.loopback and not options.allowed_hosts:
        raise ConfigurationError(
            f"Bound to {options.host}, the server must know the names clients reach it by: give "
            "--allowed-host NAME:PORT (repeatable; NAME:* for any port). Other Host headers are refused "
            "(DNS rebinding)."
        )
    if bool(options.tls_cert) != bool(options.tls_key):
        raise ConfigurationError("TLS needs both --tls-cert and --tls-key (PEM files).")
    if options.tls_cert and options.tls_key:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                options.tls_cert, options.tls_key
            )
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(f"The TLS certificate or key cannot be used: {error}.") from None
    if not options.loopback and not options.tls_cert:
        logger.warning(
            "image-tool mcp: serving plain HTTP on %s: client tokens travel in clear. Give --tls-cert "
            "and --tls-key, or bind to 127.0.0.1 behind a reverse proxy that terminates TLS.",
            options.host,
        )


def http_app(server: Server[Any], tokens: ClientTokens, options: HttpOptions) -> Any:
    """The Starlette app: ``POST /mcp`` for clients with a token, 401 for any other."""
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = [*options.allowed_hosts, *(LOOPBACK_HOSTS if options.loopback else ())]
    origins = [*options.allowed_origins, *(f"http://{host}" for host in LOOPBACK_HOSTS if options.loopback)]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    # The SDK's bearer check needs AuthSettings; with no authorization server of its own, the
    # issuer is this server (the SDK publishes no OAuth routes without a provider).
    here = f"{options.scheme}://{options.host}:{options.port}"
    return server.streamable_http_app(
        streamable_http_path=PATH,
        # Each call a plain request and answer, and no session: any instance can answer any
        # call, and a stop waits for the answers in flight.
        stateless_http=True,
        json_response=True,
        transport_security=security,
        host=options.host,
        auth=AuthSettings(issuer_url=here, resource_server_url=None),  # type: ignore[arg-type]
        token_verifier=tokens,
    )


def bind(options: HttpOptions) -> socket.socket:
    """The listening socket (port 0: a free one); a busy port is a ``ConfigurationError``."""
    sock = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((options.host, options.port))
    except OSError as error:
        sock.close()
        raise ConfigurationError(
            f"Cannot listen on {options.host}:{options.port} ({error.strerror or error}): "
            "choose another --port."
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve(app: Any, sock: socket.socket, options: HttpOptions) -> None:
    """Serve until SIGINT or SIGTERM; then stop taking calls, and wait up to ``shutdown_grace``
    for those in flight."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=math.ceil(options.shutdown_grace),
        ssl_certfile=options.tls_cert,
        ssl_keyfile=options.tls_key,
        lifespan="on",
    )
    await uvicorn.Server(config).serve(sockets=[sock])
