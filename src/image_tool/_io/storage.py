"""Saving an image's bytes to disk: what the sync and async saving (``_async/saving.py``) share.

The type is checked from the bytes, the name comes from the content, and the file appears under
its name only once it is complete: a failed or interrupted save leaves nothing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from .._policy.retries import current_deadline
from .._wire.body import (
    ACCEPT_ENCODING,
    UnreadableBodyError,
)
from .._wire.imagetypes import image_extension
from .._wire.redaction import scrub
from ..errors import ConfigurationError, SaveError

MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT = httpx2.Timeout(120.0, connect=10.0)
DOWNLOAD: dict[str, Any] = {
    "timeout": DOWNLOAD_TIMEOUT,
    "follow_redirects": False,  # each hop is checked by the saving
    "headers": {"Accept-Encoding": ACCEPT_ENCODING},
}
_MAX_REASON = 300


@dataclass(frozen=True)
class SaveOptions:
    save_dir: Path
    max_image_bytes: int


def check_scheme(url: str) -> None:
    """Only http(s) links with a host are fetched."""
    try:
        parsed = httpx2.URL(url)
    except httpx2.InvalidURL as error:
        raise SaveError(f"not a valid link: {url[:100]}") from error
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SaveError(f"only http and https links are downloaded, not {url[:100]}")


def check_answer(response: httpx2.Response) -> None:
    if not response.is_success:
        raise SaveError(f"HTTP {response.status_code} from the image host (the link may have expired)")


def decode(b64_json: str, options: SaveOptions) -> bytes:
    try:
        data = base64.b64decode(b64_json, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SaveError("the inline image is not valid base64") from error
    if len(data) > options.max_image_bytes:
        raise SaveError(f"the image is larger than {options.max_image_bytes} bytes")
    return data


def write(options: SaveOptions, chunks: Iterable[bytes]) -> Path:
    with ImageSink(options) as sink:
        sink.write_all(chunks)
        return sink.finish()


def reason(error: Exception, options: SaveOptions) -> str:
    """Why an image was not saved, in a sentence that never is empty."""
    if isinstance(error, SaveError | ConfigurationError):
        reason = str(error)
    elif isinstance(error, OSError):
        reason = f"could not write to {options.save_dir}: {error.strerror or _text(error)}"
    elif isinstance(error, UnreadableBodyError):
        reason = f"the download is {error}"
    elif isinstance(error, httpx2.TimeoutException):
        deadline = current_deadline()
        reason = (
            f"the call's total timeout of {deadline.seconds:g} s ran out during the download"
            if deadline is not None and deadline.expired()
            else "the image host did not answer in time"
        )
    elif isinstance(error, httpx2.HTTPError):
        reason = f"download failed: {_text(error)}"
    else:
        reason = f"unexpected {_text(error)}"
    reason = scrub(reason)
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


def _text(error: BaseException) -> str:
    """``Kind: message``, or the kind alone: some exceptions carry no message."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def check_writable(save_dir: Path) -> None:
    """``save_dir`` made if missing, and proven writable (a file made and removed in it), before
    a generation is paid for; else a ``ConfigurationError`` naming the folder and the setting."""
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=save_dir):
            pass
    except OSError as error:
        raise ConfigurationError(
            f"Images cannot be saved in {save_dir} ({error.strerror or error}): nothing was sent. "
            "Choose a folder you can write to (save_dir=..., or image-tool's --save)."
        ) from None


class ImageSink:
    """Writes an image to a hidden temporary file, hashing it as it goes; ``finish`` renames it to
    ``<sha256 of the content><extension>``, so a crash never leaves a half file. Leaving the
    ``with`` block on an error (or a cancellation) removes the temporary file."""

    def __init__(self, options: SaveOptions) -> None:
        options.save_dir.mkdir(parents=True, exist_ok=True)
        self._save_dir = options.save_dir
        descriptor, name = tempfile.mkstemp(dir=options.save_dir, prefix=".image-", suffix=".part")
        self._temporary = Path(name)
        self._file: Any = os.fdopen(descriptor, "wb")
        self._digest = hashlib.sha256()
        self._head = b""

    def __enter__(self) -> ImageSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self.discard()

    def write_all(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            if len(self._head) < 16:
                self._head += chunk[:16]
            self._digest.update(chunk)
            self._file.write(chunk)

    def finish(self) -> Path:
        extension = image_extension(self._head)
        if extension is None:
            raise SaveError("the file is not a PNG, JPEG, WebP or GIF image")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        path = self._save_dir / f"{self._digest.hexdigest()[:32]}{extension}"
        os.replace(self._temporary, path)
        return path

    def discard(self) -> None:
        try:
            self._file.close()
        except (OSError, ValueError):
            pass  # a full disk fails the last flush too: the file goes all the same
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._temporary.unlink()
