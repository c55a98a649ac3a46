"""The OpenAI Images API as FakeRelay serves it: ``POST /v1/images/generations`` (JSON) and
``POST /v1/images/edits`` (``multipart/form-data``), read and checked as OpenAI does, answered
whole or as server-sent events.

Three model families: ``gpt-image*`` (base64 in the asked ``output_format``, usage, streaming),
``dall-e-3`` (links or base64 with a ``revised_prompt``, one image, no streaming, no edits), and
any other model, answered as ``dall-e-3`` but with up to ten images in the sizes of either family.

A generation with ``"async": true`` is a job instead (``_image_jobs.py``): ``submit_image_job``
and ``poll_image_job`` drive it with the handler's key check, limits and replies.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._admission import Ticket
from ._answers import EVENT_STREAM_HEADERS, Answer, Plain, Stream
from ._formats import encoded_image
from ._image_jobs import (
    ImageJobScript,
    JobAnswer,
    JobOrder,
    fingerprint,
    idempotency_key,
    job_fields,
    job_refusal,
)
from ._images_request import ImagesApiError, ImagesRequest, read_images_request
from ._png import png_image
from ._replies import Reply

if TYPE_CHECKING:
    from ._handler import Handler

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


def submit_image_job(handler: Handler, body: bytes) -> None:
    """An asynchronous submit, its key checked: a replay or a conflict is answered before the
    limits and reserves nothing; a new job passes them, then plays the next reply."""
    relay, jobs = handler.relay, handler.relay._image_jobs
    fields = job_fields(body) or {}
    key = idempotency_key(handler.headers.get("Idempotency-Key"))
    request = job_refusal(fields, key) or _read_job(handler, body)
    if isinstance(request, JobAnswer):
        _send_job(handler, request)
        return
    if (replayed := jobs.claim(key, fingerprint(fields))) is not None:
        _send_job(handler, replayed)
        return
    with relay._lock:
        relay.in_flight += 1
        relay.max_in_flight = max(relay.max_in_flight, relay.in_flight)
    made = False
    try:
        admitted = relay._admission.admit(request.n)
        if isinstance(admitted, Ticket):
            made = _submit_admitted(handler, request, key, admitted)
        else:
            handler._write(admitted)
    finally:
        if not made:
            jobs.release(key)
        with relay._lock:
            relay.in_flight -= 1


def poll_image_job(handler: Handler, task_id: str) -> None:
    """``GET /v1/images/generations/{task_id}``, behind the same bearer check."""
    relay = handler.relay
    if handler.headers.get("Authorization") != f"Bearer {relay.api_key}":
        handler._write(relay._profile.bad_key())
        return
    _send_job(handler, relay._image_jobs.poll(task_id, relay.origin))


def _read_job(handler: Handler, body: bytes) -> ImagesRequest | JobAnswer:
    """The request read as a synchronous one is (OpenAI's checks), or its 400."""
    try:
        return read_images_request("generations", handler.headers.get("Content-Type"), body)
    except ImagesApiError as error:
        return JobAnswer(400, error.body, content_type="application/json")


def _submit_admitted(handler: Handler, request: ImagesRequest, key: str | None, ticket: Ticket) -> bool:
    """Whether a job was made. A reply that draws nothing (an error, a raw body, a fault, a
    relay's refusal) answers the submit as it would a synchronous request."""
    relay = handler.relay
    reply = relay._next_reply()
    script = reply.async_job
    draws = (reply.body, reply.fault, reply.relay_refusal, reply.status) == (None, None, None, 200)
    if script is None and not draws:
        handler._answer_admitted(request, ticket, reply)
        return False
    if reply.delay and relay._stopping.wait(reply.delay):
        relay._admission.finish(ticket, request.prompt, 0)
        return False
    settle = functools.partial(relay._admission.finish, ticket, request.prompt)  # counts once

    order = JobOrder(request.prompt, request.n, request.size)
    answer = relay._image_jobs.submit(key, order, script or ImageJobScript(), settle)
    relay._admission.leave(ticket)  # its place is free; its images stay reserved until it ends
    _send_job(handler, answer, tuple(reply.headers.items()))
    return True


def _send_job(handler: Handler, answer: JobAnswer, headers: tuple[tuple[str, str], ...] = ()) -> None:
    handler._write(Plain(answer.status, answer.body, (*answer.headers, *headers), answer.content_type))


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
