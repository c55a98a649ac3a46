"""Saving generated images to disk as soon as they arrive, before their links expire.

A link is downloaded in a stream, never held whole in memory, inflated within the size cap, from
an http client that connects to public addresses only unless allowed (``_io/network.py``); inline
base64 is decoded. The file is written by ``_io/storage.py``'s ``ImageSink``.

Saving never raises: a failure is the image's ``save_error``, with its link kept, so an image that
was generated (and paid for) is never lost to a full disk or a bad host.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from urllib.parse import urljoin

import httpx2

from .._io import tracing
from .._io.runtime import AsyncRuntime
from .._io.storage import (
    DOWNLOAD,
    MAX_REDIRECTS,
    ImageSink,
    SaveOptions,
    check_answer,
    check_scheme,
    decode,
    reason,
    write,
)
from .._wire.body import BodyDecoder, araw_chunks, received_encoding
from ..errors import SaveError
from ..models import GeneratedImage, ImageGenerationResult


async def save_images(
    result: ImageGenerationResult,
    options: SaveOptions,
    downloads: Callable[[], httpx2.AsyncClient],
    slots: AbstractAsyncContextManager[object] | None = None,
) -> ImageGenerationResult:
    """Every image of ``result`` saved under ``options.save_dir``, several at once (``slots``
    bounds the downloads of every call sharing it). ``downloads`` gives the client that fetches a
    link, asked only when there is one. An image that cannot be saved is kept, unsaved, with the
    reason. An interrupted or cancelled call stops each download at its next chunk and removes its
    temporary file."""
    saves = [functools.partial(_save, image, options, downloads, slots) for image in result.images]
    return result.model_copy(update={"images": await AsyncRuntime.each(saves)})


async def _save(
    image: GeneratedImage,
    options: SaveOptions,
    downloads: Callable[[], httpx2.AsyncClient],
    slots: AbstractAsyncContextManager[object] | None,
) -> GeneratedImage:
    try:
        if image.b64_json:
            path = await AsyncRuntime.off_loop(write, options, [decode(image.b64_json, options)])
        elif image.url:
            async with slots or nullcontext():
                path = await download(image.url, options, downloads())
        else:
            return image
    except Exception as error:  # every failure is the image's save_error: the image is kept
        return image.model_copy(update={"save_error": reason(error, options)})
    return image.model_copy(update={"path": path})


async def download(url: str, options: SaveOptions, http: httpx2.AsyncClient) -> Path:
    with tracing.download(url) as traced:
        for _ in range(MAX_REDIRECTS + 1):
            check_scheme(url)
            async with http.stream("GET", url, **DOWNLOAD) as response:
                traced.answered(response.status_code)
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                check_answer(response)
                decoder = BodyDecoder(received_encoding(response), options.max_image_bytes)
                with ImageSink(options) as sink:
                    async for raw in araw_chunks(response):
                        await AsyncRuntime.checkpoint()
                        sink.write_all(decoder.feed(raw))
                    return await AsyncRuntime.off_loop(sink.finish)  # fsync and rename off the loop
        raise SaveError(f"more than {MAX_REDIRECTS} redirects")
