"""A hostile relay on loopback: whatever it sends (any status, any headers, lying or broken
framing, any content encoding, any body, cut into any pieces, any event-stream framing), a call
returns an ImageGenerationResult or raises an ImageToolError, within its total timeout and a
bounded amount of memory, and never shows the key.

The relay is a raw socket server that writes exactly the bytes a test scripts, so the HTTP itself
can be malformed; Hypothesis writes the scripts.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import os
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from image_tool import ImageClient, ImageGenerationResult
from image_tool._wire.answer import MAX_ANSWER_BYTES
from image_tool.errors import APIError, ImageToolError

from ..hostile_server import HOLD_LIMIT, Answer, HostileServer

pytestmark = pytest.mark.slow

KEY = "sk-fuzz-0123456789abcdefABCDEF"
KEY_MARK = "sk-fuzz-"
"""No text the caller sees may hold even this much of the key."""
PROMPT = "a lighthouse at dawn"
TOTAL_TIMEOUT = 3.0
SLACK = 3.0
"""A call ends within ``total_timeout + SLACK`` seconds: it overruns its total by milliseconds on a
quiet machine, the rest is room for a loaded one. A stall (``STALL_TIMEOUT + SLACK``) stays well
short of the ``HOLD_LIMIT`` a call that ignored its total would wait for."""
ANSWER_CAP = MAX_ANSWER_BYTES
MEMORY_SLACK = 16 * 1024 * 1024
"""What reading an answer may hold beyond the cap (buffers, one inflated piece)."""
FUZZ_SETTINGS = settings(
    # HOSTILE_FUZZ_EXAMPLES=5000 for a long hunt; the default keeps the file under ~15 s.
    max_examples=int(os.environ.get("HOSTILE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# --- The server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


# --- What a relay may send ----------------------------------------------------------------------

KEY_ECHOES = st.sampled_from(
    [KEY, f"Incorrect API key provided: {KEY}.", f"invalid token (Bearer {KEY})", f"{KEY} {KEY}"]
)
WORDS = st.sampled_from(
    [
        "",
        " ",
        "null",
        "rate limit",
        "Too Many Requests",
        "content policy",
        "违反",
        "负载已饱和",
        "额度不足",
        "无可用渠道",
        "content_policy_violation",
        "insufficient_user_quota",
        "model_not_found",
        "rate_limit_exceeded",
        "new_api_error",
        "<b>bold</b>&amp;",
        "\ud800 lone surrogate",
        "\x00\x1b[31m",
    ]
)
TEXT = WORDS | KEY_ECHOES | st.text(max_size=24)
KEYS = st.sampled_from(
    [
        "data",
        "url",
        "b64_json",
        "revised_prompt",
        "created",
        "model",
        "choices",
        "message",
        "delta",
        "content",
        "type",
        "text",
        "image_url",
        "error",
        "code",
        "prompt",
        "image",
    ]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(KEYS | st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=10,
)
URLS = st.sampled_from(
    [
        "https://cdn.example/a.png",
        "https://cdn.example/b.png?sig=abc&exp=1",
        f"https://cdn.example/{KEY}.png",
        "http://127.0.0.1/x.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "",
        " ",
    ]
)
GOOD_URLS = st.sampled_from(
    [
        "https://cdn.example/a.png",
        "https://cdn.example/b.png?sig=abc&exp=1",
        f"https://cdn.example/{KEY}.png",
        "data:image/png;base64,iVBORw0KGgo=",
    ]
)
PROMPTS = TEXT | st.just("a very long revised prompt " * 150)
B64 = st.sampled_from(["iVBORw0KGgo=", "", "!!not base64!!", "A" * 2000])
GOOD_B64 = st.sampled_from(["iVBORw0KGgo=", "A" * 2000])
IMAGE_LINKS = st.sampled_from(
    [
        "![img](https://cdn.example/a.png)",
        "![gen_01abcd](https://cdn.example/b.png)\n[点击下载](https://cdn.example/b.png)",
        "![x](data:image/png;base64,iVBORw0KGgo=)",
        f"![x](https://cdn.example/{KEY}.png)",
    ]
)
MARKDOWN_BITS = st.sampled_from(
    [
        "```json\n",
        "```",
        f'```json\n{{"prompt": "lighthouse, {KEY}", "image": ["https://x.example/i.png"]}}\n```\n',
        "\n",
        ">",
        "🏃 进度 ",
        "7....13....",
        "[100](",
        ")",
        "![",
        "](",
        "data:image/png;base64,",
        "生成完成",
        "违反",
        "负载已饱和",
        "Queuing",
        "Progress 57",
        "[点击下载]",
        f"revised: {KEY}",
    ]
) | st.text(max_size=12)
CLEAN_BITS = st.sampled_from(
    [
        f'```json\n{{"prompt": "lighthouse, {KEY}", "ratio": "1:1"}}\n```\n\n',
        "\n\n",
        ">🕐 排队中.\n\n",
        ">🏃 进度 7....13....[100](https://cdn.example/p.png)\n\n",
        "> ✅ 生成完成\n\n",
        "Progress 57\n\n",
        "[点击下载](https://cdn.example/a.png)\n\n",
        f"I drew it. ({KEY})\n\n",
    ]
) | st.text(st.characters(exclude_characters="[]()!`<>\\", exclude_categories=["Cs"]), max_size=12)
MARKDOWN = st.lists(MARKDOWN_BITS | IMAGE_LINKS, max_size=10).map("".join)


@st.composite
def markdown_with_image(draw: st.DrawFn, *, odd: bool) -> str:
    """Markdown text with at least one image link; when ``odd``, among stray markdown."""
    bits = MARKDOWN_BITS if odd else CLEAN_BITS
    before, after = draw(st.lists(bits, max_size=4)), draw(st.lists(bits | IMAGE_LINKS, max_size=4))
    return "".join(before) + "\n" + draw(IMAGE_LINKS) + "\n" + "".join(after)


MARKDOWN_WITH_IMAGE = markdown_with_image(odd=True)
CONTENT_PARTS = st.lists(
    st.one_of(
        st.builds(lambda text: {"type": "text", "text": text}, MARKDOWN),
        st.builds(lambda url: {"type": "image_url", "image_url": {"url": url}}, URLS),
        st.builds(lambda url: {"type": "image_url", "image_url": url}, URLS),
        JSON_VALUES,
    ),
    max_size=4,
)
TIMES = st.integers(0, 2**40) | JSON_VALUES


def to_json(payload: object, *, ascii_only: bool = True) -> bytes:
    """JSON as a relay may write it: lone surrogates go out as they are (invalid UTF-8)."""
    return json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def images_api_bodies(draw: st.DrawFn) -> bytes:
    """The documented shape, ``{"created", "data": [{"url" | "b64_json", "revised_prompt"}]}``;
    odd ones hold anything."""
    odd = draw(st.booleans())
    item = st.one_of(
        st.builds(lambda url, prompt: {"url": url, "revised_prompt": prompt}, GOOD_URLS, PROMPTS),
        st.builds(lambda b64: {"b64_json": b64}, GOOD_B64),
    )
    if odd:
        item |= st.one_of(
            st.builds(lambda url, prompt: {"url": url, "revised_prompt": prompt}, URLS, JSON_VALUES),
            st.builds(lambda b64: {"b64_json": b64}, B64 | JSON_VALUES),
            JSON_VALUES,
        )
    items = draw(st.lists(item, min_size=0 if odd else 1, max_size=3))
    payload: dict[str, Any] = {"created": draw(TIMES if odd else st.integers(0, 2**40)), "data": items}
    if draw(st.booleans()):
        payload["model"] = draw(st.just("gpt-4o-image") | JSON_VALUES)
    return to_json(payload, ascii_only=draw(st.booleans()))


@st.composite
def chat_completion_bodies(draw: st.DrawFn) -> bytes:
    """A ``chat.completion`` whose content (markdown text, or parts) carries the images; odd
    ones hold anything."""
    odd = draw(st.booleans())
    image_part = st.builds(lambda url: {"type": "image_url", "image_url": {"url": url}}, GOOD_URLS)
    good_parts = st.tuples(CONTENT_PARTS, image_part).map(lambda parts: [*parts[0], parts[1]])
    content = draw(
        markdown_with_image(odd=odd)
        | good_parts
        | (MARKDOWN | CONTENT_PARTS | JSON_VALUES if odd else st.nothing())
    )
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, draw(st.sampled_from(["message", "delta"])): message, "finish_reason": "stop"}
    choices = draw(
        st.just([choice]) | st.lists(JSON_VALUES, max_size=2) | JSON_VALUES if odd else st.just([choice])
    )
    payload = {
        "id": "chatcmpl-fuzz",
        "object": "chat.completion",
        "created": draw(TIMES),
        "model": draw(st.just("gpt-4o-image") | JSON_VALUES),
        "choices": choices,
    }
    return to_json(payload, ascii_only=draw(st.booleans()))


def _chunk(delta: object) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fuzz",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


EXTRA_EVENTS = st.one_of(
    st.sampled_from(
        [
            ": PING",
            ":",
            "event: message",
            "id: 7",
            "retry: soon",
            "data: [DONE]",
            "data:[DONE]",
            "data: " + "[" * 5000 + "]" * 5000,
            'data: {"created": ' + "9" * 5000 + "}",
            'data: {"created": 1e999, "model": 5}',
            "data: {not json",
            "data: ",
            "data",
            'data: {"choices": []}',
            'data: {"choices": [{"delta": {"content": [{"type": "image_url", "image_url": '
            '{"url": "https://cdn.example/c.png"}}]}}]}',
        ]
    ),
    st.builds(lambda error: "data: " + json.dumps({"error": error}), JSON_VALUES | KEY_ECHOES),
    st.builds(lambda value: "data: " + json.dumps(value), JSON_VALUES),
    st.builds(lambda delta: "data: " + json.dumps(_chunk(delta)), JSON_VALUES),
)


@st.composite
def event_stream_bodies(draw: st.DrawFn) -> bytes:
    """A streamed completion: deltas of a markdown answer, keep-alives, ``[DONE]``; odd ones
    with stray events and blank lines left out."""
    odd = draw(st.booleans())
    content = draw(markdown_with_image(odd=odd))
    cuts = sorted(draw(st.lists(st.integers(0, len(content)), max_size=6)))
    bounds = zip([0, *cuts], [*cuts, len(content)], strict=True)
    space = draw(st.sampled_from(["data: ", "data:"]))
    events = [": PING"] + [space + json.dumps(_chunk({"content": content[a:b]})) for a, b in bounds]
    for extra in draw(st.lists(EXTRA_EVENTS, max_size=3)) if odd else []:
        events.insert(draw(st.integers(0, len(events))), extra)
    if not odd or draw(st.booleans()):
        events.append("data: [DONE]")
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    between = newline * (draw(st.sampled_from([2, 1])) if odd else 2)  # some relays leave out the blank line
    return "".join(event + between for event in events).encode("utf-8", "surrogatepass")


@st.composite
def error_bodies(draw: st.DrawFn) -> bytes:
    """An error answer: ``{"error": {...}}`` and kin, with values of any JSON type."""
    value = TEXT | JSON_VALUES
    fields = draw(st.sets(st.sampled_from(["message", "code", "type", "param"])))
    error = {name: draw(value) for name in sorted(fields)}
    shape = draw(st.sampled_from(["error object", "error value", "message", "detail", "both"]))
    payload: dict[str, Any] = {"detail": error} if shape == "detail" else {"error": error}
    if shape == "error value":
        payload["error"] = draw(value)
    if shape in ("message", "both"):
        payload["message"] = draw(value)
    if shape == "message":
        del payload["error"]
    return to_json(payload, ascii_only=draw(st.booleans()))


HTML_BODIES = st.builds(
    lambda title, text: (
        f"<html><head><title>{title}</title></head><body><h1>{text}</h1></body></html>".encode(
            "utf-8", "surrogatepass"
        )
    ),
    TEXT,
    TEXT,
)
HOSTILE_JSON = st.sampled_from(
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b'"just a string"',
        b"[" * 5000 + b"]" * 5000,
        b'{"data": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"created": ' + b"9" * 5000 + b', "data": [{"url": "https://cdn.example/a.png"}]}',
        b'{"created": NaN, "data": [{"url": "https://cdn.example/a.png"}]}',
        b'{"created": 1e999, "data": [{"url": "https://cdn.example/a.png"}]}',
        b'{"data": [{"url": "https://cdn.example/a.png"}], "data": 5}',
        b'\xef\xbb\xbf{"data": [{"url": "https://cdn.example/a.png"}]}',
        '{"data": [{"url": "https://cdn.example/a.png"}]}'.encode("utf-16"),
        '{"data": [{"url": "https://cdn.example/a.png"}]}'.encode("utf-32-le"),
        b'{"error": {"message": "\\ud800", "code": 1e999}}',
        b'{"choices": [{"message": {"content": "![x](https://cdn.example/a.png)"}}]}\n\ntrailing junk',
        b'{"data": [' + b", ".join([b'{"url": "https://cdn.example/a.png"}'] * 400) + b"]}",
        b'{"data": [{"url": "https://cdn.example/a.png", '
        b'"revised_prompt": "sk\\u002dfuzz\\u002d0123456789abcdefABCDEF"}]}',
        b'{"error": {"message": "bad key sk\\u002dfuzz\\u002d0123456789abcdefABCDEF", "code": 401}}',
    ]
)
GARBAGE = st.sampled_from(
    [b"\n\n", b"data: [DONE]\n\n", b"\r\n0\r\n\r\n", b"\x00", b"\xff\xfe", b'"', b"{", b"}", b"]", b"\\u"]
) | st.binary(max_size=16)


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` cut short, with bytes flipped, garbage inserted or a stretch repeated."""
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "repeat"]))
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(GARBAGE)
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


ERROR_STATUSES = st.sampled_from([200, 400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504, 524])
VALID_BODIES = st.one_of(
    images_api_bodies().map(lambda body: (body, b"application/json", 200)),
    chat_completion_bodies().map(lambda body: (body, b"application/json", 200)),
    event_stream_bodies().map(lambda body: (body, b"text/event-stream", 200)),
)
BODIES = st.one_of(
    VALID_BODIES,
    VALID_BODIES.flatmap(lambda valid: mutated(valid[0]).map(lambda body: (body, *valid[1:]))),
    st.tuples(error_bodies(), st.just(b"application/json"), ERROR_STATUSES),
    st.tuples(HTML_BODIES, st.just(b"text/html"), ERROR_STATUSES),
    st.tuples(st.binary(max_size=512), st.just(b"application/octet-stream"), ERROR_STATUSES),
    st.tuples(HOSTILE_JSON, st.just(b"application/json"), ERROR_STATUSES),
)
"""A body, the content type and the status that go with it."""


def _key_fragments(data: bytes) -> bool:
    """Whether ``data`` holds a piece of the key that is not the whole key."""
    return data.count(KEY_MARK.encode()) != data.count(KEY.encode())


def _compress(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(body, mtime=0)
    if coding == "gzip twice":
        return gzip.compress(gzip.compress(body, mtime=0), mtime=0)
    if coding == "deflate":
        return zlib.compress(body)
    if coding == "raw deflate":
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return compressor.compress(body) + compressor.flush()
    return body


LABELS = {
    "none": None,
    "identity": b"identity",
    "gzip": b"gzip",
    "gzip twice": b"gzip, gzip",
    "deflate": b"deflate",
    "raw deflate": b"deflate",
}
OTHER_LABELS = st.sampled_from(
    [
        None,
        b"gzip",
        b"deflate",
        b"br",
        b"identity",
        b"zstd",
        b"x-gzip",
        b"gzip, deflate",
        b"GZIP",
        b"compress",
        b"garbage",
        b"gzip;q=1",
        b"",
        b"identity, gzip",
    ]
)


@st.composite
def encoded(draw: st.DrawFn, body: bytes, hostile: bool) -> tuple[bytes, bytes | None, bool]:
    """``body`` compressed or not, and its Content-Encoding; when ``hostile``, the compressed data
    corrupted or the label wrong (or both). Also: whether the text it decodes to is the body whole."""
    coding = draw(st.sampled_from(list(LABELS)))
    data, label = _compress(body, coding), LABELS[coding]
    if not hostile:
        return data, label, True
    corrupt = data != body and draw(st.booleans())
    if corrupt:
        data = draw(mutated(data))
    if not corrupt or draw(st.booleans()):
        label = draw(OTHER_LABELS.filter(lambda other: other != label))
    return data, label, not corrupt


def _chunked(body: bytes, sizes: list[int], eol: bytes = b"\r\n") -> list[bytes]:
    """``body`` as chunks (each ``size\\r\\ndata\\r\\n``); the last chunk not included."""
    chunks, start = [], 0
    for size in [*sizes, len(body)]:
        piece = body[start : start + max(size, 1)]
        if not piece:
            break
        chunks.append(b"%x" % len(piece) + eol + piece + eol)
        start += len(piece)
    return chunks


@st.composite
def framed(draw: st.DrawFn, body: bytes, hostile: bool) -> tuple[list[bytes], bytes, bool]:
    """Framing headers and the body as framed (when ``hostile``, lying or broken); whether the
    client can read the body whole."""
    valid = ["length", "close", "chunked"]
    broken = ["short", "long", "odd length", "two lengths", "broken chunks", "chunked and length"]
    kind = draw(st.sampled_from(broken if hostile else valid))
    length = b"Content-Length: %d" % len(body)
    if kind == "length":
        return [length], body, True
    if kind == "close":
        return [], body, True
    if kind == "short":
        return [b"Content-Length: %d" % draw(st.integers(0, max(len(body) - 1, 0)))], body, False
    if kind == "long":
        return [b"Content-Length: %d" % (len(body) + draw(st.integers(1, 10_000)))], body, True
    if kind == "odd length":
        value = draw(
            st.sampled_from(
                [b"abc", b"-1", b"1e3", b" 12", b"12, 12", b"0x10", b"+5", b"9" * 30, b"", "٣".encode()]
            )
        )
        return [b"Content-Length: " + value], body, False
    if kind == "two lengths":
        return [length, b"Content-Length: %d" % draw(st.integers(0, len(body) + 5))], body, False
    sizes = draw(st.lists(st.integers(1, 512), max_size=4))
    chunks = _chunked(body, sizes)
    if kind == "chunked":
        extension = draw(st.sampled_from([b"", b";name=value", b"; x"]))
        trailer = draw(st.sampled_from([b"", b"X-Trailer: 1\r\n", b"Content-Length: 5\r\n"]))
        chunks = [chunk.replace(b"\r\n", extension + b"\r\n", 1) for chunk in chunks]
        return [b"Transfer-Encoding: chunked"], b"".join(chunks) + b"0\r\n" + trailer + b"\r\n", True
    if kind == "chunked and length":
        return [b"Transfer-Encoding: chunked", length], b"".join(chunks) + b"0\r\n\r\n", False
    breakage = draw(st.sampled_from(["no last chunk", "bad size", "size lie", "no crlf", "lf only"]))
    last = b"0\r\n\r\n"
    if breakage == "no last chunk":
        last = b""
    elif breakage == "lf only":
        chunks, last = _chunked(body, sizes, b"\n"), b"0\n\n"
    elif chunks:
        size, _, rest = chunks[0].partition(b"\r\n")
        if breakage == "bad size":
            size = draw(st.sampled_from([b"zz", b"-1", b"0x10", b" 5", b"f" * 20, b"", b"5 5", b"+5"]))
        elif breakage == "size lie":
            size = b"%x" % max(int(size, 16) + draw(st.integers(-5, 5)), 0)
        else:
            rest = rest[:-2]
        chunks[0] = size + b"\r\n" + rest
    return [b"Transfer-Encoding: chunked"], b"".join(chunks) + last, False


NOTABLE_STATUSES = [100, 101, 102, 103, 199, 200, 201, 202, 203, 204, 205, 206, 226, 299, 300, 301, 302,
                    304, 307, 400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 451, 499, 500, 501, 502,
                    503, 504, 520, 524, 529, 599]  # fmt: skip
ODD_STATUS_LINES = st.one_of(
    st.builds(
        lambda version, status, reason: b"%s %d %s" % (version, status, reason),
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
        st.sampled_from(NOTABLE_STATUSES) | st.integers(100, 599),
        st.sampled_from([b"OK", b"", b"Whatever", "成功".encode(), b"Too Many Requests"]),
    ),
    st.sampled_from(
        [
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 abc OK",
            b"ICY 200 OK",
            b"HTTP/2 200",
            b"",
            b"hello",
            b"HTTP/1.1 099 Low",
            b"HTTP/1.1 600 High",
            b"HTTP/1.1 200",
            b"HTTP/1.1  200  OK",
            b"HTTP/9.9 200 OK",
            b"http/1.1 200 ok",
            b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 500 Again",
        ]
    ),
)
INTERIM = st.sampled_from(
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 102 Processing\r\n\r\n" * 3,
    ]
)
CONTENT_TYPES = st.sampled_from(
    [
        b"application/json",
        b"application/json; charset=utf-8",
        b"application/json; charset=utf-16",
        b"application/json; charset=bogus",
        b"text/event-stream",
        b"text/event-stream; charset=latin-1",
        b"text/plain",
        b"text/html",
        b"application/octet-stream",
        b"",
        b"text/event-stream, application/json",
    ]
)
RETRY_AFTER_VALUES = st.sampled_from(
    ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "0", "1e309", "-1e309", "1e-309", "0.5", "120", "86401",
     "1e3", "0x10", "1_000", "١٢", "", " ", "garbage", "Wed, 21 Oct 2015 07:28:00 GMT",
     "Fri, 31 Dec 9999 23:59:59 GMT", "Fri, 31 Dec 9999 23:59:59 -1200", "Mon, 01 Jan 0001 00:00:00 +0100",
     "Sun, 06 Nov 1994 08:49:37 +9999", "Thu, 01 Jan 1970 00:00:00 -0000", "Tue, 32 Foo 2024 99:99:99 GMT",
     "Thu, 01 Jan 1970 00:00:01 +2359"]
) | st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20)  # fmt: skip
EXTRA_HEADERS = st.one_of(
    RETRY_AFTER_VALUES.map(lambda value: b"Retry-After: " + value.encode()),
    RETRY_AFTER_VALUES.map(lambda value: b"retry-after-ms: " + value.encode()),
    st.sampled_from(
        [
            b"Connection: close",
            b"Connection: keep-alive",
            b"Set-Cookie: a=b",
            b"Location: http://169.254.169.254/",
            b"X-Key: " + KEY.encode(),
            b"Content-Type: text/event-stream",
            b"Content-Encoding: gzip",
        ]
    ),
)
ODD_HEADERS = st.sampled_from(
    [
        b"X-Junk",
        b"NoColonHere",
        b" folded continuation",
        b"X-Null: a\x00b",
        b"X-Big: " + b"a" * 20_000,
        b"Transfer-Encoding: gzip, chunked",
        b"Transfer-Encoding: identity",
        b"Server: \xff\xfe",
        b"Bad Name: 1",
        b": no name",
    ]
)
HOSTILITIES = (
    "status",
    "line ends",
    "content type",
    "encoding",
    "framing",
    "headers",
    "interim",
    "reset",
    "early",
)
"""What may go wrong in one answer, besides its body (a few at a time, so most answers are
nearly right and reach the parser)."""


@st.composite
def http_answers(draw: st.DrawFn) -> Answer:
    """A whole HTTP answer, well formed or not, cut into pieces."""
    hostile = draw(st.frozensets(st.sampled_from(HOSTILITIES), max_size=3))
    body, natural_type, status = draw(BODIES)
    key_intact = not _key_fragments(body)
    headers = []
    content_type = draw(CONTENT_TYPES | st.none()) if "content type" in hostile else natural_type
    if content_type is not None:
        headers.append(b"Content-Type: " + content_type)
    data, label, whole = draw(encoded(body, "encoding" in hostile))
    if label is not None:
        headers.append(b"Content-Encoding: " + label)
    framing, data, readable = draw(framed(data, "framing" in hostile))
    headers += framing
    headers += draw(st.lists(EXTRA_HEADERS, max_size=3))
    if "headers" in hostile:
        headers += draw(st.lists(ODD_HEADERS, min_size=1, max_size=2))
    headers = draw(st.permutations(headers))
    status_line = draw(ODD_STATUS_LINES) if "status" in hostile else b"HTTP/1.1 %d OK" % status
    eol = draw(st.sampled_from([b"\n", b"\r"])) if "line ends" in hostile else b"\r\n"
    head = status_line + eol + b"".join(header + eol for header in headers) + eol
    raw = (draw(INTERIM) if "interim" in hostile else b"") + head + data
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=5)))
    pieces = tuple(raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True))
    return Answer(
        pieces,
        pause=draw(st.sampled_from([0.0, 0.0, 0.001, 0.005])),
        reset="reset" in hostile,
        early="early" in hostile,
        key_intact=key_intact and ((whole and readable) or KEY_MARK.encode() not in body),
        hostile=hostile,
    )


ANSWERS = st.one_of(
    http_answers(),
    http_answers(),
    http_answers(),
    st.binary(max_size=256).map(lambda raw: Answer((raw,))),
    st.sampled_from([b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"]).map(
        lambda raw: Answer((raw,))
    ),
)


# --- The property ---------------------------------------------------------------------------------


def fuzz_client(server: HostileServer, *, stream: bool, total_timeout: float = TOTAL_TIMEOUT) -> ImageClient:
    return ImageClient(
        api_key=KEY,
        base_url=server.base_url,
        max_retries=0,
        total_timeout=total_timeout,
        allow_insecure_http=False,
        stream=stream,
    )


def _shown(error: ImageToolError) -> list[str]:
    texts = [str(error), repr(error)]
    if isinstance(error, APIError):
        texts += [error.message, error.code or "", error.error_type or ""]
    return texts


def assert_settles(
    call: Callable[[], ImageGenerationResult], answer: Answer, total_timeout: float = TOTAL_TIMEOUT
) -> ImageGenerationResult | ImageToolError:
    """``call`` returns a result with images or raises an ImageToolError (anything else escapes,
    and fails the test), in time, without the key."""
    secret = KEY_MARK if answer.key_intact else KEY
    started = time.monotonic()
    outcome: ImageGenerationResult | ImageToolError
    try:
        outcome = call()
    except ImageToolError as error:
        outcome = error
    if isinstance(outcome, ImageToolError):
        # The client wraps what it did not foresee in a bare APIError ("failed unexpectedly"),
        # chained to the real exception: a bug behind a typed error is still a bug.
        assert type(outcome) is not APIError, f"an unforeseen failure: {outcome.__cause__!r}"
        leaks = [text for text in _shown(outcome) if secret in text]
        assert not leaks, f"{type(outcome).__name__} shows the key: {leaks[0]!r}"
    else:
        assert isinstance(outcome, ImageGenerationResult), f"returned {type(outcome).__name__}"
        assert outcome.images, f"a result without images: {outcome!r}"
        assert all(image.url or image.b64_json for image in outcome.images), repr(outcome)
        assert secret not in repr(outcome), f"the result shows the key: {outcome!r}"
    elapsed = time.monotonic() - started
    assert elapsed < total_timeout + SLACK, f"the call took {elapsed:.1f} s (total_timeout={total_timeout})"
    return outcome


def run_async(
    server: HostileServer, stream: bool, total_timeout: float = TOTAL_TIMEOUT
) -> Callable[[], ImageGenerationResult]:
    """A call of ``agenerate`` on its own event loop, its pool closed after."""

    async def generate() -> ImageGenerationResult:
        client = fuzz_client(server, stream=stream, total_timeout=total_timeout)
        try:
            return await client.agenerate(PROMPT)
        finally:
            await client.aclose()

    return lambda: asyncio.run(generate())


@FUZZ_SETTINGS
@given(answer=ANSWERS, stream=st.booleans())
def test_any_answer_settles_sync(server: HostileServer, answer: Answer, stream: bool) -> None:
    server.play(answer)
    with fuzz_client(server, stream=stream) as client:
        outcome = assert_settles(lambda: client.generate(PROMPT), answer)
    event(type(outcome).__name__)


@FUZZ_SETTINGS
@given(answer=ANSWERS, stream=st.booleans())
def test_any_answer_settles_async(server: HostileServer, answer: Answer, stream: bool) -> None:
    server.play(answer)
    event(type(assert_settles(run_async(server, stream), answer)).__name__)


# --- Slow relays: the call ends with its total timeout --------------------------------------------

STALL_TIMEOUT = 0.5
STALLS = {
    "headers dripping": Answer((b"HTTP/1.1 200 OK\r\n",), pause=0.05, hold=HOLD_LIMIT, drip=b"X-Drip: 1\r\n"),
    "body dripping": Answer(
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",),
        pause=0.05,
        hold=HOLD_LIMIT,
        drip=b" ",
    ),
    "event line never ending": Answer(
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",),
        pause=0.05,
        hold=HOLD_LIMIT,
        drip=b"1\r\na\r\n",
    ),
    "silent after headers": Answer(
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {",), hold=HOLD_LIMIT
    ),
}


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stall", list(STALLS))
def test_a_stalling_relay_is_left_at_the_total_timeout(
    server: HostileServer, stall: str, use_async: bool
) -> None:
    answer = STALLS[stall]
    server.play(answer)
    if use_async:
        outcome = assert_settles(run_async(server, True, STALL_TIMEOUT), answer, STALL_TIMEOUT)
    else:
        with fuzz_client(server, stream=True, total_timeout=STALL_TIMEOUT) as client:
            outcome = assert_settles(lambda: client.generate(PROMPT), answer, STALL_TIMEOUT)
    assert isinstance(outcome, ImageToolError)


# --- Compression bombs: the answer is refused at the cap, not held whole -------------------------

BOMB_MIB = ANSWER_CAP // (1024 * 1024) + 8


@functools.cache
def gzip_bomb(prefix: bytes, fill: bytes) -> bytes:
    """``prefix`` then ``BOMB_MIB`` MiB of ``fill``, gzipped: about a thousandth of that on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = fill * ((1 << 20) // len(fill))
    parts = [compressor.compress(prefix)] + [compressor.compress(block) for _ in range(BOMB_MIB)]
    return b"".join([*parts, compressor.flush()])


BOMBS = {
    "json": (
        b"application/json",
        b'{"data": [{"url": "https://cdn.example/a.png", "revised_prompt": "',
        b" ",
    ),
    "event line": (b"text/event-stream", b'data: {"choices": [{"delta": {"content": "', b"a"),
}


def _measured(call: Callable[[], object]) -> tuple[object, int]:
    """What ``call`` returned, and the most memory Python held at once while it ran."""
    tracemalloc.start()
    try:
        return call(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_compression_bomb_is_refused_within_bounded_memory(server: HostileServer, bomb: str) -> None:
    content_type, prefix, fill = BOMBS[bomb]
    body = gzip_bomb(prefix, fill)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    answer = Answer((head % (content_type, len(body)), body))
    server.play(answer)
    with fuzz_client(server, stream=True) as client:
        outcome, peak = _measured(lambda: assert_settles(lambda: client.generate(PROMPT), answer))
    assert isinstance(outcome, ImageToolError), f"a {BOMB_MIB} MiB answer was read: {outcome!r}"
    assert peak < ANSWER_CAP + MEMORY_SLACK, f"reading it held {peak / 2**20:.0f} MiB at its peak"


# --- The server itself ----------------------------------------------------------------------------


def test_the_server_writes_exactly_its_script(server: HostileServer) -> None:
    body = b'{"created": 1, "data": [{"url": "https://cdn.example/a.png"}]}'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    answer = Answer((head[:5], head[5:], body[:10], body[10:]), pause=0.01)
    server.play(answer)
    before = server.requests
    with fuzz_client(server, stream=False) as client:
        result = assert_settles(lambda: client.generate(PROMPT), answer)
    assert isinstance(result, ImageGenerationResult)
    assert result.urls == ["https://cdn.example/a.png"]
    assert server.requests == before + 1
