"""A chat completion's text -> images and revised prompt. Pure functions, no I/O.

Relays that answer through chat completions write the result as markdown: a leading fenced json
block (often holding the prompt they really drew), progress lines quoted with ``>``, one
``![...](...)`` per image, and a download link per image that points to the same picture.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .models import GeneratedImage

_MARKDOWN_IMAGE = re.compile(r"!\[[^\]\n]*\]\(\s*([^()\s]*)\s*\)")
_DATA_URL = re.compile(r"data:(image/[\w.+-]+);base64,([A-Za-z0-9+/=_-]+)\Z")
_JSON_FENCE = "```json"
_FENCE = "```"
_URL_KEYS = re.compile(r"image|url|output", re.IGNORECASE)
_PROMPT_KEYS = ("revised_prompt", "prompt")


@dataclass
class MarkdownAnswer:
    """What a completion's text holds: its images, the prompt the relay drew, and its prose."""

    images: list[GeneratedImage] = field(default_factory=list)
    revised_prompt: str | None = None
    text: str = ""
    """The text after the json block, progress lines included: where a refusal would be."""


def read_markdown(text: str) -> MarkdownAnswer:
    """Images of a completion's text: markdown images, else URLs in the leading json block."""
    block, rest = _split_json_block(text)
    answer = MarkdownAnswer(revised_prompt=_prompt_in(block), text=rest.strip())
    for line in rest.splitlines():
        if not line.lstrip().startswith(">"):  # a progress line's links are previews, not results
            answer.images.extend(image_from_url(url) for url in _MARKDOWN_IMAGE.findall(line))
    if not answer.images:
        answer.images.extend(image_from_url(url) for url in _urls_in(block))
    answer.images = unique(answer.images)
    return answer


def image_from_url(url: str) -> GeneratedImage:
    """An http(s) link, or a ``data:image/...;base64,`` URL carrying the image itself."""
    url = url.strip()
    if url.startswith("data:"):
        match = _DATA_URL.match(url)
        return GeneratedImage(b64_json=match.group(2)) if match else GeneratedImage()
    if url.startswith(("https://", "http://")):
        return GeneratedImage(url=url)
    return GeneratedImage()


def unique(images: Iterable[GeneratedImage]) -> list[GeneratedImage]:
    """The images in order, each URL (or inline image) once; empty ones left out."""
    seen: set[str] = set()
    kept = []
    for image in images:
        key = image.url or image.b64_json
        if key and key not in seen:
            seen.add(key)
            kept.append(image)
    return kept


def _split_json_block(text: str) -> tuple[Any, str]:
    """The parsed leading ```json block (``None`` if absent or unreadable), and the text after it."""
    start = text.find(_JSON_FENCE)
    if start == -1 or text[:start].strip():
        return None, text
    end = text.find(_FENCE, start + len(_JSON_FENCE))
    if end == -1:
        return None, text
    try:
        block = json.loads(text[start + len(_JSON_FENCE) : end])
    except (ValueError, RecursionError):
        block = None
    return block, text[end + len(_FENCE) :]


def _prompt_in(block: Any) -> str | None:
    if isinstance(block, dict):
        for key in _PROMPT_KEYS:
            value = block.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _urls_in(block: Any) -> Iterator[str]:
    """http(s) URLs under image- or url-like keys of the json block, at any depth."""
    pending: deque[tuple[str, Any]] = deque([("", block)])
    while pending:
        key, value = pending.popleft()
        if isinstance(value, dict):
            pending.extend(value.items())
        elif isinstance(value, list):
            pending.extend((key, item) for item in value)
        elif isinstance(value, str) and _URL_KEYS.search(key) and value.startswith(("https://", "http://")):
            yield value
