"""A relay's successful answer -> ImageGenerationResult. Pure functions, no I/O.

Relays answer in several shapes (see the wire-format notes). Each shape has one reader: a function
that returns a result when it recognises the payload and ``None`` otherwise. ``parse_result`` tries
them in order, so a new shape is one more reader in ``SHAPE_READERS``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from .errors import MalformedResponseError, NoImageError, error_from_response
from .models import GeneratedImage, ImageGenerationResult

ShapeReader = Callable[[dict[str, Any], str], ImageGenerationResult | None]
"""Reads one shape of answer: ``(payload, requested_model) -> result``, or ``None`` if not its shape."""

_SNIPPET = 200


def parse_result(body: bytes, *, requested_model: str) -> ImageGenerationResult:
    """Read a 2xx answer's body. Raises the typed error when it is an error, or holds no image."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise MalformedResponseError(f"The relay's answer is not JSON: {_snippet(body)}") from error
    if not isinstance(payload, dict):
        raise MalformedResponseError(f"The relay's answer is not a JSON object: {_snippet(body)}")
    if payload.get("error"):
        # Some relays report failures with HTTP 200 and an error body.
        raise error_from_response(200, body)
    for read in SHAPE_READERS:
        result = read(payload, requested_model)
        if result is None:
            continue
        if not result.images:
            raise NoImageError(f"The relay's answer held no image: {_snippet(body)}")
        return result
    raise MalformedResponseError(f"The relay's answer is in no known shape: {_snippet(body)}")


def read_images_api_shape(payload: dict[str, Any], requested_model: str) -> ImageGenerationResult | None:
    """The documented shape: ``{"created": ..., "data": [{"url" | "b64_json", "revised_prompt"}]}``."""
    data = payload.get("data")
    if not isinstance(data, list):
        return None
    images = [image for item in data if (image := _image_from_data_item(item)) is not None]
    return ImageGenerationResult(
        created=_timestamp(payload.get("created")),
        model=_string(payload.get("model")) or requested_model,
        images=images,
    )


SHAPE_READERS: tuple[ShapeReader, ...] = (read_images_api_shape,)


def _image_from_data_item(item: object) -> GeneratedImage | None:
    if not isinstance(item, dict):
        return None
    url = _string(item.get("url"))
    b64_json = _string(item.get("b64_json"))
    if not (url or b64_json):
        return None
    return GeneratedImage(url=url, b64_json=b64_json, revised_prompt=_string(item.get("revised_prompt")))


def _string(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _timestamp(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def _snippet(body: bytes) -> str:
    text = body[: _SNIPPET * 4].decode("utf-8", errors="replace")
    return text[:_SNIPPET] + ("..." if len(body) > _SNIPPET else "")
