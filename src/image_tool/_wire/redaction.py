"""Keeping secrets out of what image-tool shows: the key, anything shaped like a key, URL passwords.

Every string that came from a relay passes through here before it enters an exception, a log
record, a tool message or a result: relays echo keys back, in messages, codes and even prompts.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
_KEY_SHAPED = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")
_SHORTEST_KEY_START = 4  # "sk-" alone says nothing of a key


def scrub(text: str, secret: str = "") -> str:
    """``text`` without ``secret`` and without anything shaped like an API key (``sk-...``)."""
    if secret:
        text = text.replace(secret, REDACTED)
    return _KEY_SHAPED.sub(REDACTED, text) if "sk-" in text else text


def scrub_unfinished(text: str, secret: str) -> str:
    """``scrub``, for text that may stop in the middle of the key (a streamed line still
    arriving): a tail that begins the key is cut too."""
    text = scrub(text, secret)
    for size in range(len(secret) - 1, _SHORTEST_KEY_START - 1, -1):
        if text.endswith(secret[:size]):
            return text[:-size] + REDACTED
    return text


def scrub_bytes(body: bytes, secret: str) -> bytes:
    """A relay's raw answer without the key, before anything reads it."""
    return body.replace(secret.encode(), REDACTED.encode()) if secret else body


def display_url(url: str) -> str:
    """``url`` as it may be shown: without a user name or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "(an unreadable URL)"
    if not (parts.username or parts.password) or host is None:
        return url
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
