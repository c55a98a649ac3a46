"""A chat completion's text -> images and revised prompt. Pure functions, no I/O.

Relays that answer through chat completions write the result as markdown: a leading fenced json
block (often holding the prompt they really drew), progress lines quoted with ``>``, one
``![...](...)`` per image, and a download link per image that points to the same picture.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..models import MAX_IMAGES_READ, GeneratedImage

# Relays are untrusted, so every pattern here reads a line in linear time: no two parts of a
# pattern can match the same characters.
# A label may hold a few balanced brackets one level deep (``![a [b] c](url)``). Deeper ones are
# not read: matching them takes a stack, not a pattern. The bound on their number keeps the matcher
# from saving a backtracking point for every bracket of a hostile line.
_LABEL = r"[^\[\]]*(?:\[[^\[\]]*\][^\[\]]*){0,8}"
_TITLE = r"""(?:"[^"]*"|'[^']*')"""
# The URL, with its title and the spaces after it, is one optional group that starts with a
# non-space: the spaces around an empty ``![image]( )`` can be read one way only. A title needs a
# space before it, so it cannot start inside the URL.
_MARKDOWN_IMAGE = re.compile(rf"!\[{_LABEL}\]\(\s*(?:([^()\s]+)(?:\s+{_TITLE})?\s*)?\)")
_DATA_URL = re.compile(r"data:(image/[\w.+-]+);base64,([A-Za-z0-9+/=_-]+)\Z")
UNREADABLE_INLINE = "the relay sent this image inline (a data: URL) whose base64 is cut or altered"
_URL_SAFE = str.maketrans("-_", "+/")
_LEADING_JSON_FENCE = re.compile(r"\s*```json")
_FENCE = "```"
_URL_KEYS = re.compile(r"image|url|output", re.IGNORECASE)
_WEB_SCHEMES = ("https://", "http://")
_IMAGE_SCHEMES = (*_WEB_SCHEMES, "data:")
_PROMPT_KEYS = ("revised_prompt", "prompt")
_BARE_LINK = re.compile(r"(?:https?://|data:image/)\S+")
_VIDEO_SUFFIX = re.compile(r"\.(?:mp4|webm|mov|m3u8)(?![\w.])", re.IGNORECASE)
_NOT_IN_LINK = frozenset(" \t\r\n()[]<>\"'")
_MAX_LINK = 2048
_VIDEO_SUFFIXES_READ = 100


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
    # Any image link, even an empty one, means the relay answered in markdown: its json block then
    # holds what was asked (a reference image, say), not what was drawn.
    urls = _markdown_image_urls(rest) or list(_urls_in(block)) or _bare_link(answer.text)
    answer.images = _images_of(urls)
    return answer


def video_links(text: str) -> list[str]:
    """Links to videos (``.mp4``, ``.webm``, ``.mov``, ``.m3u8``) in a completion's text: what a
    video model answers through the same endpoint."""
    links = []
    # From each video suffix back to the "http" before it: a bounded look, at a bounded number
    # of suffixes, so a hostile text of suffixes costs no more than one scan.
    for suffix in itertools.islice(_VIDEO_SUFFIX.finditer(text), _VIDEO_SUFFIXES_READ):
        start = text.rfind("http", max(0, suffix.start() - _MAX_LINK), suffix.start())
        link = text[start : suffix.end()] if start != -1 else ""
        if link.startswith(_WEB_SCHEMES) and _NOT_IN_LINK.isdisjoint(link):
            links.append(link)
    return links


def image_from_url(url: str) -> GeneratedImage:
    """An http(s) link, or a ``data:`` URL carrying the image itself: inline, never a link to
    fetch. One whose base64 is cut or altered (docs elide it) is still an inline image, kept with
    the reason it cannot be read, its text never shown."""
    url = url.strip()
    if url.startswith("data:"):
        match = _DATA_URL.match(url)
        b64_json = _decodable(match.group(2)) if match else None
        return GeneratedImage(b64_json=b64_json) if b64_json else GeneratedImage(save_error=UNREADABLE_INLINE)
    if url.startswith(_WEB_SCHEMES):
        return GeneratedImage(url=url)
    return GeneratedImage()


def _decodable(payload: str) -> str | None:
    """``payload`` as standard base64 that decodes (URL-safe letters and dropped padding
    restored), or ``None``: decoding is the one check that the image is whole."""
    standard = payload.translate(_URL_SAFE) + "=" * (-len(payload) % 4)
    try:
        base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError):
        return None
    return standard


def unique(images: Iterable[GeneratedImage]) -> list[GeneratedImage]:
    """The images in order, each URL (or inline image) once; empty ones left out (an unreadable
    inline image is kept: it was drawn)."""
    seen: set[str] = set()
    kept: list[GeneratedImage] = []
    for image in images:
        key = image.url or image.b64_json or (f"unreadable {len(kept)}" if image.save_error else None)
        if key and key not in seen:
            seen.add(key)
            kept.append(image)
    return kept


def _bare_link(text: str) -> list[str]:
    """The text itself when it is one link (or ``data:`` URL) and nothing else, as some gateways
    answer."""
    return [text] if _BARE_LINK.fullmatch(text) else []


def _markdown_image_urls(text: str) -> list[str]:
    """The URL of every ``![label](url)`` outside progress lines; ``""`` for an empty link.

    Only the lines holding ``![`` are cut out, each once: a list of every line of a 64 MiB
    answer of line breaks would take far more memory than the answer.
    """
    urls: dict[str, None] = {}  # distinct, in order
    position = 0
    # Links that are not images (downloads) also count: twice the images read is enough to stop.
    while (found := text.find("![", position)) != -1 and len(urls) < 2 * MAX_IMAGES_READ:
        start = text.rfind("\n", 0, found) + 1
        end = text.find("\n", found)
        end = len(text) if end == -1 else end
        line = text[start:end]
        if not line.lstrip().startswith(">"):  # a progress line's links are previews, not results
            urls.update(dict.fromkeys(_MARKDOWN_IMAGE.findall(line)))
        position = end + 1
    return list(urls)


def _images_of(urls: list[str]) -> list[GeneratedImage]:
    """Each URL once, as an image; empty and non-image links left out.

    Images are built only for distinct links that can be images: a hostile answer can hold a
    link every few characters, and building an image costs far more than reading its link.
    """
    candidates = (
        url for url in dict.fromkeys(urls) if url.startswith(_IMAGE_SCHEMES)
    )  # the block's may repeat
    return unique(image_from_url(url) for url in itertools.islice(candidates, MAX_IMAGES_READ))


def _split_json_block(text: str) -> tuple[Any, str]:
    """The parsed leading ```json block (``None`` if absent or unreadable), and the text after it."""
    opening = _LEADING_JSON_FENCE.match(text)
    if opening is None:
        return None, text
    end = text.find(_FENCE, opening.end())
    if end == -1:
        return None, text
    try:
        block = json.loads(text[opening.end() : end])
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
    # Each key is read once, and what it says is handed down through lists: a long key over many
    # values would otherwise be read again for every one of them.
    pending: deque[tuple[bool, Any]] = deque([(False, block)])
    while pending:
        under_url_key, value = pending.popleft()
        if isinstance(value, dict):
            pending.extend((_is_url_key(key), item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((under_url_key, item) for item in value)
        elif under_url_key and isinstance(value, str) and value.startswith(_WEB_SCHEMES):
            yield value


def _is_url_key(key: str) -> bool:
    return _URL_KEYS.search(key) is not None
