"""Reading an answer's bytes within bounds: decompressed as they arrive, never past a size cap,
and split into lines that are held only until they end.

httpx2 inflates each received chunk whole, so 64 KiB of gzip can become 64 MiB in one step before
any cap is checked. Here gzip and deflate are inflated at most ``PIECE`` bytes at a time, and the
cap is checked on every piece, whatever the relay or image host sends. No I/O: the caller
feeds the bytes it receives.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx2

from ..errors import ImageToolError

ACCEPT_ENCODING = "gzip, deflate"
"""What image-tool asks servers for: the encodings it can inflate within bounds."""
PIECE = 64 * 1024
_NEWLINE = re.compile(rb"\r\n|\r|\n")


def raw_chunks(response: httpx2.Response) -> Iterator[bytes]:
    """The bytes of ``response`` as received; see ``received_encoding``."""
    if response.is_stream_consumed:  # read already (httpx2.MockTransport reads what it answers)
        yield response.content
    else:
        yield from response.iter_raw()


async def araw_chunks(response: httpx2.Response) -> AsyncIterator[bytes]:
    """Async twin of ``raw_chunks``."""
    if response.is_stream_consumed:
        yield response.content
    else:
        async for chunk in response.aiter_raw():
            yield chunk


def received_encoding(response: httpx2.Response) -> str | None:
    """How the bytes of ``raw_chunks`` are encoded: as the header says, unless httpx2 decoded them."""
    return None if response.is_stream_consumed else response.headers.get("content-encoding")


class UnreadableBodyError(ImageToolError):
    """The bytes of an answer cannot be read within the bounds; the message says why."""


class BodyDecoder:
    """Turns an answer's raw bytes into its content, piece by piece, within ``limit`` bytes."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = [token.strip().lower() for token in (content_encoding or "").split(",")]
        # Encodings are listed in the order they were applied: undo them from the last.
        applied = [coding for coding in codings if coding not in ("", "identity")]
        self._inflaters = [_Inflater(coding) for coding in reversed(applied)]
        self._limit = limit
        self.size = 0
        """Bytes of content produced so far."""

    def feed(self, raw: bytes) -> list[bytes]:
        """The content that ``raw`` decodes to, in pieces of at most ``PIECE`` bytes."""
        return list(self._decode(raw, 0))

    def _decode(self, data: bytes, level: int) -> Iterator[bytes]:
        if level < len(self._inflaters):
            for piece in self._inflaters[level].inflate(data):
                yield from self._decode(piece, level + 1)
        elif data:
            self.size += len(data)
            if self.size > self._limit:  # checked as each piece is inflated, not after
                raise UnreadableBodyError(f"larger than {_size(self._limit)}")
            yield data


class LineSplitter:
    """Splits content into lines (``\\n``, ``\\r\\n`` or ``\\r``) as it arrives; a line is held
    only until it ends (its length is bounded by the ``BodyDecoder``'s cap)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # no line break before this position of the buffer

    def feed(self, piece: bytes) -> list[str]:
        buffer = self._buffer
        buffer += piece
        lines, start = [], 0
        while (match := _NEWLINE.search(buffer, self._scanned)) is not None:
            if match.end() == len(buffer) and buffer.endswith(b"\r"):
                break  # perhaps the first half of "\r\n": wait for the next piece
            lines.append(buffer[start : match.start()].decode("utf-8", errors="replace"))
            start = self._scanned = match.end()
        del buffer[:start]
        self._scanned = max(len(buffer) - 1, 0) if buffer.endswith(b"\r") else len(buffer)
        return lines

    def finish(self) -> list[str]:
        """The last line, when the content did not end with a line break."""
        line, self._buffer = self._buffer.decode("utf-8", errors="replace").rstrip("\r"), bytearray()
        self._scanned = 0
        return [line] if line else []


class _Inflater:
    def __init__(self, coding: str) -> None:
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise UnreadableBodyError(f"encoded as {coding[:40]!r}, which image-tool does not decode")
        self._coding = coding
        # gzip (or zlib) headers are detected; bare deflate data is tried when the header is not there.
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
        self._started = False

    def inflate(self, data: bytes) -> Iterator[bytes]:
        while data and not self._inflater.eof:
            try:
                piece = self._inflater.decompress(data, PIECE)
            except zlib.error as error:
                if self._started or self._coding != "deflate":
                    raise UnreadableBodyError(f"not valid {self._coding} data ({error})") from error
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate without a header
                self._started = True
                continue
            self._started = True
            data = self._inflater.unconsumed_tail
            if piece:
                yield piece
            elif data:  # no progress on what is left: nothing more will come of it
                return


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
