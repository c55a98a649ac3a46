"""Reference images for edits: links passed on as they are, allowed local files as data URLs."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from .._wire.imagetypes import MIME_TYPES, image_extension
from ..errors import ReferenceImageError

MAX_REFERENCE_BYTES = 20 * 1024 * 1024


def reference_urls(
    values: Sequence[str], allowed_dirs: Sequence[Path], max_bytes: int = MAX_REFERENCE_BYTES
) -> list[str]:
    """What to send for each reference: an http(s) or data URL as it is, or a local file, from one
    of ``allowed_dirs`` only, read into a ``data:`` URL after its size and type are checked."""
    return [value if _is_url(value) else _data_url(value, allowed_dirs, max_bytes) for value in values]


def _is_url(value: str) -> bool:
    return value.startswith(("https://", "http://", "data:image/"))


def _data_url(value: str, allowed_dirs: Sequence[Path], max_bytes: int) -> str:
    shown = value if len(value) <= 200 else value[:197] + "..."
    try:
        return _read_data_url(value, shown, allowed_dirs, max_bytes)
    except (OSError, ValueError, RuntimeError) as error:
        # A null byte, a name too long, a symlink loop, a file that cannot be read...
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ReferenceImageError(f"{shown}: cannot be read ({reason[:100]})") from error


def _read_data_url(value: str, shown: str, allowed_dirs: Sequence[Path], max_bytes: int) -> str:
    path = Path(value.removeprefix("file://")).expanduser().resolve()
    if not any(path.is_relative_to(directory.expanduser().resolve()) for directory in allowed_dirs):
        raise ReferenceImageError(
            f"{shown}: not an http(s) link, nor a file in a directory this application allows"
        )
    if not path.is_file():
        raise ReferenceImageError(f"{shown}: no such file")
    if path.stat().st_size > max_bytes:
        raise ReferenceImageError(f"{shown}: larger than {max_bytes} bytes")
    data = path.read_bytes()
    extension = image_extension(data[:16])
    if extension is None:
        raise ReferenceImageError(f"{shown}: not a PNG, JPEG, WebP or GIF image")
    return f"data:{MIME_TYPES[extension]};base64,{base64.b64encode(data).decode()}"
