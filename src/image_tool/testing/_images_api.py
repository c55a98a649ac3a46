"""The OpenAI Images API as FakeRelay serves it: ``POST /v1/images/generations`` (JSON) and
``POST /v1/images/edits`` (``multipart/form-data``), read and checked as OpenAI does, answered
whole or as server-sent events.

Three model families: ``gpt-image*`` (base64 in the asked ``output_format``, usage, streaming),
``dall-e-3`` (links or base64 with a ``revised_prompt``, one image, no streaming, no edits), and
any other model, answered as ``dall-e-3`` but with up to ten images in the sizes of either family.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

from ._answers import EVENT_STREAM_HEADERS, Answer, Plain, Stream
from ._formats import encoded_image
from ._images_request import ImagesRequest
from ._png import png_image
from ._replies import Reply

OUTPUT_TOKENS = {
    ("square", "low"): 272,
    ("square", "medium"): 1056,
    ("square", "high"): 4160,
    ("oblong", "low"): 408,
    ("oblong", "medium"): 1584,
    ("oblong", "high"): 6240,
}
"""gpt-image-1's output tokens per image, by shape (1024x1024 or 1536x1024 either way) and quality."""
INPUT_IMAGE_TOKENS = 194
"""Input tokens per image given to an edit: 65 + 129 for the one 512-pixel tile it is scaled to."""
PARTIAL_IMAGE_SIDE = 64
"""Streamed previews are small PNGs of their own, unlike the final image."""


def images_answer(request: ImagesRequest, origin: str, reply: Reply) -> Answer:
    """The Images API's answer, as the reply scripts it (transport faults aside)."""
    headers = tuple(reply.headers.items())
    if reply.body is not None:
        return Plain(reply.status, reply.body, headers)
    if request.stream:
        return Stream(_events(request, reply), (*EVENT_STREAM_HEADERS, *headers))
    return Plain(reply.status, images_body(request, origin), headers)


def images_body(request: ImagesRequest, origin: str) -> bytes:
    """The whole answer: gpt-image's base64 images with their settings and usage, or the
    ``dall-e-3`` shape (``url`` or ``b64_json``, and ``revised_prompt``)."""
    created = int(time.time())
    if request.family == "gpt-image":
        return _json(
            {
                "created": created,
                **_settings(request),
                "data": [{"b64_json": _base64(_image(request, index))} for index in range(request.n)],
                "usage": _usage(request, request.n),
            }
        )
    data = []
    for index in range(request.n):
        if request.response_format == "b64_json":
            item = {"b64_json": _base64(png_image(request.width, request.height, request.token(index)))}
        else:
            item = {"url": f"{origin}/images/{request.size}/{request.token(index)}.png"}
        data.append({**item, "revised_prompt": request.revised_prompt})
    return _json({"created": created, "data": data})


def _events(request: ImagesRequest, reply: Reply) -> Iterator[bytes]:
    """The stream, and what its fault does to it: an error event after the first event, the
    last event missing, or final events without their image."""
    events = _image_events(request, with_images=reply.stream_fault != "done_without_image")
    if reply.stream_fault == "error_mid_stream":
        yield next(events)
        yield _stream_error()
    elif reply.stream_fault == "cut_before_done":
        held = next(events)
        for event in events:
            yield held
            held = event
    else:
        yield from events


def _image_events(request: ImagesRequest, *, with_images: bool) -> Iterator[bytes]:
    """For each image, ``partial_images`` previews then the final image with its usage; no ``[DONE]``."""
    kind = "image_generation" if request.endpoint == "generations" else "image_edit"
    for index in range(request.n):
        for partial in range(request.partial_images):
            preview = png_image(PARTIAL_IMAGE_SIDE, PARTIAL_IMAGE_SIDE, f"{request.token(index)}|{partial}")
            payload = {
                "type": f"{kind}.partial_image",
                "b64_json": _base64(preview),
                "partial_image_index": partial,
                "created_at": int(time.time()),
                **_settings(request, streamed=True),
            }
            yield _event(payload)
        image = {"b64_json": _base64(_image(request, index))} if with_images else {}
        completed = {
            "type": f"{kind}.completed",
            **image,
            "created_at": int(time.time()),
            **_settings(request, streamed=True),
            "usage": _usage(request, 1),  # each final image carries its own, as if asked alone
        }
        yield _event(completed)


def _settings(request: ImagesRequest, *, streamed: bool = False) -> dict[str, Any]:
    """The resolved settings, in the order OpenAI writes them in a body or in an event."""
    names = ("size", "quality", "background", "output_format")
    values = {name: getattr(request, name) for name in names}
    return {name: values[name] for name in (names if streamed else sorted(names))}


def _usage(request: ImagesRequest, images: int) -> dict[str, Any]:
    text_tokens = max(1, len(request.prompt.split()))
    image_tokens = INPUT_IMAGE_TOKENS * request.input_images
    shape = "square" if request.width == request.height else "oblong"
    output_tokens = OUTPUT_TOKENS[shape, request.quality] * images
    return {
        "input_tokens": text_tokens + image_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        "output_tokens": output_tokens,
        "total_tokens": text_tokens + image_tokens + output_tokens,
    }


def _image(request: ImagesRequest, index: int) -> bytes:
    return encoded_image(request.output_format, request.width, request.height, request.token(index))


def _stream_error() -> bytes:
    error = {"message": "The server had an error while processing your request.", "type": "server_error"}
    return _event({"type": "error", "error": {**error, "param": None, "code": "server_error"}})


def _event(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()
