"""The ``gateway`` profile's answers: OpenRouter's and the Vercel AI Gateway's way of drawing on the
chat endpoint, the images beside the text in ``message.images`` (streamed: ``delta.images``)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from ._answers import Answer, GenerationRequest, Plain, Stream, request_fields
from ._png import png_image
from ._replies import Reply

ASPECT_RATIOS = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
"""``image_config.aspect_ratio`` -> the drawn size (Gemini's table)."""
IMAGE_SIZES = {"1K": 1, "2K": 2, "4K": 4}
"""``image_config.image_size`` (Gemini 3) -> how many times the 1K size each side is drawn."""
IMAGE_TOKENS = 1290
"""Completion tokens per image: Gemini 2.5 Flash Image's figure, at every aspect ratio."""
_PIECE = 12


@dataclass(frozen=True)
class GatewayRequest(GenerationRequest):
    """A chat request to the gateway: its size comes from ``image_config.aspect_ratio``."""

    draws: bool = False
    """``modalities`` holds ``"image"``: without it the gateway answers in text alone."""


def read_gateway_request(body: bytes) -> GatewayRequest:
    """The request's fields; ``ValueError`` names what is wrong (an unknown aspect ratio or
    resolution among them)."""
    request = json.loads(body)
    config = request.get("image_config")
    ratio = (config.get("aspect_ratio") if isinstance(config, dict) else None) or "1:1"
    if not isinstance(ratio, str) or ratio not in ASPECT_RATIOS:
        allowed = ", ".join(ASPECT_RATIOS)
        raise ValueError(f"image_config.aspect_ratio {ratio!r} is not supported: expected one of {allowed}")
    resolution = (config.get("image_size") if isinstance(config, dict) else None) or "1K"
    if not isinstance(resolution, str) or resolution not in IMAGE_SIZES:
        raise ValueError(f"image_config.image_size {resolution!r} is not supported: expected 1K, 2K or 4K")
    width, height = (side * IMAGE_SIZES[resolution] for side in ASPECT_RATIOS[ratio])
    fields = asdict(request_fields({**request, "size": None}))  # a gateway takes no size
    modalities = request.get("modalities")
    draws = isinstance(modalities, list) and "image" in modalities
    return GatewayRequest(**{**fields, "width": width, "height": height}, draws=draws)


def gateway_answer(request: GenerationRequest, origin: str, reply: Reply) -> Answer:
    """A completion whose message holds a short sentence and, when the request asked for the image
    modality, ``n`` inline PNGs; a reply's ``body`` or ``content`` stands instead, as on the vendor."""
    headers = tuple(reply.headers.items())
    if reply.body is not None:
        return Plain(reply.status, reply.body, headers)
    draws = isinstance(request, GatewayRequest) and request.draws and reply.content is None
    images = [_image(request, index) for index in range(request.n)] if draws else []
    text = reply.content if reply.content is not None else _sentence(request, len(images))
    model = reply.model or request.model
    usage = _usage(request, text, len(images))
    if request.stream:
        return Stream(_events(text, images, model, usage))
    message = {"role": "assistant", "content": text, **({"images": images} if images else {})}
    completion = {
        **_head(model, "chat.completion"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
    }
    return Plain(reply.status, _json(completion), headers)


def _events(text: str, images: list[dict[str, Any]], model: str, usage: dict[str, Any]) -> Iterator[bytes]:
    """The role, the sentence in small pieces, one chunk per image, the finish, a usage-only chunk,
    ``[DONE]``. The usage comes whether or not ``stream_options.include_usage`` asked for it:
    OpenRouter always sends it (its SDK's ``includeUsage`` "has no effect. Full usage details are
    always included")."""
    yield _chunk(model, {"role": "assistant", "content": ""})
    for start in range(0, len(text), _PIECE):
        yield _chunk(model, {"content": text[start : start + _PIECE]})
    for image in images:
        yield _chunk(model, {"images": [image]})
    yield _chunk(model, {}, finish_reason="stop")
    yield (
        b"data: " + _json({**_head(model, "chat.completion.chunk"), "choices": [], "usage": usage}) + b"\n\n"
    )
    yield b"data: [DONE]\n\n"


def _sentence(request: GenerationRequest, images: int) -> str:
    if images == 1:
        return "Here is the image you asked for."
    if images:
        return f"Here are the {images} images you asked for."
    return f"A picture of {request.prompt} would show it in soft light, centred in the frame."


def _image(request: GenerationRequest, index: int) -> dict[str, Any]:
    data = base64.b64encode(png_image(request.width, request.height, request.token(index))).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def _usage(request: GenerationRequest, text: str, images: int) -> dict[str, Any]:
    prompt_tokens = max(1, len(request.prompt.split()))
    completion_tokens = IMAGE_TOKENS * images if images else len(text.split())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens_details": {"image_tokens": IMAGE_TOKENS * images},
    }


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return b"data: " + _json({**_head(model, "chat.completion.chunk"), "choices": [choice]}) + b"\n\n"


def _head(model: str, kind: str) -> dict[str, Any]:
    return {"id": "gen-fakerelay", "object": kind, "created": int(time.time()), "model": model}


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
