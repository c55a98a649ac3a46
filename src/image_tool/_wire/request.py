"""The request for one generation: which endpoint, and the JSON or multipart body it takes.

Chat relays and gateways take the prompt as the single user message; the Images API takes it as
``prompt``, and the images to edit as files of a multipart body; Midjourney as an imagine task's
``prompt``. Options a model does not take are refused here, with the values it does take, before
anything is sent. Provider options (``extra_body``) are merged in here too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalog import (
    CUSTOM_SIZE_RULE,
    MAX_NEGATIVE_PROMPT,
    OPTION_NAMES,
    Api,
    ModelFamily,
    custom_size_problem,
)
from ..errors import InvalidRequestError
from . import midjourney
from .imagetypes import image_extension, mime_type

MAX_EDIT_IMAGES = 16
"""The most images one Images API edit takes."""

REFUSED_EXTRA_KEYS: Mapping[str, str] = {
    "model": "the model setting (ImageClient(model=...))",
    "messages": "the prompt, and image_urls= for images to draw from",
    "prompt": "the prompt",
    "n": "n=",
    "stream": "the stream setting (ImageClient(stream=...))",
    "user": "user=",
    "partial_images": "the partial_images setting (ImageClient(partial_images=...))",
}
"""Keys of the body image-tool sets itself, on every endpoint, each with what sets it."""
REFUSED_EXTRA_KEYS_ON: Mapping[str, Mapping[str, str]] = {
    "images": {
        "image": "image_urls=",
        "image[]": "image_urls=",
        "mask": "mask=",
        "async": "the image_jobs setting (ImageClient(image_jobs=...))",
    },
    "midjourney": {"base64Array": "image_urls= (data: URLs)"},
}
"""Keys image-tool sets itself on one endpoint."""


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
    extra_body: Mapping[str, Any] | None = None,
) -> ImageRequest:
    """The request that draws ``n`` images of ``prompt`` with ``model`` (of ``family``).
    ``options`` are the drawing options by name (``catalog.OPTION_NAMES``); ``None`` is unset.
    ``extra_body`` holds provider options: those the family takes are checked as ``options`` are,
    the others are sent as they are (``merged``)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError("The prompt is empty: describe the image to draw.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidRequestError(f"n must be a whole number of images, 1 or more; got {n!r}.")
    if n > family.max_n:
        raise InvalidRequestError(
            f"{model} draws at most {family.max_n} image(s) per request; ask for fewer."
        )
    extra = dict(extra_body or {})
    if problem := extra_body_problem(extra, family.api):
        raise InvalidRequestError(problem)
    chosen = {**family.defaults, **_chosen(model, family, options, extra)}
    if (image_urls or mask) and not family.edits:
        raise InvalidRequestError(f"{model} cannot edit images: leave out the images to edit.")
    if mask and not family.mask:
        raise InvalidRequestError(f"{model} takes no mask: leave it out.")
    if family.api == "chat":
        body = _chat_body(model, family, prompt, n, chosen, user, stream, image_urls)
        return ImageRequest("/chat/completions", json=merged(body, extra))
    if family.api == "midjourney":
        body = midjourney.imagine_body(
            prompt, image_urls, seed=chosen.get("seed"), negative_prompt=chosen.get("negative_prompt")
        )
        return ImageRequest(midjourney.SUBMIT_IMAGINE, json=merged(body, extra))
    body = {"model": model, "prompt": prompt, "n": n, **chosen}
    if user is not None:
        body["user"] = user
    if stream and family.partial_images:
        body |= {"stream": True, "partial_images": partial_images}
    body = merged(body, extra)
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


def extra_body_problem(extra_body: Mapping[str, Any], api: Api) -> str | None:
    """What is wrong with ``extra_body`` for a model drawn on ``api``, naming the fix; ``None``
    when nothing is."""
    refused = {**REFUSED_EXTRA_KEYS, **REFUSED_EXTRA_KEYS_ON.get(api, {})}
    for key in extra_body:
        if not isinstance(key, str):
            return f"extra_body's keys are the body's field names, strings; not {key!r}."
        if key in refused:
            return f"extra_body may not set {key!r}, which image-tool sets itself: use {refused[key]}."
    try:
        json.dumps(dict(extra_body), allow_nan=False)
    except (TypeError, ValueError) as error:
        return f"extra_body holds only JSON values (str, int, float, bool, None, lists and dicts): {error}."
    return None


def merged(body: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with ``extra``'s keys: under a key where both hold a dict, the two merged one level,
    ``body``'s values winning (they are the checked options); any other value of ``extra`` as it is."""
    result = dict(body)
    for key, value in extra.items():
        own = body.get(key)
        result[key] = {**value, **own} if isinstance(own, dict) and isinstance(value, dict) else value
    return result


def _chosen(
    model: str, family: ModelFamily, options: Mapping[str, object | None], extra: dict[str, Any]
) -> dict[str, Any]:
    """The options given, each checked; with those of ``extra`` the family takes, taken out of it
    and checked the same way (one given both ways must be the same)."""
    given = {name: value for name, value in options.items() if value is not None}
    chosen = {name: _checked(model, family, name, value) for name, value in given.items()}
    for name in [key for key in extra if key in OPTION_NAMES and family.takes(key)]:
        value = _checked(model, family, name, extra.pop(name))
        if name in chosen and chosen[name] != value:
            raise InvalidRequestError(
                f"{name} is given twice, as {chosen[name]!r} and in extra_body as {value!r}: give it once."
            )
        chosen[name] = value
    return chosen


def _checked(model: str, family: ModelFamily, name: str, value: object) -> object:
    """``value`` of option ``name``, as the family takes it; else ``InvalidRequestError`` saying
    what it takes."""
    if not family.takes(name):
        raise InvalidRequestError(f"{model} does not take {name}: leave it out.")
    choices = family.choices(name)
    if name == "size" and family.custom_sizes and isinstance(value, str) and value not in choices:
        if problem := custom_size_problem(value):
            raise InvalidRequestError(
                f"{model} takes size {', '.join(choices)}, or WIDTHxHEIGHT with {CUSTOM_SIZE_RULE}; "
                f"not {value!r}: {problem}."
            )
        return value
    if choices and value not in choices:
        raise InvalidRequestError(f"{model} takes {name} {', '.join(choices)}; not {value!r}.")
    if name == "output_compression" and not _whole(value, 100):
        raise InvalidRequestError(f"output_compression is a percentage, 0 to 100; not {value!r}.")
    if name == "seed" and not _whole(value, family.max_seed or 0):
        raise InvalidRequestError(f"{model} takes seed a whole number 0 to {family.max_seed}; not {value!r}.")
    if name == "negative_prompt":
        text = value.strip() if isinstance(value, str) else ""
        if not 1 <= len(text) <= MAX_NEGATIVE_PROMPT:
            raise InvalidRequestError(
                f"negative_prompt is text, 1 to {MAX_NEGATIVE_PROMPT} characters, naming what not to "
                f"draw; not {value!r:.80}."
            )
        return text
    return value


def _whole(value: object, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most


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
    # Gateways take the shape and the resolution in image_config (OpenRouter's; Google's imageConfig).
    image_config = {name: chosen.pop(name) for name in ("aspect_ratio", "image_size") if name in chosen}
    body |= chosen
    if family.modalities:
        body["modalities"] = list(family.modalities)
    if image_config:
        body["image_config"] = image_config
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
    """A JSON value as a multipart text field: a string as it is, any other value as JSON
    (``True`` -> ``true``, ``{"a": 1}`` -> ``{"a": 1}``)."""
    return value if isinstance(value, str) else json.dumps(value)
