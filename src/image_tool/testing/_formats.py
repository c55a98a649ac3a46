"""Real images in each output format of the Images API, and telling formats apart by their bytes."""

from __future__ import annotations

import base64
from typing import Literal

from ._png import PNG_SIGNATURE, png_image

OutputFormat = Literal["png", "jpeg", "webp"]
"""The encodings the Images API answers in (``output_format``)."""

JPEG_IMAGE = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1R"
    "V19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAP/xAAUEAEAAAAAAAAAAAAA"
    "AAAAAAAA/8QAFAEBAAAAAAAAAAAAAAAAAAAABf/EABQRAQAAAAAAAAAAAAAAAAAAAAD/2gAMAwEAAhEDEQA/AKABiz//2Q=="
)
"""An 8x8 orange baseline JPEG (JFIF, 4:2:0), 286 bytes, made once with Pillow."""

WEBP_IMAGE = base64.b64decode("UklGRh4AAABXRUJQVlA4TBEAAAAvB8ABAAdQvCIXpf+BiOh/AAA=")
"""The same 8x8 orange square as a lossless WebP (VP8L), 38 bytes."""


def encoded_image(output_format: OutputFormat, width: int, height: int, seed: str) -> bytes:
    """An image in ``output_format``: a ``width`` x ``height`` PNG, or the constant JPEG or WebP
    (their size is always 8x8: only the encoding is real)."""
    if output_format == "jpeg":
        return JPEG_IMAGE
    if output_format == "webp":
        return WEBP_IMAGE
    return png_image(width, height, seed)


def image_format(data: bytes) -> OutputFormat | None:
    """The image's format by its signature, or None when it is none of the three."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None
