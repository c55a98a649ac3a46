"""One answer of the relay, read as its bytes arrive: the whole body, or the events of a stream.

Everything the relay sends passes through ``BodyDecoder`` (bounded inflation, the size cap) and
loses the key before anything reads it. Pure: the client feeds it the raw bytes it receives.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..models import GenerationProgress, ImageGenerationResult
from .body import BodyDecoder, LineSplitter
from .failures import error_from_response
from .parsing import parse_result
from .redaction import REDACTED, scrub, scrub_bytes, scrub_unfinished
from .streaming import StreamReader

MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""An answer past this size (several inline images are a few MB) is refused, not held in memory."""


class AnswerReader:
    """Reads one answer: ``feed`` each raw chunk (it returns the progress seen), then ``finish``."""

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        content_encoding: str | None,
        *,
        streamed: bool,
        requested_model: str,
        secret: str,
    ) -> None:
        self.status_code = status_code
        self._headers = headers
        self._model = requested_model
        self._secret = secret
        self._decoder = BodyDecoder(content_encoding, MAX_ANSWER_BYTES)
        self._body = bytearray()
        self._lines = LineSplitter() if streamed else None
        self._events = StreamReader(requested_model) if streamed else None

    @property
    def size(self) -> int:
        """Bytes of content read so far."""
        return self._decoder.size

    def feed(self, raw: bytes) -> Iterator[GenerationProgress]:
        """Reads ``raw``, giving each progress update as soon as it is seen (before a later line
        of the same chunk can fail)."""
        pieces = self._decoder.feed(raw)
        if self._lines is None:
            for piece in pieces:
                self._body += piece
            return
        for piece in pieces:
            yield from self._read_lines(self._lines.feed(piece))

    def finish(self) -> tuple[list[GenerationProgress], ImageGenerationResult]:
        """The last progress updates and the result; the typed error when the answer is one."""
        if self._lines is None or self._events is None:
            body = scrub_bytes(bytes(self._body), self._secret)
            if not 200 <= self.status_code < 300:
                raise error_from_response(self.status_code, body, self._headers)
            return [], parse_result(body, requested_model=self._model)
        updates = list(self._read_lines(self._lines.finish()))
        result = self._events.result()
        return [*updates, *self._events.final_progress()], result

    def _read_lines(self, lines: list[str]) -> Iterator[GenerationProgress]:
        assert self._events is not None
        for line in lines:
            if self._secret and self._secret in line:
                line = line.replace(self._secret, REDACTED)
            for update in self._events.feed(line):
                yield self._scrubbed(update)

    def _scrubbed(self, update: GenerationProgress) -> GenerationProgress:
        """``update`` without the key. Its text is joined from several events, so a key split
        between them is whole only here (and a line still arriving may end in its first part)."""
        text = scrub_unfinished(update.text, self._secret)
        url = scrub(update.preview_url, self._secret) if update.preview_url else None
        preview = update.preview_b64
        if preview and self._secret and self._secret in preview:
            preview = None  # an image that holds the key as text is not shown
        if (text, url, preview) == (update.text, update.preview_url, update.preview_b64):
            return update
        return update.model_copy(update={"text": text, "preview_url": url, "preview_b64": preview})
