"""Answers real relays and gateways sent, replayed through a real ``ImageClient`` request.

The samples in ``tests/field_samples/`` (see its MANIFEST.md for each one's public source) are
kept byte for byte as they were posted. Each is written back onto the wire by a raw loopback
server (``tests/hostile_server.py``), so the client reads it exactly as it would read the relay:
status line, headers, framing and body. Where the posted text is not a whole answer, the
``replay_*`` function of the sample repairs it in the smallest way that keeps what makes the
sample unusual, and its docstring says what was changed.

``EXPECTED`` is the table of what each sample must be read as: its images, or the typed error it
stands for (and, for errors, the model-facing text of the tool advises rephrasing only for a
content-policy refusal).
"""

from __future__ import annotations

import ast
import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from image_tool import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ContentPolicyError,
    GenerationProgress,
    ImageClient,
    MalformedResponseError,
    ModelNotFoundError,
    NoImageError,
    QuotaExceededError,
    RateLimitError,
)
from image_tool._tool.advice import describe_failure
from image_tool.errors import StreamWithoutImageError
from image_tool.testing import png_image

from ..hostile_server import Answer, HostileServer

SAMPLES = Path(__file__).resolve().parent.parent / "field_samples"
KEY = "sk-field-samples-0123456789abcdef"
PROMPT = "a cat"


# --- What each sample must be read as --------------------------------------------------------------


@dataclass(frozen=True)
class Images:
    """A success: exactly these images, in this order."""

    urls: tuple[str, ...] = ()
    inline: tuple[str, ...] = ()
    """The ``b64_json`` of each inline image (then ``urls`` is empty)."""
    revised_prompt: str | None = None
    stages: frozenset[str] = frozenset()
    """Progress stages that must reach ``on_progress`` (streamed answers)."""
    progress_says: tuple[str, ...] = ()
    """A progress update before the final one must carry one of these texts."""
    unreadable: int = 0
    """Inline images whose bytes could not be read (base64 cut by the docs that posted them):
    kept as images, with a ``save_error``, neither link nor base64."""


@dataclass(frozen=True)
class Fails:
    """A failure of this kind (``exact``: this very class, not a subclass)."""

    kind: type[APIError]
    exact: bool = False
    status: int | None = None
    says: tuple[str, ...] = ()
    """Every one of these is in the error's message (case-insensitive)."""
    says_one_of: tuple[str, ...] = ()
    """At least one of these is in the message (case-insensitive)."""
    code: str | None = None
    summary: str | None = None
    answer_started: bool | None = None
    retry_after: float | None = None
    """The wait the error carries (to a tenth of a second), and the advice names."""
    advice_says: tuple[str, ...] = ()
    """Every one of these is in what the tool tells the model (case-insensitive)."""


Outcome = Images | Fails

VEO3_WATCH = "https://filesystem.site/cdn/20250822/2hO6Q2oDZtT5I2sZd1lmyGUjmXntfT.mp4"
VEO3_DOWNLOAD = "https://filesystem.site/cdn/download/20250822/2hO6Q2oDZtT5I2sZd1lmyGUjmXntfT.mp4"
SORA2_VIDEO = "https://filesystem.site/cdn/20251030/181a1916dcfe0bb84cafed2427204c.mp4"
INLINE_PNG = base64.b64encode(png_image(8, 8, "field-sample-06")).decode()
"""Sample 06's image: the docs elided the base64 (``iVBORw0KGgoAAAANSUhEUgAA...``), which is how
every PNG's base64 begins; a whole 8x8 PNG takes its place."""
GROK_IMAGE = "https://grok2api.example.com/v1/files/image/field-sample-33.jpg"
"""Sample 33's image: the PR wrote ``"https://..."``; this stand-in is ours, not grok2api's."""
SORA_IMAGE = "https://sora2api.example.com/tmp/field-sample-26.png"
"""Sample 26's image: the issue shows only the progress text; this link is ours."""

SATURATED = "负载已饱和"
STREAMED = {
    "07-openrouter-docs-midstream-error.sse",
    "24-gcli2api-gemini-flash-image-sse-headers-truncated.sse",
    "25-flow2api-stream-error-string.sse",
    "26-sora2api-progress-in-reasoning_content.txt",
    "32-litellm-gemini-image-stream-empty-finish-only.sse",
    "34-laisky-oneapi-gemini-image-delta-content-array-truncated.json",
    "35-relay-heartbeat-as-data-and-double-data-prefix.sse",
}
"""The samples that are (parts of) event streams: replayed to a client that asks for a stream."""

EXPECTED: dict[str, Outcome] = {
    # new-api / one-api saturation: a rate limit, whatever type, code or param says.
    "01-newapi-saturated-new_api_error.json": Fails(RateLimitError, status=429, says=(SATURATED,)),
    "02-relay-saturated-upstream_error-param429.json": Fails(RateLimitError, status=429, says=(SATURATED,)),
    "03-oneapi-billing_not_active-saturated.json": Fails(RateLimitError, status=500, says=(SATURATED,)),
    "04-newapi-saturated-pyrepr-param404.txt": Fails(RateLimitError, status=429, says=(SATURATED,)),
    # OpenRouter: images in message.images, next to prose.
    "06-openrouter-docs-message-images.json": Images(inline=(INLINE_PNG,)),
    # OpenRouter: an error at the top level of a chunk, HTTP 200, mid-stream.
    "07-openrouter-docs-midstream-error.sse": Fails(
        APIStatusError,
        exact=True,
        says=("Provider disconnected",),
        code="server_error",
        answer_started=True,
    ),
    # Preview, source and progress links are not results; the gen_ image is.
    "09-gpt4o-image-zh-asyncdata-preview-progress100link.json": Images(
        urls=("https://pro.filesystem.site/cdn/20260311/e952b8c0cadf21bb01557fd96b6e27.png",)
    ),
    "11-gpt4o-all-ratelimit-refusal-in-text.pylit.txt": Fails(
        RateLimitError, status=200, says=("rate limit",)
    ),
    # Video results are not images: say so, and name the video.
    "13-veo3-pro-relay-chat-completion-video.json": Fails(
        NoImageError, says=("video",), says_one_of=(VEO3_WATCH, VEO3_DOWNLOAD)
    ),
    "14-sora2-dmxapi-progress-oneline-sid.md": Fails(NoImageError, says=("video", SORA2_VIDEO)),
    "15-mj-chat-progress-percent-links-action-table.json": Images(
        urls=("https://filesystem.site/cdn/20240307/V2kb6sxI6RfQTlMWlKizLXs3L1p162.png",)
    ),
    "17-litellm-proxy-500-wrapped-upstream-error.http": Fails(
        APIStatusError,
        exact=True,
        status=500,
        says=("invalid options: images",),
        summary="invalid options: images",
    ),
    "18-pollinations-content-policy-upstream-azure.json": Fails(ContentPolicyError, status=422),
    "19-oneapi-no-channel-one_api_error-no-param-code.json": Fails(ModelNotFoundError, status=503),
    "20-oneapi-no-channel-503-empty-model.txt": Fails(ModelNotFoundError, status=503),
    "21-voapi-no-channel-v_api_error-transcribed.txt": Fails(ModelNotFoundError, status=503),
    "22-newapi-no-channel-distributor-msg.txt": Fails(ModelNotFoundError, status=503),
    "24-gcli2api-gemini-flash-image-sse-headers-truncated.sse": Fails(
        APIConnectionError, says=("cut",), answer_started=True
    ),
    "25-flow2api-stream-error-string.sse": Fails(APIStatusError, exact=True, says=("generation_failed",)),
    "26-sora2api-progress-in-reasoning_content.txt": Images(
        urls=(SORA_IMAGE,), progress_says=("Generation Process Begins", "Initializing generation request")
    ),
    "27-litellm-proxy-gemini-image-overloaded-code-string.json": Fails(
        RateLimitError, status=500, says=("overloaded",)
    ),
    "29-litellm-gateway-400-invalid-model-None-strings.json": Fails(
        ModelNotFoundError, status=400, says=("Invalid model name",)
    ),
    "30-relay-doc-images-edits-success-data.json": Images(
        urls=("https://pro.filesystem.site/cdn/20260424/8615b17125c841bf7eac69d77369b9.png",),
        revised_prompt="将图片换成黑色背景",
    ),
    # The image was generated (1120 tokens billed) and dropped by the gateway: say so.
    "31-sub2api-gemini-image-empty-message-no-content.json": Fails(
        NoImageError, status=200, says=("empty", "1120")
    ),
    "32-litellm-gemini-image-stream-empty-finish-only.sse": Fails(
        StreamWithoutImageError, says=("stream=False",)
    ),
    "33-grok2api-chat-image-bare-url-content.json": Images(urls=(GROK_IMAGE,)),
    "34-laisky-oneapi-gemini-image-delta-content-array-truncated.json": Fails(
        APIConnectionError, says=("cut",), answer_started=True
    ),
    "35-relay-heartbeat-as-data-and-double-data-prefix.sse": Images(inline=("image",)),
    # The Images API's user errors share one type: the code and the words decide.
    "36-openai-images-moderation_blocked-400-moderation_details.pylit.txt": Fails(
        ContentPolicyError, status=400
    ),
    "37-openai-images-bad-size-400-image_generation_user_error.pylit.txt": Fails(
        APIStatusError, exact=True, status=400, says=("Invalid size",)
    ),
    "38-openai-images-retired-dalle3-400-image_generation_user_error.pylit.txt": Fails(
        ModelNotFoundError, status=400, says=("dall-e-3",), advice_says=("dall-e-3",)
    ),
    "39-litellm-proxy-gpt-image-1-200-empty-data-truncated.json": Fails(NoImageError, status=200),
    "40-newapi-gpt-image-1.5-unknown_parameter-new_api_error.pyrepr.txt": Fails(
        APIStatusError, exact=True, status=400, says=("Unknown parameter",)
    ),
    "41-apiyi-gpt-image-2-edits-shell_api_error-unknown_parameter.json": Fails(
        APIStatusError, exact=True, status=400, says=("Unknown parameter",)
    ),
    "42-sub2api-gpt-image-2-upstream_error-502-generic.json": Fails(
        APIStatusError, exact=True, status=502, says=("Upstream request failed",)
    ),
    "43-tuzi-flux-kontext-images-api-data-first-falmedia.json": Images(
        urls=("https://fal.media/files/penguin/W7Sp0uVYy-YhXHU1mubri_61c8f15b665444ecac763a61eeffe05b.png",)
    ),
    # A data: URL is the image itself, wherever it stands; cut base64 is still no link.
    "44-relay-doc-gpt-image-2-pro-data-url-in-url-field-usage.json": Images(unreadable=1),
    "45-yunwu-gemini-3-pro-image-markdown-data-url-elided.json": Images(unreadable=1),
    "46-pollinations-nanobanana-error-string-no-image-data.json": Fails(
        APIStatusError, exact=True, status=500, says=("No image data returned from Vertex AI",)
    ),
    # Google's error inside a relay's message: its RetryInfo is the wait.
    "47-antigravity-gemini-3-pro-image-429-all-accounts-exhausted-retrydelay.json": Fails(
        RateLimitError, status=429, retry_after=3.3, advice_says=("3 seconds",)
    ),
    # Cloudflare's 524: the origin had the request and did not answer in time.
    "48-vveai-cloudflare-524-html-nano-banana-truncated.html": Fails(
        APITimeoutError, status=524, says=("524",), advice_says=("billed",)
    ),
    "49-newapi-insufficient_user_quota-new_api_error.json": Fails(QuotaExceededError, status=403),
    # A Midjourney ticket sent to a chat client: no image, no error.
    "50-yunwu-mj-submit-imagine-text-plain.json": Fails(MalformedResponseError, exact=True, status=200),
}

EXPECTED_STREAMED_09 = Images(
    urls=("https://pro.filesystem.site/cdn/20260311/e952b8c0cadf21bb01557fd96b6e27.png",),
    stages=frozenset({"queued", "generating"}),
)
"""Sample 09 again, its content streamed line by line: the same image, and its progress seen."""


# --- The wire: a raw HTTP answer --------------------------------------------------------------------


def json_answer(status: int, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def stream_answer(body: bytes) -> bytes:
    """An event stream whose end is the connection's close, as relays send it."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    return head + b"Connection: close\r\n\r\n" + body


def posted_head(head: bytes) -> bytes:
    """A head as posted (LF line ends) written as it went over the wire (CRLF)."""
    return b"".join(line + b"\r\n" for line in head.split(b"\n")) + b"\r\n"


def completion(message: dict[str, Any], model: str) -> bytes:
    """A chat completion around ``message``, for samples that posted only the message."""
    body = {
        "id": "chatcmpl-field-sample",
        "object": "chat.completion",
        "created": 1773187200,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    return json.dumps(body, ensure_ascii=False).encode()


def chunk(delta: dict[str, Any], model: str, finish_reason: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-field-sample",
        "object": "chat.completion.chunk",
        "created": 1773187200,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


def stop_and_done(model: str) -> bytes:
    return chunk({}, model, "stop") + b"data: [DONE]\n\n"


# --- Replays: each sample as the relay sent it, repaired where the post is not whole ----------------


def replay_01(sample: bytes) -> bytes:
    """Status not shown in the issue; new-api answers saturation with 429 (manifest)."""
    return json_answer(429, sample)


def replay_02(sample: bytes) -> bytes:
    """The relay passed on the upstream's 429 (its ``param`` says so)."""
    return json_answer(429, sample)


def replay_03(sample: bytes) -> bytes:
    """Status not shown: sent with 500, which says nothing of a rate limit, so only the body can."""
    return json_answer(500, sample)


def replay_04(sample: bytes) -> bytes:
    """openai-python printed ``Error code: 429 - {python dict}``: the status from the prefix, the
    dict read with ``ast.literal_eval`` and sent as the JSON it was."""
    prefix, _, literal = sample.decode().partition(" - ")
    status = int(prefix.removeprefix("Error code:").strip())
    return json_answer(status, json.dumps(ast.literal_eval(literal), ensure_ascii=False).encode())


def replay_06(sample: bytes) -> bytes:
    """The docs elided the base64: the elided prefix becomes a whole PNG's base64 (``INLINE_PNG``)."""
    elided = b"iVBORw0KGgoAAAANSUhEUgAA..."
    assert sample.count(elided) == 1 and INLINE_PNG.startswith(elided[:-3].decode())
    return json_answer(200, sample.replace(elided, INLINE_PNG.encode()))


def replay_07(sample: bytes) -> bytes:
    return stream_answer(sample)


def replay_09(sample: bytes) -> bytes:
    """Only the message was posted: it becomes a chat completion's message."""
    return json_answer(200, completion(json.loads(sample), "gpt-4o-image"))


def replay_09_streamed(sample: bytes) -> bytes:
    """The same message streamed as a relay streams it: one delta per line of its content."""
    content: str = json.loads(sample)["content"]
    deltas = [chunk({"role": "assistant", "content": ""}, "gpt-4o-image")]
    deltas += [chunk({"content": line}, "gpt-4o-image") for line in content.splitlines(keepends=True)]
    return stream_answer(b"".join(deltas) + stop_and_done("gpt-4o-image"))


def replay_11(sample: bytes) -> bytes:
    """A Python string literal (``mock_failed_result = '...'``): its value is the assistant's content."""
    _, _, literal = sample.decode().partition(" = ")
    content = ast.literal_eval(literal.strip())
    assert isinstance(content, str)
    return json_answer(200, completion({"role": "assistant", "content": content}, "gpt-4o-all"))


def replay_13(sample: bytes) -> bytes:
    return json_answer(200, sample)


def replay_14(sample: bytes) -> bytes:
    """Rendered markdown, as the docs show the content: it becomes a chat completion's content."""
    return json_answer(200, completion({"role": "assistant", "content": sample.decode()}, "sora-2"))


def replay_15(sample: bytes) -> bytes:
    """The assistant's content as a JSON string: it becomes a chat completion's content."""
    return json_answer(200, completion({"role": "assistant", "content": json.loads(sample)}, "mj-chat"))


def replay_17(sample: bytes) -> bytes:
    """The posted HTTP answer, head verbatim. The poster pretty-printed the body; written compactly
    it is exactly the 99 bytes its ``content-length`` states, so that is what is sent."""
    head, _, body = sample.partition(b"\n\n")
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert f"content-length: {len(compact)}".encode() in head
    return posted_head(head) + compact


def replay_18(sample: bytes) -> bytes:
    """The excerpt ends inside ``details`` after ``"name": "UpstreamError",``: the comma is dropped
    and the three open objects closed. Status 422, from the issue's title."""
    text = sample.decode().rstrip()
    assert text.endswith('"name": "UpstreamError",')
    return json_answer(422, (text.removesuffix(",") + "\n        }\n    }\n}\n").encode())


def replay_19(sample: bytes) -> bytes:
    """Status not shown: one-api answers 503 on this path (manifest)."""
    return json_answer(503, sample)


def replay_20(sample: bytes) -> bytes:
    """The client printed the status before the body: ``503 {...}``."""
    status, _, body = sample.decode().partition(" ")
    return json_answer(int(status), body.strip().encode())


def replay_21(sample: bytes) -> bytes:
    """Hand-transcribed from a screenshot: the client's two header lines give the status (503); the
    screenshot's line breaks are joined, the ``["message"`` typo (with a full-width colon) becomes
    ``{"message":`` and the object it opened is closed."""
    caption, status_line, *body_lines = sample.decode().splitlines()
    assert caption.endswith("HttpRequestError") and status_line.startswith("Http Status:")
    body = "".join(body_lines).replace('["message"：', '{"message":') + "}"
    return json_answer(int(status_line.removeprefix("Http Status:")), body.encode())


def replay_22(sample: bytes) -> bytes:
    """Only the client's error text was posted: the relay's message (after the last ``Error: ``)
    is sent as an OpenAI-style error body, with one-api's 503 for a missing channel."""
    message = sample.decode().rpartition("Error: ")[2].strip()
    return json_answer(503, json.dumps({"error": {"message": message}}, ensure_ascii=False).encode())


def replay_24(sample: bytes) -> bytes:
    """The packet capture's head verbatim (``HTTP/1.1 200 `` without a reason, chunked), its body
    as one chunk, then the connection closes where the capture ends: mid-chunk, before [DONE]."""
    head, _, body = sample.partition(b"\n\n")
    return posted_head(head) + f"{len(body):x}\r\n".encode() + body


def replay_25(sample: bytes) -> bytes:
    """Verbatim: two ``data:`` lines with no blank line between them."""
    return stream_answer(sample)


def replay_26(sample: bytes) -> bytes:
    """The user's text is the JSON-escaped ``reasoning_content`` of a chunk: it goes back into one,
    followed by the image (``SORA_IMAGE``) in ``delta.content``, as sora2api streams them."""
    escaped = sample.decode().strip()
    reasoning = json.loads(f'"{escaped}"')
    return stream_answer(
        chunk({"role": "assistant", "reasoning_content": reasoning}, "sora-image")
        + chunk({"content": f"![Generated Image]({SORA_IMAGE})"}, "sora-image")
        + stop_and_done("sora-image")
    )


def replay_27(sample: bytes) -> bytes:
    return json_answer(500, sample)


def replay_29(sample: bytes) -> bytes:
    return json_answer(400, sample)


def replay_30(sample: bytes) -> bytes:
    return json_answer(200, sample)


def replay_31(sample: bytes) -> bytes:
    return json_answer(200, sample)


def replay_32(sample: bytes) -> bytes:
    return stream_answer(sample)


def replay_33(sample: bytes) -> bytes:
    """The PR's ellipses: ``"https://..."`` becomes ``GROK_IMAGE`` and ``usage: {...}`` ``{}``."""
    text = sample.decode()
    assert text.count('"https://..."') == 1 and text.count("{...}") == 1
    return json_answer(200, text.replace('"https://..."', f'"{GROK_IMAGE}"').replace("{...}", "{}").encode())


def replay_34(sample: bytes) -> bytes:
    """A pretty-printed chunk cut after ``"content": [ {``: sent as the one-line ``data:`` event a
    relay writes (its lines joined), and the connection closes there, before [DONE]."""
    one_line = " ".join(line.strip() for line in sample.decode().splitlines())
    return stream_answer(f"data: {one_line}".encode())


def replay_35(sample: bytes) -> bytes:
    """Rebuilt from a Go test's lines (verbatim), as the test sent them."""
    return stream_answer(sample)


def python_literal(sample: bytes) -> bytes:
    """A body posted as Python source (``NAME = (b'...' b'...')``, or a dict's repr): its value
    as the bytes (or the JSON) it was."""
    _, _, literal = sample.decode().partition(" = ")
    value = ast.literal_eval(literal.strip() or sample.decode())
    return value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()


def replay_36(sample: bytes) -> bytes:
    """A Python bytes literal, the body of a 400 (stated)."""
    return json_answer(400, python_literal(sample))


replay_37 = replay_38 = replay_36


def replay_39(sample: bytes) -> bytes:
    """The excerpt ends at ``"prompt_tokens_details"``: its value (``null``) and the two open
    objects are closed."""
    text = sample.decode().rstrip()
    assert text.endswith('"prompt_tokens_details"')
    return json_answer(200, (text + ": null\n  }\n}\n").encode())


def replay_40(sample: bytes) -> bytes:
    """A dict's repr, as uni-api logged it with the 400 it got."""
    return json_answer(400, python_literal(sample))


def replay_41(sample: bytes) -> bytes:
    return json_answer(400, sample)


def replay_42(sample: bytes) -> bytes:
    return json_answer(502, sample)


def replay_43(sample: bytes) -> bytes:
    return json_answer(200, sample)


replay_44 = replay_45 = replay_43


def replay_46(sample: bytes) -> bytes:
    """Status not shown: "Internal Server Error" says 500."""
    return json_answer(500, sample)


def replay_47(sample: bytes) -> bytes:
    return json_answer(429, sample)


def replay_48(sample: bytes) -> bytes:
    """Cloudflare's page, cut where the issue's excerpt ends, with the status its title names."""
    head = "HTTP/1.1 524 \r\nContent-Type: text/html; charset=UTF-8\r\nServer: cloudflare\r\n"
    return f"{head}Content-Length: {len(sample)}\r\nConnection: close\r\n\r\n".encode() + sample


def replay_49(sample: bytes) -> bytes:
    """Status not shown: new-api sends 403 for this code (manifest)."""
    return json_answer(403, sample)


def replay_50(sample: bytes) -> bytes:
    """200 with ``Content-Type: text/plain`` (stated), the body JSON all the same."""
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
    return f"{head}Content-Length: {len(sample)}\r\nConnection: close\r\n\r\n".encode() + sample


REPLAYS: dict[str, Callable[[bytes], bytes]] = {
    "01-newapi-saturated-new_api_error.json": replay_01,
    "02-relay-saturated-upstream_error-param429.json": replay_02,
    "03-oneapi-billing_not_active-saturated.json": replay_03,
    "04-newapi-saturated-pyrepr-param404.txt": replay_04,
    "06-openrouter-docs-message-images.json": replay_06,
    "07-openrouter-docs-midstream-error.sse": replay_07,
    "09-gpt4o-image-zh-asyncdata-preview-progress100link.json": replay_09,
    "11-gpt4o-all-ratelimit-refusal-in-text.pylit.txt": replay_11,
    "13-veo3-pro-relay-chat-completion-video.json": replay_13,
    "14-sora2-dmxapi-progress-oneline-sid.md": replay_14,
    "15-mj-chat-progress-percent-links-action-table.json": replay_15,
    "17-litellm-proxy-500-wrapped-upstream-error.http": replay_17,
    "18-pollinations-content-policy-upstream-azure.json": replay_18,
    "19-oneapi-no-channel-one_api_error-no-param-code.json": replay_19,
    "20-oneapi-no-channel-503-empty-model.txt": replay_20,
    "21-voapi-no-channel-v_api_error-transcribed.txt": replay_21,
    "22-newapi-no-channel-distributor-msg.txt": replay_22,
    "24-gcli2api-gemini-flash-image-sse-headers-truncated.sse": replay_24,
    "25-flow2api-stream-error-string.sse": replay_25,
    "26-sora2api-progress-in-reasoning_content.txt": replay_26,
    "27-litellm-proxy-gemini-image-overloaded-code-string.json": replay_27,
    "29-litellm-gateway-400-invalid-model-None-strings.json": replay_29,
    "30-relay-doc-images-edits-success-data.json": replay_30,
    "31-sub2api-gemini-image-empty-message-no-content.json": replay_31,
    "32-litellm-gemini-image-stream-empty-finish-only.sse": replay_32,
    "33-grok2api-chat-image-bare-url-content.json": replay_33,
    "34-laisky-oneapi-gemini-image-delta-content-array-truncated.json": replay_34,
    "35-relay-heartbeat-as-data-and-double-data-prefix.sse": replay_35,
    "36-openai-images-moderation_blocked-400-moderation_details.pylit.txt": replay_36,
    "37-openai-images-bad-size-400-image_generation_user_error.pylit.txt": replay_37,
    "38-openai-images-retired-dalle3-400-image_generation_user_error.pylit.txt": replay_38,
    "39-litellm-proxy-gpt-image-1-200-empty-data-truncated.json": replay_39,
    "40-newapi-gpt-image-1.5-unknown_parameter-new_api_error.pyrepr.txt": replay_40,
    "41-apiyi-gpt-image-2-edits-shell_api_error-unknown_parameter.json": replay_41,
    "42-sub2api-gpt-image-2-upstream_error-502-generic.json": replay_42,
    "43-tuzi-flux-kontext-images-api-data-first-falmedia.json": replay_43,
    "44-relay-doc-gpt-image-2-pro-data-url-in-url-field-usage.json": replay_44,
    "45-yunwu-gemini-3-pro-image-markdown-data-url-elided.json": replay_45,
    "46-pollinations-nanobanana-error-string-no-image-data.json": replay_46,
    "47-antigravity-gemini-3-pro-image-429-all-accounts-exhausted-retrydelay.json": replay_47,
    "48-vveai-cloudflare-524-html-nano-banana-truncated.html": replay_48,
    "49-newapi-insufficient_user_quota-new_api_error.json": replay_49,
    "50-yunwu-mj-submit-imagine-text-plain.json": replay_50,
}


@dataclass(frozen=True)
class Case:
    file: str
    stream: bool
    replay: Callable[[bytes], bytes]
    expected: Outcome


CASES = [
    *(Case(file, file in STREAMED, REPLAYS[file], expected) for file, expected in EXPECTED.items()),
    Case(
        "09-gpt4o-image-zh-asyncdata-preview-progress100link.json",
        True,
        replay_09_streamed,
        EXPECTED_STREAMED_09,
    ),
]


def case_id(case: Case) -> str:
    return case.file.split("-", 1)[0] + ("-streamed" if case.stream else "")


# --- The tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def test_every_sample_has_an_expected_reading_and_a_replay() -> None:
    samples = {path.name for path in SAMPLES.iterdir() if path.name != "MANIFEST.md"}
    assert samples == set(EXPECTED) == set(REPLAYS)
    manifest = (SAMPLES / "MANIFEST.md").read_text(encoding="utf-8")
    assert all(f"| {name} |" in manifest for name in samples)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_field_sample_is_read_as_expected(server: HostileServer, case: Case) -> None:
    server.play(Answer((case.replay((SAMPLES / case.file).read_bytes()),)))
    progress: list[GenerationProgress] = []
    client = ImageClient(api_key=KEY, base_url=server.base_url, max_retries=0, stream=case.stream)
    expected = case.expected
    with client:
        if isinstance(expected, Fails):
            with pytest.raises(APIError) as caught:
                client.generate(PROMPT, on_progress=progress.append)
            check_failure(caught.value, expected)
            return
        result = client.generate(PROMPT, on_progress=progress.append)
    assert [image.url for image in result.images if image.url] == list(expected.urls)
    unreadable = [image for image in result.images if not (image.url or image.b64_json)]
    assert len(unreadable) == expected.unreadable
    assert all(image.save_error for image in unreadable)
    assert [image.b64_json for image in result.images if image.b64_json] == list(expected.inline)
    assert len(result.images) == len(expected.urls) + len(expected.inline) + expected.unreadable
    if expected.revised_prompt is not None:
        assert [image.revised_prompt for image in result.images] == [expected.revised_prompt]
    assert expected.stages <= {update.stage for update in progress}
    if expected.progress_says:
        before_the_end = [update.text for update in progress[:-1]]
        assert any(text in line for line in before_the_end for text in expected.progress_says), progress


def check_failure(error: APIError, expected: Fails) -> None:
    if expected.exact:
        assert type(error) is expected.kind, repr(error)
    else:
        assert isinstance(error, expected.kind), repr(error)
    if expected.status is not None:
        assert error.status_code == expected.status
    message = error.message.lower()
    for text in expected.says:
        assert text.lower() in message, error.message
    if expected.says_one_of:
        assert any(text.lower() in message for text in expected.says_one_of), error.message
    if expected.code is not None:
        assert error.code == expected.code
    if expected.summary is not None:
        assert error.summary == expected.summary
    if expected.answer_started is not None:
        assert error.answer_started is expected.answer_started
    if expected.retry_after is not None:
        assert isinstance(error, APIStatusError) and error.retry_after is not None, repr(error)
        assert abs(error.retry_after - expected.retry_after) < 0.1
    advice = describe_failure(error)
    assert advises_rephrasing(advice) == (expected.kind is ContentPolicyError), advice
    assert "<" not in advice, advice  # never a page's markup
    for text in expected.advice_says:
        assert text.lower() in advice.lower(), advice


def advises_rephrasing(advice: str) -> bool:
    """Whether the tool tells the model to rephrase: "do not rephrase it" is not such advice."""
    return re.search(r"(?<!not )(?<!n't )(?<!never )\brephras", advice, re.IGNORECASE) is not None
