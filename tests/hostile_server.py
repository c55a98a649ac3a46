"""A raw HTTP server on loopback that writes exactly the bytes a test scripts: malformed framing,
lying headers, endless drips, resets. For the hostile-relay suites."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

HOLD_LIMIT = 6.0
"""The server never keeps a connection longer than this: a call that hangs ends, and fails."""


@dataclass(frozen=True)
class Answer:
    """What the server writes on one connection, byte for byte."""

    pieces: tuple[bytes, ...]
    """Written in order (status line, headers and body, however malformed), one ``send`` each."""
    pause: float = 0.0
    """Seconds between two pieces (and between two drips)."""
    hold: float = 0.0
    """Seconds the connection stays open after the last piece (until the client leaves)."""
    drip: bytes = b""
    """Written every ``pause`` seconds while the connection is held."""
    reset: bool = False
    """End with a TCP reset instead of an orderly close."""
    early: bool = False
    """Answer at once, before reading the request (then close it unread: a reset)."""
    key_intact: bool = True
    """Every trace of the key the relay sent is the whole key. False when the answer may show a
    fragment of it (a cut or flipped body): only the whole key is then checked for."""
    hostile: frozenset[str] = frozenset()
    """What was made to go wrong in it, besides its body (for the reader of a failure)."""


class HostileServer:
    """A raw HTTP/1.1 server on 127.0.0.1: reads each request, writes the scripted answer, closes."""

    def __init__(self) -> None:
        self.answer = Answer((b"",))
        """The answer for the next connection."""
        self.requests = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="hostile-relay", daemon=True)

    def __enter__(self) -> HostileServer:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self._listener.settimeout(0.05)
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._acceptor.join(10)
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(10)
        self._listener.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def play(self, answer: Answer) -> None:
        self.answer = answer

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(connection, self.answer), daemon=True)
            with self._lock:
                self._workers = [thread for thread in self._workers if thread.is_alive()]
                self._workers.append(worker)
            worker.start()

    def _serve(self, connection: socket.socket, answer: Answer) -> None:
        with connection:
            try:
                connection.settimeout(2.0)
                if not answer.early:
                    _read_request(connection)
                    with self._lock:
                        self.requests += 1
                for index, piece in enumerate(answer.pieces):
                    if index and answer.pause:
                        self._stop.wait(answer.pause)
                    if piece:
                        connection.sendall(piece)
                self._hold(connection, answer)
                if answer.reset:
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # the client left first: nothing more to write
                pass

    def _hold(self, connection: socket.socket, answer: Answer) -> None:
        end = time.monotonic() + min(answer.hold, HOLD_LIMIT)
        while not self._stop.is_set() and (left := end - time.monotonic()) > 0:
            wait = min(answer.pause, left) if answer.drip else left
            readable, _, _ = select.select([connection], [], [], max(wait, 0.001))
            if readable and not connection.recv(4096):
                return  # the client closed the connection
            if answer.drip:
                connection.sendall(answer.drip)


def _read_request(connection: socket.socket) -> None:
    """Reads the request's head and its ``Content-Length`` body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk or len(data) > 1 << 20:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return
        body += chunk
