"""Saving generated images to disk as soon as they arrive, before their links expire.

A link is downloaded in a stream, never held whole in memory, inflated within the size cap, from
an http client that connects to public addresses only unless allowed (``network.py``); inline
base64 is decoded. The type is checked from the bytes, the name comes from the content, and the
file appears under its name only once it is complete: a failed or interrupted save leaves nothing.

Saving never raises: a failure is the image's ``save_error``, with its link kept, so an image that
was generated (and paid for) is never lost to a full disk or a bad host.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx2

from .._policy.retries import current_deadline
from .._wire.body import (
    ACCEPT_ENCODING,
    BodyDecoder,
    UnreadableBodyError,
    araw_chunks,
    raw_chunks,
    received_encoding,
)
from .._wire.imagetypes import image_extension
from .._wire.redaction import scrub
from ..errors import ConfigurationError, SaveError
from ..models import GeneratedImage, ImageGenerationResult
from .pooling import MAX_DOWNLOADS

MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT = httpx2.Timeout(120.0, connect=10.0)
_DOWNLOAD: dict[str, Any] = {
    "timeout": DOWNLOAD_TIMEOUT,
    "follow_redirects": False,  # each hop is checked here
    "headers": {"Accept-Encoding": ACCEPT_ENCODING},
}
_MAX_REASON = 300


@dataclass(frozen=True)
class SaveOptions:
    save_dir: Path
    max_image_bytes: int


def save_images(
    result: ImageGenerationResult,
    options: SaveOptions,
    downloads: Callable[[], httpx2.Client],
    slots: threading.Semaphore | None = None,
) -> ImageGenerationResult:
    """Every image of ``result`` saved under ``options.save_dir``, several at once (``slots``
    bounds the downloads of every call sharing it). ``downloads`` gives the client that fetches a
    link, asked only when there is one: an image whose client cannot be had is kept, unsaved, with
    the reason. An interrupt (Ctrl-C) stops each download at its next chunk and removes its
    temporary file before it is raised."""
    if not result.images:
        return result
    cancelled = threading.Event()
    workers = ThreadPoolExecutor(max_workers=min(MAX_DOWNLOADS, len(result.images)))
    try:
        # Each job runs in a copy of this context: the call's deadline bounds its waits too.
        futures = [
            workers.submit(contextvars.copy_context().run, _save, image, options, downloads, slots, cancelled)
            for image in result.images
        ]
        images = [future.result() for future in futures]
    except BaseException:
        cancelled.set()
        raise
    finally:
        workers.shutdown(wait=True, cancel_futures=True)
    return result.model_copy(update={"images": images})


async def asave_images(
    result: ImageGenerationResult,
    options: SaveOptions,
    downloads: Callable[[], httpx2.AsyncClient],
    slots: asyncio.Semaphore | None = None,
) -> ImageGenerationResult:
    """Async twin of ``save_images``: the downloads run concurrently on the event loop; a
    cancelled call removes the temporary files of its downloads."""
    images = await asyncio.gather(*(_asave(image, options, downloads, slots) for image in result.images))
    return result.model_copy(update={"images": list(images)})


def _save(
    image: GeneratedImage,
    options: SaveOptions,
    downloads: Callable[[], httpx2.Client],
    slots: threading.Semaphore | None,
    cancelled: threading.Event,
) -> GeneratedImage:
    try:
        if image.b64_json:
            path = _write(options, [_decode(image.b64_json, options)])
        elif image.url:
            with slots or contextlib.nullcontext():
                path = _download(image.url, options, downloads(), cancelled)
        else:
            return image
    except Exception as error:  # every failure is the image's save_error: the image is kept
        return image.model_copy(update={"save_error": _reason(error, options)})
    return image.model_copy(update={"path": path})


async def _asave(
    image: GeneratedImage,
    options: SaveOptions,
    downloads: Callable[[], httpx2.AsyncClient],
    slots: asyncio.Semaphore | None,
) -> GeneratedImage:
    try:
        if image.b64_json:
            path = await asyncio.to_thread(_write, options, [_decode(image.b64_json, options)])
        elif image.url:
            async with slots or contextlib.nullcontext():
                path = await _adownload(image.url, options, downloads())
        else:
            return image
    except Exception as error:
        return image.model_copy(update={"save_error": _reason(error, options)})
    return image.model_copy(update={"path": path})


def _download(url: str, options: SaveOptions, http: httpx2.Client, cancelled: threading.Event) -> Path:
    for _ in range(MAX_REDIRECTS + 1):
        _check_scheme(url)
        with http.stream("GET", url, **_DOWNLOAD) as response:
            if response.is_redirect:
                url = urljoin(url, response.headers.get("location", ""))
                continue
            _check_answer(response)
            decoder = BodyDecoder(received_encoding(response), options.max_image_bytes)
            with _ImageSink(options) as sink:
                for raw in raw_chunks(response):
                    if cancelled.is_set():
                        raise SaveError("cancelled")
                    sink.write_all(decoder.feed(raw))
                return sink.finish()
    raise SaveError(f"more than {MAX_REDIRECTS} redirects")


async def _adownload(url: str, options: SaveOptions, http: httpx2.AsyncClient) -> Path:
    for _ in range(MAX_REDIRECTS + 1):
        _check_scheme(url)
        async with http.stream("GET", url, **_DOWNLOAD) as response:
            if response.is_redirect:
                url = urljoin(url, response.headers.get("location", ""))
                continue
            _check_answer(response)
            decoder = BodyDecoder(received_encoding(response), options.max_image_bytes)
            with _ImageSink(options) as sink:
                async for raw in araw_chunks(response):
                    sink.write_all(decoder.feed(raw))
                return await asyncio.to_thread(sink.finish)  # fsync and rename off the loop
    raise SaveError(f"more than {MAX_REDIRECTS} redirects")


def _check_scheme(url: str) -> None:
    """Only http(s) links with a host are fetched."""
    try:
        parsed = httpx2.URL(url)
    except httpx2.InvalidURL as error:
        raise SaveError(f"not a valid link: {url[:100]}") from error
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SaveError(f"only http and https links are downloaded, not {url[:100]}")


def _check_answer(response: httpx2.Response) -> None:
    if not response.is_success:
        raise SaveError(f"HTTP {response.status_code} from the image host (the link may have expired)")


def _decode(b64_json: str, options: SaveOptions) -> bytes:
    try:
        data = base64.b64decode(b64_json, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SaveError("the inline image is not valid base64") from error
    if len(data) > options.max_image_bytes:
        raise SaveError(f"the image is larger than {options.max_image_bytes} bytes")
    return data


def _write(options: SaveOptions, chunks: Iterable[bytes]) -> Path:
    with _ImageSink(options) as sink:
        sink.write_all(chunks)
        return sink.finish()


def _reason(error: Exception, options: SaveOptions) -> str:
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


class _ImageSink:
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

    def __enter__(self) -> _ImageSink:
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
