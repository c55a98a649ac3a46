"""FakeRelay: a real HTTP server on loopback that behaves like an image relay."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._admission import Admission, Ticket, images_answered
from ._answers import Answer, GenerationRequest, Plain, Stream, error_body, images_api_body
from ._images_api import (
    ImagesEndpoint,
    ImagesRequest,
    _ImagesApiError,
    images_answer,
    images_body,
    read_images_request,
)
from ._multipart import MultipartForm, is_multipart, read_form
from ._png import PNG_SIGNATURE, png_image
from ._profiles import profile_named
from ._replies import RelayProfile, Reply

_LARGE_IMAGE_PATH = re.compile(r"^/images/large/(\d{1,4})mb/[0-9a-f]{16}\.png$")
_IMAGE_PATH = re.compile(r"^/images/(\d{2,4})x(\d{2,4})/([0-9a-f]{16})\.png$")
_MAX_SIDE = 4096
_IMAGES_ENDPOINTS: dict[str, ImagesEndpoint] = {
    "/v1/images/generations": "generations",
    "/v1/images/edits": "edits",
}


@dataclass(frozen=True)
class RecordedRequest:
    """A request FakeRelay received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int
    """The client's source port: the same port for two requests means a reused connection."""

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> MultipartForm | None:
        """A ``multipart/form-data`` body's text fields and files (an edit's images and mask), or
        None for any other body; ``ValueError`` when the form is malformed."""
        content_type = next(
            (value for name, value in self.headers.items() if name.lower() == "content-type"), None
        )
        return read_form(content_type or "", self.body) if is_multipart(content_type) else None


class FakeRelay:
    """An OpenAI-compatible image relay on ``127.0.0.1``, for tests and offline demos.

    ```python
    with FakeRelay() as relay:
        client = ImageClient(api_key=relay.api_key, base_url=relay.base_url)
        relay.queue(Reply.rate_limited())   # the next answer is a 429
        ...
        relay.requests                      # what the relay received
    ```

    It serves, each with a bearer check:

    - ``POST /v1/chat/completions``: answers in the documented shape with links to PNG images of
      the requested size that it serves itself (``GET /images/WxH/TOKEN.png``);
    - ``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (``multipart/form-data``:
      ``image[]``, ``mask``), the OpenAI Images API: ``gpt-image*`` models answer base64 in the
      asked ``output_format`` with usage, and stream ``partial_images`` previews then the image as
      ``image_generation.*`` / ``image_edit.*`` events; ``dall-e-3`` answers links (or base64) with
      a ``revised_prompt``; values OpenAI refuses get its 400 naming the field (``param``).

    Every endpoint plays queued ``Reply`` objects, in order (errors, delays, transport faults, raw
    bodies, pace between events), before falling back to ordinary successes.

    ``profile`` puts relay software in front: the replies are then its upstream's answers, and
    FakeRelay sends them on as ``"new-api"``, ``"one-api"`` or the ``"litellm"`` proxy would
    (stream framing and ends, dropped chunks and headers, reshaped errors; on the Images API, its
    errors only). ``"gateway"`` answers the chat endpoint as OpenRouter or the Vercel AI Gateway
    draw: a request whose ``modalities`` holds ``"image"`` gets a sentence and inline PNGs in
    ``message.images`` (streamed: ``delta.images``), sized by ``image_config.aspect_ratio``. The
    default, ``"vendor"``, sends the replies as scripted.

    Limits, off by default, are checked on every generation endpoint (after the key and the
    request are read, before any queued reply), and answered by the relay itself, the same under
    every profile, in new-api's words (``_admission.py``):

    - ``rate_limit=R``: a token bucket of ``max(1, R)`` requests refilled at ``R`` a second; a
      request beyond it gets 429 ``rate_limit_exceeded`` with ``Retry-After``: the seconds until
      the next token, a decimal string such as ``"0.02"``, at least ``0.01``;
    - ``quota_images=Q``: each admitted request reserves its ``n`` images; once generated and
      reserved images would pass ``Q``, the request gets ``Reply.quota_exhausted()``'s answer (403
      ``insufficient_user_quota``), so at most ``Q`` images are ever generated;
    - ``max_concurrent=C``: a request arriving while ``C`` admitted requests are being answered gets
      new-api's saturation answer: 429, the message ``_go_relays.SATURATED`` and a request id,
      type ``upstream_error``, code ``bad_response_status_code``, param ``"429"``, no Retry-After.

    ``clock`` is what the rate limit reads (seconds, ``time.monotonic`` by default): a test that
    moves a clock of its own decides when tokens come, however fast its machine sends.

    ``relay.requests`` holds what came, an edit's form readable as ``request.form``;
    ``relay.generated`` counts the images answered, ``relay.generated_prompts`` lists the prompts of
    successful answers in order (one entry per answer).
    """

    def __init__(
        self,
        *,
        api_key: str = "fake-relay-key",
        port: int = 0,
        default_reply: Reply | None = None,
        profile: RelayProfile = "vendor",
        rate_limit: float | None = None,
        quota_images: int | None = None,
        max_concurrent: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.port = port
        """The port to listen on; 0 picks a free one."""
        self.default_reply = default_reply or Reply()
        """The answer when no reply is queued."""
        self.profile: RelayProfile = profile
        """The relay software FakeRelay answers as (``"vendor"``: the replies as scripted)."""
        self._profile = profile_named(profile)
        self._admission = Admission(
            rate_limit=rate_limit, quota_images=quota_images, max_concurrent=max_concurrent, clock=clock
        )
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        """The most generation requests the relay was handling at once."""
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeRelay is not running: use it as a context manager or call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """The base URL to give a client: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.origin}/v1"

    @property
    def rate_limit(self) -> float | None:
        """Requests a second the relay allows (a burst of ``max(1, rate_limit)``), or None."""
        return self._admission.rate_limit

    @property
    def quota_images(self) -> int | None:
        """Images the key may generate in all, or None."""
        return self._admission.quota_images

    @property
    def max_concurrent(self) -> int | None:
        """Generation requests answered at once before the relay is saturated, or None."""
        return self._admission.max_concurrent

    @property
    def generated(self) -> int:
        """Images answered so far (``n`` per successful answer)."""
        return self._admission.generated

    @property
    def generated_prompts(self) -> list[str]:
        """The prompts answered with images, in order, one entry per answer (a copy)."""
        return self._admission.generated_prompts

    def queue(self, *replies: Reply) -> None:
        """Answer the next generation requests with these replies, in order."""
        with self._lock:
            self._replies.extend(replies)

    def start(self) -> FakeRelay:
        handler = type("Handler", (_Handler,), {"relay": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._server = None

    def __enter__(self) -> FakeRelay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._replies.popleft() if self._replies else self.default_reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 drops bursts of concurrent connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer (a timeout, a size cap) is expected, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    relay: FakeRelay
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    _before_last_write: Callable[[], None] | None = None
    """Called once, before the write that completes an admitted request's answer."""

    def setup(self) -> None:
        super().setup()
        with self.relay._lock:
            self.relay._connections.add(self.connection)

    def finish(self) -> None:
        with self.relay._lock:
            self.relay._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read ``relay.requests`` instead."""

    def do_GET(self) -> None:
        self._record(b"")
        if large := _LARGE_IMAGE_PATH.match(self.path):
            self._send_large_image(int(large[1]) * 1024 * 1024)
            return
        match = _IMAGE_PATH.match(self.path)
        if not match or max(int(match[1]), int(match[2])) > _MAX_SIDE:
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        image = png_image(int(match[1]), int(match[2]), match[3])
        self._send(200, image, content_type="image/png")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        endpoint = _IMAGES_ENDPOINTS.get(self.path)
        if self.path != "/v1/chat/completions" and endpoint is None:
            self._send(404, error_body(f"Invalid URL (POST {self.path})", "invalid_request_error"))
            return
        if self.headers.get("Authorization") != f"Bearer {self.relay.api_key}":
            self._write(self.relay._profile.bad_key())
            return
        request: GenerationRequest | ImagesRequest
        try:
            if endpoint is None:
                request = self.relay._profile.read(body)
            else:
                request = read_images_request(endpoint, self.headers.get("Content-Type"), body)
        except _ImagesApiError as error:
            self._send(400, error.body)
            return
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            self._send(400, error_body(f"Invalid request: {error}", "invalid_request_error"))
            return
        relay = self.relay
        with relay._lock:
            relay.in_flight += 1
            relay.max_in_flight = max(relay.max_in_flight, relay.in_flight)
        try:
            admitted = relay._admission.admit(request.n)
            if isinstance(admitted, Ticket):
                self._answer_admitted(request, admitted)
            else:
                self._write(admitted)
        finally:
            with relay._lock:
                relay.in_flight -= 1

    def _answer_admitted(self, request: GenerationRequest | ImagesRequest, ticket: Ticket) -> None:
        """The scripted answer. The request is finished (its images counted, its place given
        back) just before the last write: a client that has the whole answer, and asks again at
        once, finds the counts up to date and the place free. An answer cut short counts nothing."""
        relay = self.relay
        reply = relay._next_reply()
        images = images_answered(request, reply, relay.profile)
        finished = False

        def finish(delivered: int) -> None:
            nonlocal finished
            if not finished:
                finished = True
                relay._admission.finish(ticket, request.prompt, delivered)

        self._before_last_write = lambda: finish(images)
        try:
            if reply.delay and relay._stopping.wait(reply.delay):
                return
            self._answer(request, reply)
        finally:
            self._before_last_write = None
            finish(0)

    def _answer(self, request: GenerationRequest | ImagesRequest, reply: Reply) -> None:
        if isinstance(request, ImagesRequest):
            self._answer_images(request, reply)
            return
        origin, profile = self.relay.origin, self.relay._profile
        if reply.fault is not None:
            self._misbehave(reply, images_api_body(request, origin, reply))
            return
        answer: Answer | None = None
        if reply.relay_refusal is not None:
            answer = profile.refuse(reply.relay_refusal)
        if answer is None:
            upstream = profile.upstream(request, origin, reply)
            if isinstance(upstream, Stream):  # paced as the upstream writes, before any relay reshapes it
                upstream = replace(upstream, events=self._paced(upstream.events, reply.pace))
            answer = profile.deliver(upstream, request)
        self._write(answer)

    def _answer_images(self, request: ImagesRequest, reply: Reply) -> None:
        """The Images API's answer. A relay profile reshapes its errors as on the chat endpoint
        (relays send every endpoint's upstream errors through one handler) and its own refusals;
        successes and streams go out as the vendor writes them."""
        origin, profile = self.relay.origin, self.relay._profile
        if reply.fault is not None:
            self._misbehave(reply, images_body(request, origin))
            return
        answer: Answer | None = None
        if reply.relay_refusal is not None:
            answer = profile.refuse(reply.relay_refusal)
        if answer is None:
            answer = images_answer(request, origin, reply)
            if isinstance(answer, Stream):
                answer = replace(answer, events=self._paced(answer.events, reply.pace))
            elif answer.status >= 400:
                answer = profile.deliver(answer, request.as_generation())
        self._write(answer)

    def _record(self, body: bytes) -> None:
        recorded = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            body=body,
            client_port=self.client_address[1],
        )
        with self.relay._lock:
            self.relay.requests.append(recorded)

    def _misbehave(self, reply: Reply, answer: bytes) -> None:
        self.close_connection = True
        if reply.fault == "reset_mid_body":
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n"
            )
            self.wfile.write(head.encode() + answer[: len(answer) // 2])
            # Linger 0: close() sends a TCP reset instead of an orderly end.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif reply.fault == "endless_stream":
            pings = iter(lambda: b": PING\n\n", None)
            self._send_stream(Stream(self._paced(pings, reply.pace or 0.05)))
        elif reply.fault == "huge_body":
            size = 256 * 1024 * 1024
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            self.wfile.write(head.encode() + b'{"data": "')
            filler = b"A" * (1024 * 1024)
            for _ in range(size // len(filler)):
                if self.relay._stopping.is_set():
                    return
                self.wfile.write(filler)

    def _send_large_image(self, size: int) -> None:
        """``size`` bytes that start as a PNG, written in 1 MiB pieces: for download benchmarks."""
        head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {size}\r\n\r\n"
        self.wfile.write(head.encode() + PNG_SIGNATURE)
        piece, left = bytes(1024 * 1024), size - len(PNG_SIGNATURE)
        while left > 0:
            self.wfile.write(piece[: min(left, len(piece))])
            left -= len(piece)

    def _paced(self, events: Iterable[bytes], pace: float) -> Iterator[bytes]:
        """The events, ``pace`` seconds apart, until the relay stops."""
        for event in events:
            if pace and self.relay._stopping.wait(pace):
                return
            yield event

    def _write(self, answer: Answer) -> None:
        if isinstance(answer, Plain):
            self._send(answer.status, answer.body, content_type=answer.content_type, headers=answer.headers)
        else:
            self._send_stream(answer)

    def _send_stream(self, stream: Stream) -> None:
        """Server-sent events, each written as it comes. Chunked, the connection stays open for the
        next request; otherwise the body ends when the connection closes."""
        self.close_connection = not stream.chunked
        lines = ["HTTP/1.1 200 OK", *(f"{k}: {v}" for k, v in stream.headers)]
        lines.append("Transfer-Encoding: chunked" if stream.chunked else "Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for event in stream.events:
            if self.relay._stopping.is_set():  # nothing more: not even what a relay adds at the end
                self.close_connection = True
                return
            if not stream.chunked:
                self.wfile.write(event)
            elif event:  # an empty chunk would end the body
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        # Unchunked, the body ends when the connection closes, after this handler returns.
        self._last_write_coming()
        if stream.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _last_write_coming(self) -> None:
        if self._before_last_write is not None:
            self._before_last_write()

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        # One write per answer: separate header and body writes cost a delayed ACK (~40 ms).
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:  # a status the standard does not name: FakeRelay sends any it is told
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}"]
        lines += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
        self._last_write_coming()
        self.wfile.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
