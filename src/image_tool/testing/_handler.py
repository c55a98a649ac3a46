"""FakeRelay's HTTP side: each request read, admitted, answered as the reply and the relay
profile say, and recorded."""

from __future__ import annotations

import functools
import json
import re
import socket
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ._admission import Ticket, images_answered
from ._answers import Answer, GenerationRequest, Plain, Stream, error_body, images_api_body
from ._image_jobs import image_task_id, job_fields
from ._images_api import images_answer, images_body, poll_image_job, submit_image_job
from ._images_request import ImagesApiError, ImagesEndpoint, ImagesRequest, read_images_request
from ._midjourney import MjAnswer, MjRouteKind, MjScript, Submission, midjourney_route, relay_error
from ._multipart import MultipartForm, is_multipart, read_form
from ._png import PNG_SIGNATURE, png_image
from ._replies import Reply

if TYPE_CHECKING:
    from ._relay import FakeRelay

_LARGE_IMAGE_PATH = re.compile(r"^/images/large/(\d{1,4})mb/[0-9a-f]{16}\.png$")
_IMAGE_PATH = re.compile(r"^/images/(\d{2,4})x(\d{2,4})/([0-9a-f]{16})\.png$")
_MAX_SIDE = 4096
_MJ_TICKET = '{"code":1,"description":"提交成功","result":"1712000000000000","properties":{}}'.encode()
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


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 drops bursts of concurrent connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer (a timeout, a size cap) is expected, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
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
        if (route := midjourney_route(self.path)) and route[0] == "fetch":
            self._midjourney(route[0], route[1], b"")
            return
        if (task_id := image_task_id(self.path)) is not None:
            poll_image_job(self, task_id)
            return
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
        if (route := midjourney_route(self.path)) and route[0] != "fetch":
            self._midjourney(route[0], route[1], body)
            return
        endpoint = _IMAGES_ENDPOINTS.get(self.path)
        if self.path != "/v1/chat/completions" and endpoint is None:
            self._send(404, error_body(f"Invalid URL (POST {self.path})", "invalid_request_error"))
            return
        if self.headers.get("Authorization") != f"Bearer {self.relay.api_key}":
            self._write(self.relay._profile.bad_key())
            return
        if endpoint == "generations" and job_fields(body) is not None:  # "async": true
            submit_image_job(self, body)
            return
        request: GenerationRequest | ImagesRequest
        try:
            if endpoint is None:
                request = self.relay._profile.read(body)
            else:
                request = read_images_request(endpoint, self.headers.get("Content-Type"), body)
        except ImagesApiError as error:
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

    def _answer_admitted(
        self, request: GenerationRequest | ImagesRequest, ticket: Ticket, reply: Reply | None = None
    ) -> None:
        """The scripted answer (``reply``, or the next queued). The request is finished (its images
        counted, its place given back) just before the last write: a client that has the whole answer,
        and asks again at once, finds the counts up to date and the place free. An answer cut short
        counts nothing."""
        relay = self.relay
        reply = relay._next_reply() if reply is None else reply
        images = images_answered(request, reply, relay.profile)
        finish = functools.partial(relay._admission.finish, ticket, request.prompt)  # counts once
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

    def _midjourney(self, kind: MjRouteKind, task_id: str, body: bytes) -> None:
        """new-api's Midjourney routes: TokenAuth reads the key from ``mj-api-secret`` when
        Authorization is empty (or ``midjourney-proxy``); submits pass the limits, fetches are free."""
        relay, tasks = self.relay, self.relay._midjourney
        key = self.headers.get("Authorization") or ""
        if key in ("", "midjourney-proxy"):
            key = self.headers.get("mj-api-secret") or ""
        if key.removeprefix("Bearer ") != relay.api_key:
            self._write(relay._profile.bad_key())
            return
        if kind == "fetch":
            self._send_mj(tasks.fetch(task_id, relay.origin))
            return
        checked = tasks.check(kind, body)
        if isinstance(checked, MjAnswer):
            self._send_mj(checked)
            return
        quota = relay_error("quota_not_enough")
        with relay._lock:
            relay.in_flight += 1
            relay.max_in_flight = max(relay.max_in_flight, relay.in_flight)
        try:
            admitted = relay._admission.admit(1, quota_refusal=Plain(400, quota.body, (), quota.content_type))
            if isinstance(admitted, Ticket):
                self._submit_admitted(checked, admitted)
            else:
                self._write(admitted)
        finally:
            with relay._lock:
                relay.in_flight -= 1

    def _submit_admitted(self, submission: Submission, ticket: Ticket) -> None:
        """The next reply played to a submit: a raw body or a transport fault as scripted, else a
        task (or its refusal). The ticket is settled, or handed to the task, before the answer."""
        relay = self.relay
        reply = relay._next_reply()
        handed = False
        settle = functools.partial(relay._admission.finish, ticket, submission.prompt)  # counts once

        try:
            if reply.delay and relay._stopping.wait(reply.delay):
                return
            if reply.midjourney is None and reply.body is not None:
                settle(0)
                headers = {**reply.headers}
                content_type = headers.pop("Content-Type", "application/json")
                self._send(reply.status, reply.body, content_type=content_type, headers=headers.items())
            elif reply.midjourney is None and reply.fault is not None:
                settle(0)
                self._misbehave(reply, _MJ_TICKET)
            else:
                answer = relay._midjourney.submit(submission, reply.midjourney or MjScript(), settle)
                handed = True
                relay._admission.leave(ticket)
                self._send_mj(answer, reply.headers.items())
        finally:
            if not handed:
                settle(0)

    def _send_mj(self, answer: MjAnswer, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._send(answer.status, answer.body, content_type=answer.content_type, headers=headers)

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
        elif reply.fault == "drop_unanswered":
            if self._before_last_write is not None:
                self._before_last_write()  # drawn upstream: the answer is what is lost
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
        # One write per answer: separate header and body writes cost a delayed ACK each call.
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:  # a status the standard does not name: FakeRelay sends any it is told
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}"]
        lines += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
        self._last_write_coming()
        self.wfile.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
