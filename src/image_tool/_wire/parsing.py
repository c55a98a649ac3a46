"""A relay's successful answer -> ImageGenerationResult. Pure functions, no I/O.

Relays answer in several shapes (see the wire-format notes). Each shape has one reader: a function
that returns a result when it recognises the payload and ``None`` otherwise. ``parse_result`` tries
them in order, so a new shape is one more reader in ``SHAPE_READERS``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import MalformedResponseError, NoImageError
from ..models import MAX_IMAGES_READ, GeneratedImage, ImageGenerationResult, Usage
from .failures import error_from_payload, error_from_text
from .markdown import image_from_url, read_markdown, unique, video_links
from .signals import refusal_error, refusal_in

ShapeReader = Callable[[dict[str, Any], str], ImageGenerationResult | None]
"""Reads one shape of answer: ``(payload, requested_model) -> result``, or ``None`` if not its shape."""

_SNIPPET = 200
_RELAY_TEXT = 500


def parse_result(body: bytes, *, requested_model: str) -> ImageGenerationResult:
    """Read a 2xx answer's body. Raises the typed error when it is an error, or holds no image."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise MalformedResponseError(
            f"The relay's answer is not JSON: {_snippet(body)}", status_code=200
        ) from error
    if not isinstance(payload, dict):
        raise MalformedResponseError(
            f"The relay's answer is not a JSON object: {_snippet(body)}", status_code=200
        )
    if payload.get("error"):
        # Some relays report failures with HTTP 200 and an error body.
        raise error_from_payload(200, payload)
    for read in SHAPE_READERS:
        result = read(payload, requested_model)
        if result is None:
            continue
        if not result.images:
            raise NoImageError(f"The relay's answer held no image: {_snippet(body)}", status_code=200)
        result.usage = usage_of(payload.get("usage"))
        return result
    raise MalformedResponseError(
        f"The relay's answer is in no known shape: {_snippet(body)}", status_code=200
    )


def read_images_api_shape(payload: dict[str, Any], requested_model: str) -> ImageGenerationResult | None:
    """The documented shape: ``{"created": ..., "data": [{"url" | "b64_json", "revised_prompt"}]}``."""
    data = payload.get("data")
    if not isinstance(data, list):
        return None
    read = (image for item in data if (image := image_from_data_item(item)) is not None)
    images = list(itertools.islice(read, MAX_IMAGES_READ))
    return ImageGenerationResult(
        created=_timestamp(payload.get("created")),
        model=_string(payload.get("model")) or requested_model,
        images=images,
    )


def read_chat_completion(payload: dict[str, Any], requested_model: str) -> ImageGenerationResult | None:
    """A ``chat.completion`` whose message carries the images: in its content (text or parts), or
    in ``message.images`` (OpenRouter, LiteLLM and the Gemini gateways)."""
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return None
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or choice.get("delta")
    message = message if isinstance(message, dict) else {}
    content, images = message.get("content"), message_images(message)
    feedback = payload.get("promptFeedback")
    reasons = [choice.get("finish_reason"), choice.get("native_finish_reason")]
    reasons += [feedback.get("blockReason")] if isinstance(feedback, dict) else []
    if not content and not images and (tokens := _completion_tokens(payload)):
        raise NoImageError(
            f"The relay sent an empty message although it reported {tokens} completion tokens: the "
            "image was probably generated, then lost by the relay.",
            status_code=200,
        )
    return result_from_content(
        content,
        model=_string(payload.get("model")) or requested_model,
        created=_timestamp(payload.get("created")),
        images=images,
        finish_reasons=reasons,
    )


def message_images(message: dict[str, Any]) -> list[GeneratedImage]:
    """A message's (or a delta's) ``images``: ``[{"type": "image_url", "image_url": {"url"}}]``."""
    images = message.get("images")
    return _text_and_images(images)[1] if isinstance(images, list) else []


SHAPE_READERS: tuple[ShapeReader, ...] = (read_images_api_shape, read_chat_completion)


def result_from_content(
    content: object,
    *,
    model: str,
    created: int | None = None,
    images: Iterable[GeneratedImage] = (),
    finish_reasons: Iterable[object] = (),
) -> ImageGenerationResult:
    """The images of a completion's content (markdown text, or a list of text and image parts),
    after ``images`` the relay sent beside it.

    A content without an image is a failure: a refusal (a finish or block reason that says so, or
    its sentence), a video or a rate-limit sentence becomes that error, anything else
    ``NoImageError``; each carries the relay's own text.
    """
    text, part_images = _text_and_images(content)
    if videos := video_links(text):
        raise NoImageError(
            f"The relay answered with a video, not an image: {videos[0]} . This model makes videos; "
            "ask for an image model.",
            status_code=200,
        )
    answer = read_markdown(text)
    images = unique([*images, *part_images, *answer.images])
    if not images:
        relay_text = " ".join(answer.text[: _RELAY_TEXT * 4].split())[:_RELAY_TEXT]
        if reason := refusal_in(finish_reasons):
            raise refusal_error(reason, relay_text)
        raise error_from_text(relay_text) or NoImageError(
            f"The relay answered without an image: {relay_text or '(empty answer)'}", status_code=200
        )
    if answer.revised_prompt:
        images = [
            image
            if image.revised_prompt
            else image.model_copy(update={"revised_prompt": answer.revised_prompt})
            for image in images
        ]
    return ImageGenerationResult(created=created, model=model, images=images)


def _text_and_images(content: object) -> tuple[str, list[GeneratedImage]]:
    """Content as a string, or as parts: ``[{"type": "text"}, {"type": "image_url"}]``."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    texts, images = [], []
    for part in content[: MAX_IMAGES_READ * 2]:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        image_url = part.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        if isinstance(url, str):
            images.append(image_from_url(url))
    return "\n".join(texts), images


def image_from_data_item(item: object) -> GeneratedImage | None:
    if not isinstance(item, dict):
        return None
    url = _string(item.get("url"))
    b64_json = _string(item.get("b64_json"))
    if not (url or b64_json):
        return None
    revised_prompt = _string(item.get("revised_prompt"))
    if url and url.startswith("data:") and not b64_json:  # the image itself, where a link would be
        return image_from_url(url).model_copy(update={"revised_prompt": revised_prompt})
    return GeneratedImage(url=url, b64_json=b64_json, revised_prompt=revised_prompt)


def usage_of(usage: object) -> Usage | None:
    """The answer's ``usage``: a chat completion's (``prompt_tokens``, ``completion_tokens``) or
    the Images API's (``input_tokens``, ``output_tokens``, with their image tokens)."""
    if not isinstance(usage, dict):
        return None
    read = Usage(
        input_tokens=_count(usage.get("input_tokens", usage.get("prompt_tokens"))),
        output_tokens=_count(usage.get("output_tokens", usage.get("completion_tokens"))),
        total_tokens=_count(usage.get("total_tokens")),
        input_image_tokens=_image_tokens(usage, "input_tokens_details", "prompt_tokens_details"),
        output_image_tokens=_image_tokens(usage, "output_tokens_details", "completion_tokens_details"),
        images=_count(usage.get("images")),
    )
    return read if read.model_dump(exclude_none=True) else None


def _image_tokens(usage: dict[str, Any], *names: str) -> int | None:
    details: dict[str, Any] = next((usage[name] for name in names if isinstance(usage.get(name), dict)), {})
    return _count(details.get("image_tokens"))


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _completion_tokens(payload: dict[str, Any]) -> int:
    usage = payload.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0 else 0


def _string(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _timestamp(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def _snippet(body: bytes) -> str:
    text = body[: _SNIPPET * 4].decode("utf-8", errors="replace")
    return text[:_SNIPPET] + ("..." if len(body) > _SNIPPET else "")
