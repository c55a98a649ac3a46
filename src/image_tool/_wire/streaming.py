"""A streamed chat completion (server-sent events) -> progress updates and the result. Pure, no I/O.

Feed ``StreamReader`` the answer's lines as they arrive; it returns the progress each line
revealed. At the end, ``result()`` reads the whole text exactly as a non-streamed answer's.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import (
    APIConnectionError,
    MalformedResponseError,
    NoImageError,
    StreamWithoutImageError,
)
from ..models import (
    MAX_IMAGES_READ,
    GeneratedImage,
    GenerationProgress,
    ImageGenerationResult,
    ProgressStage,
    Usage,
)
from .failures import error_from_payload
from .markdown import video_links
from .parsing import image_from_data_item, message_images, result_from_content, usage_of

_DONE = "[DONE]"
_DATA_PREFIX = re.compile("(?:data: ?)+")
_IMAGE_EVENTS = ("image_generation.completed", "image_edit.completed")
"""Images API streaming events that carry a finished image (also as some chat relays pass them on)."""
_PARTIAL_IMAGE_EVENTS = ("image_generation.partial_image", "image_edit.partial_image")
"""Images API streaming events that carry an image as drawn so far: a preview."""
_MAX_PROGRESS_LINE = 300  # longer lines (inline base64, say) are not read for progress
_STAGE_WORDS: tuple[tuple[ProgressStage, tuple[str, ...]], ...] = (
    ("done", ("生成完成", "generation complete", "completed")),
    ("generating", ("进度", "progress", "生成中", "generating")),
    ("queued", ("排队", "queuing", "queued", "in queue", "initializing")),
)
_PERCENT_WORDS = ("进度", "progress")
_NUMBER = re.compile(r"\d+")
_LINK_LABEL = re.compile(r"\[(\d*)\]?$")
_PREVIEW_LINK = re.compile(r"\]\((https?://[^\s)]+)\)")


class ProgressTracker:
    """Reads progress from the relay's text as it grows: one update per change of stage or percent."""

    def __init__(self) -> None:
        self.last: GenerationProgress | None = None
        self._line = ""
        self._long_line = False
        self._in_json_block = False

    def feed(self, text: str) -> list[GenerationProgress]:
        updates: list[GenerationProgress] = []
        pieces = text.split("\n")
        for index, piece in enumerate(pieces):
            if index:
                self._end_line()
            if self._long_line or not piece:
                continue
            self._line += piece
            if len(self._line) > _MAX_PROGRESS_LINE:
                self._line, self._long_line = "", True  # not a progress line (an inline image, say)
            elif index < len(pieces) - 1:
                updates += self._read(self._line)
            else:  # the line goes on: a figure at its very end may be cut ("1" of "13")
                updates += self._read(self._line.rstrip("0123456789"))
        return updates

    def _end_line(self) -> None:
        if self._line.lstrip().startswith("```"):
            self._in_json_block = not self._in_json_block
        self._line, self._long_line = "", False

    def _read(self, line: str) -> list[GenerationProgress]:
        progress = None if self._in_json_block else progress_of_line(line)
        if progress is None or (
            self.last is not None
            and (progress.stage, progress.percent, progress.preview_url)
            == (self.last.stage, self.last.percent, self.last.preview_url)
        ):
            return []
        self.last = progress
        return [progress]


def progress_of_line(line: str) -> GenerationProgress | None:
    """``>🏃 进度 13....57...`` -> generating, 57 %; ``Queuing`` -> queued; ``✅ 生成完成`` -> done.
    A link the line ends on (``...[100](https://...)``) is the preview of the image so far."""
    # The link is not part of the figure: "57...[100](https://...)" -> "57...100".
    text = _LINK_LABEL.sub(r"\1", line.split("](")[0])
    preview = _PREVIEW_LINK.search(line)
    lowered = text.lower()
    for stage, words in _STAGE_WORDS:
        if any(word in lowered for word in words):
            percent = 100 if stage == "done" else _percent(lowered)
            return GenerationProgress(
                stage=stage,
                percent=percent,
                text=text.strip(" >\t\r"),
                preview_url=preview[1] if preview else None,
            )
    return None


def _percent(lowered: str) -> int | None:
    if not any(word in lowered for word in _PERCENT_WORDS):
        return None
    figures = [int(number) for number in _NUMBER.findall(lowered) if len(number) <= 3 and int(number) <= 100]
    return figures[-1] if figures else None


def _still_running(text: str) -> GenerationProgress | None:
    """The progress the text ends on, when it is not finished: the relay's last words were
    "generating, 73 %" (a relay in the middle closed the stream for its cut upstream)."""
    text = text.rstrip()
    last_line = text[text.rfind("\n") + 1 :]
    progress = progress_of_line(last_line) if len(last_line) <= _MAX_PROGRESS_LINE else None
    if progress is None or progress.stage == "done" or (progress.percent or 0) >= 100:
        return None
    return progress


def _partial_image(event: dict[str, Any]) -> GenerationProgress | None:
    """An Images API partial image: the picture so far, as a progress update with its preview."""
    preview, index = event.get("b64_json"), event.get("partial_image_index")
    if not isinstance(preview, str) or not preview:
        return None
    number = f" {index + 1}" if isinstance(index, int) and not isinstance(index, bool) else ""
    return GenerationProgress(stage="generating", text=f"partial image{number}", preview_b64=preview)


class StreamReader:
    """Reads a streamed chat completion line by line: ``feed`` each line, then ``result()``."""

    def __init__(self, requested_model: str) -> None:
        self.requested_model = requested_model
        self.done = False
        """Whether the stream ended with ``data: [DONE]``. new-api and one-api send it even when
        their upstream was cut, so it does not prove the answer whole."""
        self.finished = False
        """Whether a chunk gave a ``finish_reason``: the upstream said its answer was complete."""
        self.progress = ProgressTracker()
        self._model: str | None = None
        self._created: int | None = None
        self._texts: list[str] = []
        self._parts: list[Any] = []
        self._finish_reasons: list[object] = []
        self._images: list[GeneratedImage] = []
        self._image_keys: set[str] = set()
        self._event: list[str] = []  # the data lines of the event being read
        self._reading_reasoning = False
        self._usage: Usage | None = None

    def feed(self, line: str) -> list[GenerationProgress]:
        """One line of the stream (without its newline); the progress it revealed."""
        line = line.rstrip("\r")
        if prefix := _DATA_PREFIX.match(line):  # "data:" with or without a space, even doubled
            data = line[prefix.end() :]
            if data and not data.startswith(":"):  # "data: : PING" is a keep-alive sent as data
                self._event.append(data)
            return []
        if line == "":
            return self._dispatch()
        return []  # a keep-alive comment (": PING"), or an event/id/retry field

    def result(self) -> ImageGenerationResult:
        """The images of the whole stream; the typed error if it holds none, or was cut short."""
        try:
            self._dispatch()  # the last event, if no blank line ended it
        except MalformedResponseError as error:
            if self.done:
                raise
            raise APIConnectionError(
                f"The relay's stream was cut in the middle of an event. {error.message}"
            ) from error
        text = "".join(self._texts)
        content: object = [{"type": "text", "text": text}, *self._parts] if self._parts else text
        try:
            result = result_from_content(
                content,
                model=self._model or self.requested_model,
                created=self._created,
                images=self._images,
                finish_reasons=self._finish_reasons,
            )
        except NoImageError as error:
            raise self._no_image(text, error) from error
        return result.model_copy(update={"usage": self._usage})

    def _no_image(self, text: str, error: NoImageError) -> NoImageError | APIConnectionError:
        """Why a stream that held no image ended so: it was cut, it carried nothing, or the relay
        said something without an image (``error``)."""
        if not (self.done or self.finished):
            return APIConnectionError(f"The relay's stream was cut before it finished. {error.message}")
        if not text.strip() and not self._parts:
            return StreamWithoutImageError(
                "The relay closed the stream without an image or any text. It may not stream this "
                "model, or lost its upstream's answer: try stream=False.",
                status_code=200,
            )
        if (running := _still_running(text)) and not video_links(text):
            return APIConnectionError(
                f"The relay ended the stream while the image was still being generated (last "
                f"progress: {running.text}); its upstream was probably cut or timed out."
            )
        return error

    def final_progress(self) -> list[GenerationProgress]:
        """A closing "done" update, when the relay never said it was done."""
        if self.progress.last is not None and self.progress.last.stage == "done":
            return []
        self.progress.last = GenerationProgress(stage="done", percent=100)
        return [self.progress.last]

    def _dispatch(self) -> list[GenerationProgress]:
        lines, self._event = self._event, []
        if not lines:
            return []
        try:
            chunks = [json.loads("\n".join(lines))] if lines != [_DONE] else []
        except (ValueError, RecursionError):
            # Some relays send several one-line events without the blank line between them.
            chunks = [self._decode(line) for line in lines if line.strip() != _DONE]
        if _DONE in (line.strip() for line in lines):
            self.done = True
        updates = []
        for chunk in chunks:
            updates += self._read_chunk(chunk)
        return updates

    def _decode(self, data: str) -> Any:
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as error:
            raise MalformedResponseError(
                f"The relay's stream sent an unreadable event: {data[:200]}", status_code=200
            ) from error

    def _read_chunk(self, chunk: Any) -> list[GenerationProgress]:
        if not isinstance(chunk, dict):
            raise MalformedResponseError(
                f"The relay's stream sent an unexpected event: {str(chunk)[:200]}", status_code=200
            )
        if chunk.get("error"):
            raise error_from_payload(200, chunk)
        if isinstance(chunk.get("model"), str) and chunk["model"].strip():
            self._model = chunk["model"].strip()
        if isinstance(chunk.get("created"), int) and not isinstance(chunk["created"], bool):
            self._created = chunk["created"]
        self._usage = usage_of(chunk.get("usage")) or self._usage  # a usage chunk, or a completed image's
        updates = []
        if chunk.get("type") in _IMAGE_EVENTS and (image := image_from_data_item(chunk)):
            self._keep_images([image])
            self.finished = True
        if chunk.get("type") in _PARTIAL_IMAGE_EVENTS and (preview := _partial_image(chunk)):
            updates.append(preview)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:  # a usage-only chunk has none
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self.finished = True
                self._finish_reasons += [choice["finish_reason"], choice.get("native_finish_reason")]
            delta = choice.get("delta") or choice.get("message")
            if isinstance(delta, dict):
                updates += self._read_delta(delta)
        return updates

    def _read_delta(self, delta: dict[str, Any]) -> list[GenerationProgress]:
        self._keep_images(message_images(delta))
        content, reasoning = delta.get("content"), delta.get("reasoning_content")
        updates = []
        if isinstance(reasoning, str) and reasoning:  # sora2api reports its progress here
            updates += self._progress_of(reasoning, reasoning=True)
        if isinstance(content, str):
            self._texts.append(content)
            updates += self._progress_of(content, reasoning=False)
        elif isinstance(content, list):
            self._parts.extend(content)
        return updates

    def _keep_images(self, images: list[GeneratedImage]) -> None:
        """Images sent beside the text, each once, up to as many as an answer is read for."""
        for image in images:
            key = image.url or image.b64_json
            if key and key not in self._image_keys and len(self._images) < MAX_IMAGES_READ:
                self._image_keys.add(key)
                self._images.append(image)

    def _progress_of(self, text: str, *, reasoning: bool) -> list[GenerationProgress]:
        """Progress in the text; reasoning and content are separate texts, so a switch between
        them ends the line being read."""
        if reasoning != self._reading_reasoning:
            self._reading_reasoning = reasoning
            text = "\n" + text
        return self.progress.feed(text)
