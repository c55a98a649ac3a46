"""The vendor's profile, which every relay profile extends, and what the relay profiles share:
reading the events of a stream and the JSON of a body, and the error object they write."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ._answers import (
    Answer,
    GenerationRequest,
    Plain,
    error_body,
    read_request,
    vendor_answer,
)
from ._replies import RelayRefusal, Reply

DONE = b"data: [DONE]\n\n"


class Profile:
    """The vendor itself: every answer goes out as the reply scripts it."""

    def read(self, body: bytes) -> GenerationRequest:
        """A chat request's fields, as the upstream reads them (``ValueError`` names what is wrong)."""
        return read_request(body)

    def upstream(self, request: GenerationRequest, origin: str, reply: Reply) -> Answer:
        """The upstream's answer to a chat request, before the relay sends it on."""
        return vendor_answer(request, origin, reply)

    def deliver(self, answer: Answer, request: GenerationRequest) -> Answer:
        """What the relay sends for its upstream's ``answer`` to ``request``."""
        return answer

    def refuse(self, refusal: RelayRefusal) -> Plain | None:
        """The relay's own words for a refusal, or None: the reply's body stands (as the upstream's)."""
        return None

    def bad_key(self) -> Plain:
        """The answer to a wrong bearer key."""
        return Plain(401, error_body("Invalid token", "new_api_error", "invalid_api_key"))


def event_lines(events: Iterable[bytes], limit: int | None = None) -> Iterator[bytes]:
    """The lines of a byte stream, without their ``\\r\\n`` or ``\\n``, as Go's bufio.Scanner
    (ScanLines) gives them: it stops at a line of ``limit`` bytes or more (bufio.ErrTooLong)."""
    buffer = b""
    for event in events:
        buffer += event
        while (end := buffer.find(b"\n")) >= 0:
            if limit is not None and end >= limit:
                return
            line, buffer = buffer[:end], buffer[end + 1 :]
            yield line.removesuffix(b"\r")
        if limit is not None and len(buffer) >= limit:
            return
    if buffer:
        yield buffer.removesuffix(b"\r")


class _Invalid:
    """Not JSON."""


INVALID = _Invalid()


def loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return INVALID


def error_payload(message: str, error_type: str, param: str, code: object) -> dict[str, Any]:
    """An error in one-api's relay/model/misc.go Error (new-api's dto.OpenAIError) field order."""
    return {"message": message, "type": error_type, "param": param, "code": code}
