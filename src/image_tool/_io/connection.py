"""Where the key and the relay's address come from, and how the address is normalised."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from .._wire.redaction import display_url
from ..errors import ConfigurationError

API_KEY_ENV = "IMAGE_TOOL_API_KEY"
BASE_URL_ENV = "IMAGE_TOOL_BASE_URL"
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"

_EXAMPLE_URL = "https://relay.example.com/v1"


def refuse_httpx(setting: str, value: object) -> None:
    """An httpx object where image-tool takes httpx2's is refused at once, with the fix. (httpx is
    looked up, never imported: whoever made an httpx object has loaded it.)"""
    httpx = sys.modules.get("httpx")
    kinds = [getattr(httpx, name, None) for name in ("Client", "AsyncClient", "Timeout")]
    kind = next((kind for kind in kinds if isinstance(kind, type) and isinstance(value, kind)), None)
    if kind is not None:
        raise ConfigurationError(
            f"{setting} is an httpx {kind.__name__}, but image-tool runs on httpx2 (httpx's maintained "
            f"continuation, the same API under `import httpx2`): pass an httpx2.{kind.__name__} instead."
        )


def resolve_connection(
    api_key: str | None,
    base_url: str | None,
    environ: Mapping[str, str] = os.environ,
    *,
    allow_insecure_http: bool = False,
) -> tuple[str, str]:
    """The API key and normalised base URL, from the arguments or the environment.

    Arguments win, then ``IMAGE_TOOL_API_KEY`` / ``IMAGE_TOOL_BASE_URL``. ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL`` are used only as a pair, and only when nothing else is set, so that one
    vendor's key is never sent to another vendor's address.
    """
    key = _present(api_key) or _present(environ.get(API_KEY_ENV))
    url = _present(base_url) or _present(environ.get(BASE_URL_ENV))
    if not key and not url:
        key = _present(environ.get(OPENAI_API_KEY_ENV))
        url = _present(environ.get(OPENAI_BASE_URL_ENV))
        if not (key and url):
            raise ConfigurationError(
                f"No image relay is configured: set {API_KEY_ENV} and {BASE_URL_ENV} "
                f"(for example {_EXAMPLE_URL}), or pass api_key= and base_url=. "
                f"{OPENAI_API_KEY_ENV} and {OPENAI_BASE_URL_ENV} are used only when both are set."
            )
    if not key:
        raise ConfigurationError(
            f"No API key for the image relay at {url}: set {API_KEY_ENV} or pass api_key=."
        )
    if not url:
        raise ConfigurationError(
            f"No base URL for the image relay: set {BASE_URL_ENV} (for example {_EXAMPLE_URL}) "
            "or pass base_url=. The key is never sent to a default address."
        )
    url = normalise_base_url(url)
    if not allow_insecure_http and _sends_key_in_clear(url):
        raise ConfigurationError(
            f"The base URL {url} is plain http to a host that is not this machine: the API key would "
            "travel unencrypted. Use https, or pass allow_insecure_http=True if that is really intended."
        )
    return key, url


def normalise_base_url(url: str) -> str:
    """``https://host//v1/`` -> ``https://host/v1``; a trailing ``/chat/completions`` is dropped."""
    shown = display_url(url.strip())
    try:
        parts = urlsplit(url.strip())
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ConfigurationError(
            f"The base URL must be an http(s) address such as {_EXAMPLE_URL}; got {shown!r}. "
            f"Set {BASE_URL_ENV} or pass base_url=."
        )
    if parts.username or parts.password:
        # httpx2 would send them as Basic auth, in place of the Bearer key.
        raise ConfigurationError(
            f"The base URL must not carry a user name or password ({shown} with credentials): they "
            "would replace the API key. Pass the key as api_key= and the URL without them."
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"The base URL must not carry a query or fragment; got {shown!r}. Set {BASE_URL_ENV} "
            "to the address that precedes /chat/completions."
        )
    path = re.sub(r"/{2,}", "/", parts.path).rstrip("/")
    path = path.removesuffix("/chat/completions")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _sends_key_in_clear(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def _present(value: str | None) -> str | None:
    return value.strip() or None if value else None
