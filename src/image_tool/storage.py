"""Saving generated images to disk as soon as they arrive, before their links expire.

A link is downloaded in a stream, never held whole in memory, with a size cap, from public
addresses only unless allowed; inline base64 is decoded. The type is checked from the bytes, the
name comes from the content, and the file appears under its name only once it is complete.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import ipaddress
import os
import socket
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from .errors import SaveError
from .models import GeneratedImage, ImageGenerationResult

MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
)


@dataclass(frozen=True)
class SaveOptions:
    save_dir: Path
    allow_private_downloads: bool
    max_image_bytes: int


def save_images(
    result: ImageGenerationResult, options: SaveOptions, http: httpx.Client
) -> ImageGenerationResult:
    """Every image of ``result`` saved under ``options.save_dir``, several at once."""
    with ThreadPoolExecutor(max_workers=min(8, len(result.images)) or 1) as pool:
        images = list(pool.map(lambda image: _save(image, options, http), result.images))
    return result.model_copy(update={"images": images})


async def asave_images(
    result: ImageGenerationResult, options: SaveOptions, http: httpx.AsyncClient
) -> ImageGenerationResult:
    """Async twin of ``save_images``: the downloads run concurrently on the event loop."""
    images = await asyncio.gather(*(_asave(image, options, http) for image in result.images))
    return result.model_copy(update={"images": list(images)})


def image_extension(head: bytes) -> str | None:
    """``.png``, ``.jpg``, ``.webp`` or ``.gif`` from a file's first bytes; ``None`` otherwise."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((extension for signature, extension in _SIGNATURES if head.startswith(signature)), None)


def _save(image: GeneratedImage, options: SaveOptions, http: httpx.Client) -> GeneratedImage:
    try:
        if image.b64_json:
            path = _write(options, [_decode(image.b64_json)])
        elif image.url:
            path = _download(image.url, options, http)
        else:
            return image
    except SaveError as error:
        return image.model_copy(update={"save_error": str(error)})
    return image.model_copy(update={"path": path})


async def _asave(image: GeneratedImage, options: SaveOptions, http: httpx.AsyncClient) -> GeneratedImage:
    try:
        if image.b64_json:
            path = await asyncio.to_thread(_write, options, [_decode(image.b64_json)])
        elif image.url:
            path = await _adownload(image.url, options, http)
        else:
            return image
    except SaveError as error:
        return image.model_copy(update={"save_error": str(error)})
    return image.model_copy(update={"path": path})


def _download(url: str, options: SaveOptions, http: httpx.Client) -> Path:
    for _ in range(MAX_REDIRECTS + 1):
        host, port = _checked_target(url)
        if not options.allow_private_downloads:
            _check_public(host, _resolve(host, port))
        try:
            with http.stream("GET", url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=False) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                _check_answer(response)
                with _ImageSink(options) as sink:
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
                    return sink.finish()
        except httpx.HTTPError as error:
            raise SaveError(f"download failed: {error or type(error).__name__}") from error
    raise SaveError(f"more than {MAX_REDIRECTS} redirects")


async def _adownload(url: str, options: SaveOptions, http: httpx.AsyncClient) -> Path:
    for _ in range(MAX_REDIRECTS + 1):
        host, port = _checked_target(url)
        if not options.allow_private_downloads:
            _check_public(host, await _aresolve(host, port))
        try:
            async with http.stream("GET", url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=False) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                _check_answer(response)
                with _ImageSink(options) as sink:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
                    return await asyncio.to_thread(sink.finish)  # fsync and rename off the loop
        except httpx.HTTPError as error:
            raise SaveError(f"download failed: {error or type(error).__name__}") from error
    raise SaveError(f"more than {MAX_REDIRECTS} redirects")


def _checked_target(url: str) -> tuple[str, int]:
    """The host and port of an http(s) link; other schemes are refused."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise SaveError(f"not a valid link: {url[:100]}") from error
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SaveError(f"only http and https links are downloaded, not {url[:100]}")
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


def _resolve(host: str, port: int) -> list[str]:
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except OSError as error:
        raise SaveError(f"could not resolve {host}: {error}") from error


async def _aresolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise SaveError(f"could not resolve {host}: {error}") from error
    return [str(info[4][0]) for info in infos]


def _check_public(host: str, addresses: Iterable[str]) -> None:
    """A hostile relay could point at internal services: only public addresses are fetched."""
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not ip.is_global:
            raise SaveError(
                f"refused to download from {host} ({ip}): a loopback, private, link-local or metadata "
                "address; set allow_private_downloads=True to allow it for local use"
            )


def _check_answer(response: httpx.Response) -> None:
    if not response.is_success:
        raise SaveError(f"HTTP {response.status_code} from the image host (the link may have expired)")


def _decode(b64_json: str) -> bytes:
    try:
        return base64.b64decode(b64_json, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SaveError("the inline image is not valid base64") from error


def _write(options: SaveOptions, chunks: Iterable[bytes]) -> Path:
    with _ImageSink(options) as sink:
        for chunk in chunks:
            sink.write(chunk)
        return sink.finish()


class _ImageSink:
    """Writes an image to a hidden temporary file, hashing and capping it as it goes; ``finish``
    renames it to ``<sha256 of the content><extension>``, so a crash never leaves a half file.
    Leaving the ``with`` block on an error discards the temporary file."""

    def __init__(self, options: SaveOptions) -> None:
        options.save_dir.mkdir(parents=True, exist_ok=True)
        self._options = options
        descriptor, name = tempfile.mkstemp(dir=options.save_dir, prefix=".image-", suffix=".part")
        self._file: Any = os.fdopen(descriptor, "wb")
        self._temporary = Path(name)
        self._digest = hashlib.sha256()
        self._head = b""
        self._size = 0

    def __enter__(self) -> _ImageSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self.discard()

    def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._options.max_image_bytes:
            raise SaveError(f"the image is larger than {self._options.max_image_bytes} bytes")
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
        path = self._options.save_dir / f"{self._digest.hexdigest()[:32]}{extension}"
        os.replace(self._temporary, path)
        return path

    def discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._temporary.unlink()
