"""Which kind of image a file or an answer holds, told from its first bytes."""

from __future__ import annotations

import base64
import binascii

MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
)


def image_extension(head: bytes) -> str | None:
    """``.png``, ``.jpg``, ``.webp`` or ``.gif`` from a file's first bytes; ``None`` otherwise."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((extension for signature, extension in _SIGNATURES if head.startswith(signature)), None)


def mime_type(head: bytes, default: str = "image/png") -> str:
    """The MIME type the bytes say they are; ``default`` when they say nothing known."""
    return MIME_TYPES.get(image_extension(head) or "", default)


def base64_mime_type(b64: str, default: str = "image/png") -> str:
    """``mime_type`` of base64 text, from its first 24 characters (18 bytes) only."""
    try:
        head = base64.b64decode(b64[:24], validate=False)
    except (binascii.Error, ValueError):
        return default
    return mime_type(head, default)
