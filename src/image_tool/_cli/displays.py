"""What the command line draws on a terminal while it works: a generation's progress line, a
batch's bar."""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._wire.imagetypes import image_extension
from ..models import GenerationProgress

if TYPE_CHECKING:
    from ..batch import BatchProgress


class ProgressDisplay:
    """One line on a terminal, redrawn in place: a spinner, the stage, the percent, the time, and
    where the latest preview is (its link, or the file a partial image was written to)."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO, save_dir: Path | None = None) -> None:
        self._stream = stream
        self._preview_dir = save_dir or Path(tempfile.gettempdir())
        self._preview = ""
        self._state = "waiting for the relay"
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._draw_until_done, daemon=True)

    def __enter__(self) -> ProgressDisplay:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def update(self, progress: GenerationProgress) -> None:
        if progress.stage == "saving":  # the relay's "done 100%" came before the downloads
            self._state = "saving images"
            return
        percent = f" {progress.percent}%" if progress.percent is not None else ""
        if where := self._where_preview(progress):
            self._preview = f"  preview: {where}"
        self._state = f"{progress.stage}{percent}{self._preview}"

    def _where_preview(self, progress: GenerationProgress) -> str | None:
        if progress.preview_b64:
            try:
                data = base64.b64decode(progress.preview_b64)
                path = self._preview_dir / f"image-tool-preview{image_extension(data[:16]) or '.png'}"
                path.write_bytes(data)
            except (ValueError, OSError):
                return None
            return str(path)
        return progress.preview_url

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        self._stream.write("\r\033[K")
        self._stream.flush()

    def _draw_until_done(self) -> None:
        frame = 0
        while not self._done.is_set():
            elapsed = time.monotonic() - self._started
            self._stream.write(
                f"\r\033[K{self.FRAMES[frame % len(self.FRAMES)]} {self._state}  {elapsed:.0f} s"
            )
            self._stream.flush()
            frame += 1
            self._done.wait(0.1)


class BatchDisplay:
    """A progress bar (rich's, when installed: the ``progress`` extra) or a line every few
    seconds: done, failed, lost, rate, time left, spend."""

    EVERY = 2.0
    _stopping = False

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = 0.0
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        except ImportError:
            self._bar: Any = None
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[failed]} failed  {task.fields[lost]} lost  {task.fields[rate]:.1f}/s  "
                "spend {task.fields[cost]:g}"
            ),
            TimeRemainingColumn(),
            console=Console(file=stream),
        )
        self._task = self._bar.add_task("generating", total=None, failed=0, lost=0, rate=0.0, cost=0.0)

    def __enter__(self) -> BatchDisplay:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, progress: BatchProgress) -> None:
        ended = progress.skipped + progress.done + progress.failed + progress.lost
        if progress.stopping and not self._stopping:
            self._stopping = True
            self._say(
                f"Stopping: no more prompts start; {progress.in_flight} in flight finish "
                "(Ctrl-C again abandons them)."
            )
        if self._bar is not None:
            self._bar.update(
                self._task,
                total=progress.total,
                completed=ended,
                failed=progress.failed,
                lost=progress.lost,
                rate=progress.rate,
                cost=progress.cost,
            )
            return
        now = time.monotonic()
        if now - self._shown < self.EVERY and ended < progress.total:
            return
        self._shown = now
        eta = f", {progress.eta:.0f} s left" if progress.eta is not None else ""
        self._stream.write(
            f"{ended}/{progress.total} done, {progress.failed} failed, {progress.lost} lost, "
            f"{progress.rate:.1f}/s{eta}, "
            f"spend {progress.cost:g}\n"
        )
        self._stream.flush()

    def _say(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            self._stream.write(text + "\n")
            self._stream.flush()
