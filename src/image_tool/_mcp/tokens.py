"""The named tokens of an MCP server over HTTP: read from a file or the environment, and each
request's bearer token checked in constant time against all of them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

TOKENS_ENV = "IMAGE_TOOL_MCP_TOKENS"
MIN_TOKEN_LENGTH = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def read_tokens(path: Path | None, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Client name -> token, from ``path`` (a JSON object) or else ``IMAGE_TOOL_MCP_TOKENS`` (the
    same JSON); a problem is a ``ConfigurationError`` that names the fix, and never a token."""
    if path is not None:
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"The tokens file {path} cannot be read ({error}).") from None
    elif environ.get(TOKENS_ENV, "").strip():
        text, source = environ[TOKENS_ENV], TOKENS_ENV
    else:
        raise ConfigurationError(
            f"Serving over HTTP needs client tokens: --tokens FILE or {TOKENS_ENV}, a JSON object of "
            f'name -> token, such as {{"alice": "<token>"}}. Make a token with: {MAKE_ONE}'
        )
    try:
        tokens = json.loads(text)
    except ValueError:
        tokens = None
    if not isinstance(tokens, dict) or not tokens:
        raise ConfigurationError(
            f'{source} must hold a JSON object of client name -> token: {{"alice": "<token>"}}.'
        )
    for name, token in tokens.items():
        if not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"{source}: client names are 1-64 letters, digits and . _ @ -; not {name[:64]!r}."
            )
        if not isinstance(token, str) or len(token.strip()) < MIN_TOKEN_LENGTH or token != token.strip():
            raise ConfigurationError(
                f"{source}: the token of {name} must be a string of {MIN_TOKEN_LENGTH} characters or more, "
                f"without spaces around it. Make one with: {MAKE_ONE}"
            )
    if len(set(tokens.values())) < len(tokens):
        raise ConfigurationError(f"{source}: two clients share a token; give each its own.")
    return tokens


class ClientTokens:
    """The MCP SDK's ``TokenVerifier``: a request's bearer token is the client whose token it is.

    Tokens are compared as SHA-256 digests with ``hmac.compare_digest``, every one of them on
    every request, so neither a token's length nor which one matched shows in the time taken."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._digests = [(name, _digest(token)) for name, token in tokens.items()]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._digests]

    def client_of(self, token: str) -> str | None:
        presented = _digest(token)
        found = None
        for name, digest in self._digests:
            if hmac.compare_digest(presented, digest):
                found = name
        return found

    async def verify_token(self, token: str) -> AccessToken | None:
        from mcp.server.auth.provider import AccessToken

        name = self.client_of(token)
        return None if name is None else AccessToken(token=token, client_id=name, scopes=[])


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
