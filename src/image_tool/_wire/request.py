"""The request for one generation: which endpoint, and the JSON or multipart body it takes.

Chat relays and gateways take the prompt as the single user message; the Images API takes it as
``prompt``, and the images to edit as files of a multipart body. Options a model does not take
are refused here, with the values it does take, before anything is sent.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalog import ModelFamily
from ..errors import InvalidRequestError
from .imagetypes import image_extension, mime_type

MAX_EDIT_IMAGES = 16
"""The most images one Images API edit takes."""


@dataclass(frozen=True)
class ImageRequest:
    """What to post, relative to the base URL: a JSON body, or multipart fields and files."""

    path: str
    json: dict[str, Any] | None = None
    fields: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, tuple[str, bytes, str]]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """httpx2's keyword arguments for the body."""
        if self.json is not None:
            return {"json": self.json}
        return {"data": self.fields, "files": self.files}


def build_request(
    model: str,
    family: ModelFamily,
    prompt: str,
    *,
    n: int,
    options: Mapping[str, object | None],
    user: str | None = None,
    stream: bool = False,
    partial_images: int = 0,
    image_urls: Sequence[str] = (),
    mask: str | None = None,
) -> ImageRequest:
    """The request that draws ``n`` images of ``prompt`` with ``model`` (of ``family``).
    ``options`` are the drawing options by name (``catalog.OPTION_NAMES``); ``None`` is unset."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError("The prompt is empty: describe the image to draw.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidRequestError(f"n must be a whole number of images, 1 or more; got {n!r}.")
    if n > family.max_n:
        raise InvalidRequestError(
            f"{model} draws at most {family.max_n} image(s) per request; ask for fewer."
        )
    chosen = {**family.defaults, **_checked(model, family, options)}
    if (image_urls or mask) and not family.edits:
        raise InvalidRequestError(f"{model} cannot edit images: leave out the images to edit.")
    if mask and not family.mask:
        raise InvalidRequestError(f"{model} takes no mask: leave it out.")
    if family.api == "chat":
        return ImageRequest(
            "/chat/completions", _chat_body(model, family, prompt, n, chosen, user, stream, image_urls)
        )
    body = {"model": model, "prompt": prompt, "n": n, **chosen}
    if user is not None:
        body["user"] = user
    if stream and family.partial_images:
        body |= {"stream": True, "partial_images": partial_images}
    if not image_urls:
        if mask:
            raise InvalidRequestError("A mask needs the image it applies to: give the image to edit too.")
        return ImageRequest("/images/generations", json=body)
    if len(image_urls) > MAX_EDIT_IMAGES:
        raise InvalidRequestError(f"An edit takes at most {MAX_EDIT_IMAGES} images; got {len(image_urls)}.")
    files = [("image[]", _file(url, f"image-{index}")) for index, url in enumerate(image_urls, 1)]
    if mask:
        name, data, kind = _file(mask, "mask")
        if kind != "image/png":
            raise InvalidRequestError("The mask must be a PNG image (transparent where to draw).")
        files.append(("mask", (name, data, kind)))
    return ImageRequest(
        "/images/edits", fields={key: _field(value) for key, value in body.items()}, files=files
    )


def _checked(model: str, family: ModelFamily, options: Mapping[str, object | None]) -> dict[str, Any]:
    """The options given, each one the family takes with a value it takes."""
    given = {name: value for name, value in options.items() if value is not None}
    for name, value in given.items():
        if not family.takes(name):
            raise InvalidRequestError(f"{model} does not take {name}: leave it out.")
        choices = family.choices(name)
        if choices and value not in choices:
            raise InvalidRequestError(f"{model} takes {name} {', '.join(choices)}; not {value!r}.")
    compression = given.get("output_compression")
    if compression is not None and (
        isinstance(compression, bool) or not isinstance(compression, int) or not 0 <= compression <= 100
    ):
        raise InvalidRequestError(f"output_compression is a percentage, 0 to 100; not {compression!r}.")
    return given


def _chat_body(
    model: str,
    family: ModelFamily,
    prompt: str,
    n: int,
    chosen: dict[str, Any],
    user: str | None,
    stream: bool,
    image_urls: Sequence[str],
) -> dict[str, Any]:
    content: str | list[dict[str, Any]] = prompt
    if image_urls:
        references = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
        content = [{"type": "text", "text": prompt}, *references]
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}], "n": n}
    aspect_ratio = chosen.pop("aspect_ratio", None)
    body |= chosen
    if family.modalities:
        body["modalities"] = list(family.modalities)
    if aspect_ratio is not None:
        body["image_config"] = {"aspect_ratio": aspect_ratio}
    if user is not None:
        body["user"] = user
    if stream:
        body["stream"] = True
    return body


def _file(url: str, stem: str) -> tuple[str, bytes, str]:
    """A ``data:`` URL as an upload: its file name, bytes and MIME type (told from the bytes)."""
    if not url.startswith("data:"):
        raise InvalidRequestError(
            "The Images API takes the images to edit as files: give a saved image's path or a data: "
            f"URL, not a link ({url[:80]}). With save_dir set, every generated image is saved."
        )
    header, _, encoded = url.partition(",")
    try:
        data = base64.b64decode(encoded, validate=True) if header.endswith(";base64") else b""
    except (binascii.Error, ValueError):
        data = b""
    extension = image_extension(data[:16])
    if extension is None:
        raise InvalidRequestError(f"{stem}: not a base64 PNG, JPEG, WebP or GIF data: URL.")
    return f"{stem}{extension}", data, mime_type(data[:16])


def _field(value: object) -> str:
    """A JSON value as a multipart text field (``True`` -> ``true``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
