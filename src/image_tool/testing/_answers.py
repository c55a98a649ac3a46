"""What FakeRelay writes: a request read, and the vendor's answer to it in each shape, plain or streamed."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._png import png_image
from ._replies import Reply

_LINK = re.compile(r"(https?://[^\s)]+)")
_USAGE = {"prompt_tokens": 12, "completion_tokens": 80, "total_tokens": 92}
_SIZES = {"1024x1024", "1024x1792", "1792x1024"}
_SHORT_PIECE = 12  # progress text streams in small pieces
_LONG_PIECE = 8192  # an inline image in large ones
_PROGRESS = {
    "zh": (">🕐 排队中.", ">⚡ 生成中.....", ">🏃 进度 ", "> ✅ 生成完成", "点击下载"),
    "en": (
        ">🕐 Queuing.",
        ">⚡ Generating.....",
        ">🏃 Progress ",
        "> ✅ Generation complete",
        "Click to download",
    ),
}


@dataclass(frozen=True)
class GenerationRequest:
    """The parts of a chat-completions image request that shape the answer."""

    prompt: str
    model: str
    n: int
    width: int
    height: int
    style: str
    stream: bool
    include_usage: bool = False
    """``stream_options.include_usage``: the client asked for the usage chunk."""

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def revised_prompt(self) -> str:
        return f"{self.prompt}, {self.style} style, {self.size} frame"

    def token(self, index: int) -> str:
        return hashlib.sha256(f"{self.prompt}|{self.size}|{index}".encode()).hexdigest()[:16]


def read_request(body: bytes) -> GenerationRequest:
    """The request's fields; ``ValueError`` names what is missing or wrong."""
    return request_fields(json.loads(body))


def request_fields(request: Any) -> GenerationRequest:
    """The fields of a chat request read from its JSON."""
    content = request["messages"][-1]["content"]
    if isinstance(content, list):  # multi-part user content: its text parts
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    prompt, model = str(content).strip(), request.get("model")
    size = str(request.get("size") or "1024x1024")
    n = request.get("n", 1)
    if not prompt or not isinstance(model, str) or not model:
        raise ValueError("model and a user message are required")
    if size not in _SIZES or not isinstance(n, int) or not 1 <= n <= 10:
        raise ValueError(f"invalid size or n: {size!r}, {n!r}")
    width, height = (int(side) for side in size.split("x"))
    style = str(request.get("style") or "vivid")
    options = request.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return GenerationRequest(
        prompt, model, n, width, height, style, bool(request.get("stream")), include_usage
    )


EVENT_STREAM_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))


@dataclass(frozen=True)
class Plain:
    """A whole answer; ``headers`` come after Content-Type and Content-Length."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


@dataclass(frozen=True)
class Stream:
    """Server-sent events, written as they come. Chunked, the connection stays open after them;
    otherwise the body ends when the connection closes."""

    events: Iterator[bytes]
    headers: tuple[tuple[str, str], ...] = EVENT_STREAM_HEADERS
    chunked: bool = False


Answer = Plain | Stream


def vendor_answer(request: GenerationRequest, origin: str, reply: Reply) -> Answer:
    """The vendor's answer to a request, as the reply scripts it (transport faults aside)."""
    headers = tuple(reply.headers.items())
    if reply.body is not None:
        return Plain(reply.status, reply.body, headers)
    if reply.shape == "images_api" and reply.content is None:  # never streamed, as in the field
        return Plain(reply.status, images_api_body(request, origin, reply), headers)
    content = chat_content(request, origin, reply)
    model = reply.model or request.model
    if not request.stream:
        return Plain(reply.status, completion_body(content, model), headers)
    return Stream(stream_events(content, model, reply), (*EVENT_STREAM_HEADERS, *headers))


def error_body(message: str, error_type: str, code: str | None = None) -> bytes:
    """The vendor's own error object (a wrong key, a bad request)."""
    return json.dumps({"error": {"message": message, "type": error_type, "code": code}}).encode()


def images_api_body(request: GenerationRequest, origin: str, reply: Reply) -> bytes:
    """The documented shape: ``{"created", "data": [{"url" | "b64_json", "revised_prompt"}]}``."""
    data = []
    for index in range(request.n):
        if reply.image_format == "b64_json":
            item = {"b64_json": _base64_png(request, index)}
        else:
            item = {"url": _image_url(request, origin, index)}
        data.append({**item, "revised_prompt": request.revised_prompt})
    return _json({"created": int(time.time()), "data": data})


def chat_content(request: GenerationRequest, origin: str, reply: Reply) -> str | list[dict[str, Any]]:
    """A chat completion's content in the reply's shape (or the reply's own content)."""
    if reply.content is not None:
        return reply.content
    urls = [_image_url(request, origin, index) for index in range(request.n)]
    if reply.shape == "inline_data":
        return "\n\n".join(
            f"![Generated Image](data:image/png;base64,{_base64_png(request, index)})"
            for index in range(request.n)
        )
    if reply.shape == "content_parts":
        parts: list[dict[str, Any]] = [{"type": "text", "text": f"Here is {request.prompt}."}]
        return parts + [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    block = {"prompt": request.revised_prompt, "ratio": "1:1", "n": request.n}
    if reply.shape == "json_block":
        return f"```json\n{json.dumps({**block, 'image': urls}, ensure_ascii=False)}\n```\n\n✅ 生成完成"
    queued, generating, progress, done, download = _PROGRESS[reply.locale]
    preview = f"{origin}/images/{request.size}/{request.token(0)}.png"
    lines = [f"```json\n{json.dumps(block, ensure_ascii=False)}\n```", queued, generating]
    lines.append(f"{progress}7....13....25....37....49....61....73....85....[100]({preview})")
    if reply.stream_fault is None or not request.stream:  # a faulty stream never gets that far
        lines.append(done)
        for index, url in enumerate(urls):
            lines += [f"![gen_{index:02d}{request.token(index)[:6]}]({url})", f"[{download}]({url})"]
    return "\n\n".join(lines)


def completion_body(content: str | list[dict[str, Any]], model: str) -> bytes:
    message = {"role": "assistant", "content": content}
    return _json(
        {
            "id": "chatcmpl-fakerelay",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": _USAGE,
        }
    )


def stream_events(content: str | list[dict[str, Any]], model: str, reply: Reply) -> Iterator[bytes]:
    """The server-sent events of a streamed completion, as relays write them: keep-alive
    comments, ``data:`` with and without a space, a usage-only chunk, then ``[DONE]``."""
    yield b": PING\n\n"
    yield _event(_chunk(model, {"role": "assistant", "content": ""}))
    pieces = [content] if isinstance(content, list) else list(_pieces(content))
    fails_at = len(pieces) * 4 // 5  # well into the progress text
    for number, piece in enumerate(pieces):
        if reply.stream_fault == "error_mid_stream" and number == fails_at:
            error = {"message": "upstream timeout (request id: 20260311-fake)", "type": "upstream_error"}
            yield _event({"error": {**error, "code": "do_request_failed"}})
            return
        if reply.stream_fault == "cut_before_done" and number == fails_at:
            return
        yield _event(_chunk(model, {"content": piece}), space=number % 2 == 0)
        if number % 10 == 9:
            yield b": PING\n\n"
    yield _event(_chunk(model, {}, finish_reason="stop"))
    yield _event({**_chunk(model, {}), "choices": [], "usage": _USAGE})  # a usage-only chunk
    yield b"data: [DONE]\n\n"


def _pieces(text: str) -> Iterator[str]:
    """Deltas as relays send them: text in small pieces, an inline image in large ones, a link whole."""
    for line in text.splitlines(keepends=True):
        size = _LONG_PIECE if len(line) > 200 else _SHORT_PIECE
        for part in _LINK.split(line):
            if _LINK.fullmatch(part):
                yield part
                continue
            for start in range(0, len(part), size):
                yield part[start : start + size]


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {
        "id": "chatcmpl-fakerelay",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }


def _event(payload: dict[str, Any], *, space: bool = True) -> bytes:
    return (b"data: " if space else b"data:") + _json(payload) + b"\n\n"


def _image_url(request: GenerationRequest, origin: str, index: int) -> str:
    return f"{origin}/images/{request.size}/{request.token(index)}.png"


def _base64_png(request: GenerationRequest, index: int) -> str:
    return base64.b64encode(png_image(request.width, request.height, request.token(index))).decode()


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()
