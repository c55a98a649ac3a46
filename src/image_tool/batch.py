"""Durable batch runs: prompts in (JSONL), images saved, one result line per prompt out (JSONL).

The output directory holds:

- ``images/``: every image, saved as it arrives;
- ``journal.jsonl``: a line written (and synced to disk) right before a prompt's request goes out
  (after any wait for a slot or a rate limit's pause), and one when it ends, holding its result or
  its error;
- ``results.jsonl``: one line per prompt, in the order of the input, rewritten from the journal
  at the end of each run.

The same run started again does only what is left: a prompt whose request ended is not sent
again, a prompt still waiting when the run stopped is sent, and a prompt whose request went out
but whose end was never written (a crash, Ctrl-C) is reported as ``lost``, never resent: it may
have been generated and billed. A line the journal holds only in part (the run stopped while
writing it) is dropped when the journal is opened again; an unreadable line before the last is an
error naming it.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .catalog import OPTION_NAMES
from .client import ImageClient
from .errors import ConfigurationError, ImageToolError
from .models import ImageGenerationResult

Status = Literal["ok", "failed", "lost"]
LINE_OPTIONS = ("n", *OPTION_NAMES)
"""What a prompt line may set beside ``id`` and ``prompt``."""
BATCH_RETRIES = 10
"""Retries of a throttled or failed-in-transit prompt in a batch: a rate-limited relay slows the
run down rather than failing its prompts."""
LOST = (
    "The request went out but its answer was never recorded (the run stopped while it was in "
    "flight); it is not sent again, as it may have been generated and billed."
)


@dataclass
class BatchProgress:
    """Where a run stands, after each prompt."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    """Ended in an earlier run of the same output directory."""
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Prompts ended a second, in this run."""
        elapsed = time.monotonic() - self.started
        return (self.done + self.failed) / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds until every prompt has ended, at the current rate."""
        left = self.total - self.skipped - self.done - self.failed
        return left / self.rate if self.rate else None


@dataclass(frozen=True)
class BatchSummary:
    """How a run ended: counts by status over every prompt, and where the results are."""

    ok: int
    failed: int
    lost: int
    cost: float
    results: Path
    unsaved: list[str] = field(default_factory=list)
    """Why each image generated but not saved was not (its link is in the results)."""
    invalid_lines: list[str] = field(default_factory=list)
    """Why each prompt line that could not be used was not (never sent)."""


@dataclass(frozen=True)
class _Prompt:
    id: str
    prompt: str
    options: dict[str, Any]
    problem: str | None = None
    """Why the line cannot be sent (it is reported as failed, never sent)."""


def run_batch(
    prompts: str | Path,
    out: str | Path,
    *,
    concurrency: int = 16,
    on_progress: Callable[[BatchProgress], object] | None = None,
    **settings: Any,
) -> BatchSummary:
    """Generate every prompt of the JSONL file ``prompts`` into ``out`` (see the module's
    docstring), at most ``concurrency`` at a time; ``settings`` are ``ImageClient``'s
    (``save_dir`` is ``out/images``). Unless told otherwise, the run finds the rate a relay allows
    (``adaptive_concurrency``) and retries a throttled prompt up to ``BATCH_RETRIES`` times.
    Resumable: run it again with the same ``out`` after a crash."""
    run = arun_batch(prompts, out, concurrency=concurrency, on_progress=on_progress, **settings)
    return asyncio.run(run)


async def arun_batch(
    prompts: str | Path,
    out: str | Path,
    *,
    concurrency: int = 16,
    on_progress: Callable[[BatchProgress], object] | None = None,
    **settings: Any,
) -> BatchSummary:
    """Async twin of ``run_batch``."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    items = list(_read_prompts(Path(prompts)))
    journal = _Journal(out / "journal.jsonl")
    progress = BatchProgress(total=len(items), skipped=len(journal.started & {item.id for item in items}))
    todo = [item for item in items if item.id not in journal.started]
    slots = asyncio.Semaphore(concurrency)
    defaults = {"adaptive_concurrency": True, "max_retries": BATCH_RETRIES, "max_concurrency": concurrency}
    async with ImageClient(**{**defaults, **settings, "save_dir": out / "images"}) as client:

        async def generate(item: _Prompt) -> None:
            async with slots:
                line = await _generate(client, journal, item)
            progress.done += line["status"] == "ok"
            progress.failed += line["status"] != "ok"
            progress.cost += line.get("cost") or 0.0
            if on_progress is not None:
                on_progress(progress)

        try:
            await asyncio.gather(*(generate(item) for item in todo))
        finally:
            journal.close()
            summary = _write_results(items, _Journal.read(out / "journal.jsonl"), out / "results.jsonl")
    return summary


async def _generate(client: ImageClient, journal: _Journal, item: _Prompt) -> dict[str, Any]:
    if item.problem is not None:
        return journal.end(item, _failed(item, "InvalidLine", item.problem))

    async def sending() -> None:  # on disk before the request's bytes go
        await asyncio.to_thread(journal.send, item)

    try:
        result = await client.agenerate(item.prompt, **item.options, on_sending=sending)
    except ImageToolError as error:
        return journal.end(item, _failed(item, type(error).__name__, str(error)))
    return journal.end(item, _succeeded(item, result))


def _read_prompts(path: Path) -> Iterator[_Prompt]:
    """Each non-blank line as a prompt; one that cannot be used is kept, to be reported as failed."""
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            item = _prompt_of(number, text)
            if item.id in seen:
                problem = f"line {number} repeats the id {item.id!r}"
                item = _Prompt(f"{item.id}@line-{number}", item.prompt, {}, problem)
            seen.add(item.id)
            yield item


def _prompt_of(number: int, text: str) -> _Prompt:
    """``{"id": ..., "prompt": ..., options}``; the id defaults to ``line-<number>``."""
    try:
        entry = json.loads(text)
    except ValueError as error:
        return _Prompt(f"line-{number}", "", {}, f"line {number} is not JSON: {error}")
    if not isinstance(entry, dict):
        return _Prompt(f"line-{number}", "", {}, f"line {number} is not a JSON object")
    key, prompt = str(entry.get("id", f"line-{number}")), entry.get("prompt")
    if not (isinstance(prompt, str) and prompt.strip()):
        return _Prompt(key, "", {}, f"line {number} has no prompt")
    if unknown := set(entry) - {"id", "prompt", *LINE_OPTIONS}:
        return _Prompt(
            key, prompt, {}, f"line {number} has fields no generation takes: {', '.join(sorted(unknown))}"
        )
    return _Prompt(key, prompt, {name: entry[name] for name in LINE_OPTIONS if name in entry})


def _succeeded(item: _Prompt, result: ImageGenerationResult) -> dict[str, Any]:
    return {
        "id": item.id,
        "prompt": item.prompt,
        "status": "ok",
        "paths": [str(image.path) for image in result.images if image.path],
        "urls": [image.url for image in result.images if image.url and not image.url.startswith("data:")],
        "revised_prompt": _first_revised_prompt(result),
        "save_errors": [image.save_error for image in result.images if image.save_error],
        "target": result.target,
        "cost": result.cost,
        "usage": result.usage.model_dump(exclude_none=True) if result.usage else None,
    }


def _first_revised_prompt(result: ImageGenerationResult) -> str | None:
    return next((image.revised_prompt for image in result.images if image.revised_prompt), None)


def _failed(item: _Prompt, kind: str, message: str) -> dict[str, Any]:
    error = {"kind": kind, "message": message}
    return {"id": item.id, "prompt": item.prompt, "status": "failed", "error": error}


class _Journal:
    """The append-only record of a run: ``{"id", "sent"}`` before a request, the result line after."""

    def __init__(self, path: Path) -> None:
        _drop_torn_line(path)
        self.started = set(self.read(path))
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()  # sends are written from worker threads
        self._sent: set[str] = set()

    def send(self, item: _Prompt) -> None:
        """Record that ``item``'s request goes out now (once: retries go out under the same)."""
        if item.id not in self._sent:
            self._sent.add(item.id)
            self._write({"id": item.id, "sent": time.time()}, sync=True)

    def end(self, item: _Prompt, line: dict[str, Any]) -> dict[str, Any]:
        self._write(line, sync=False)
        return line

    def close(self) -> None:
        self._file.close()

    def _write(self, entry: dict[str, Any], *, sync: bool) -> None:
        with self._lock:
            self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())

    @staticmethod
    def read(path: Path) -> dict[str, dict[str, Any] | None]:
        """Each id the journal holds: its result line, or ``None`` while only its sending is known."""
        entries: dict[str, dict[str, Any] | None] = {}
        if not path.exists():
            return entries
        with path.open(encoding="utf-8") as lines:
            for number, text in enumerate(lines, 1):
                try:
                    entry = json.loads(text)
                except ValueError as error:
                    raise ConfigurationError(
                        f"{path}, line {number}, cannot be read ({error}): the journal was changed "
                        "by hand or by another program. Mend or remove that line, or start a fresh --out."
                    ) from None
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    entries[entry["id"]] = entry if "status" in entry else entries.get(entry["id"])
        return entries


def _drop_torn_line(path: Path) -> None:
    """Cut a last line the journal holds only in part (the run stopped while writing it): a
    sending never finished was never followed by its request, and a result never finished leaves
    its prompt lost, never resent. Whatever is written next starts on a line of its own."""
    if not path.exists() or (size := path.stat().st_size) == 0:
        return
    with path.open("rb+") as journal:
        journal.seek(size - 1)
        if journal.read(1) == b"\n":
            return
        end = size  # back a block at a time to the last line break: the journal may be large
        while end > 0:
            start = max(0, end - 65536)
            journal.seek(start)
            if (found := journal.read(end - start).rfind(b"\n")) != -1:
                journal.truncate(start + found + 1)
                return
            end = start
        journal.truncate(0)


def _write_results(items: list[_Prompt], ended: dict[str, dict[str, Any] | None], path: Path) -> BatchSummary:
    """``results.jsonl`` from the journal, in the input's order (written whole, then renamed)."""
    counts: dict[Status, int] = {"ok": 0, "failed": 0, "lost": 0}
    cost = 0.0
    unsaved: list[str] = []
    invalid_lines: list[str] = []
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8") as results:
        for item in items:
            if item.id not in ended:
                continue  # not started: a later run does it
            line = ended[item.id] or {
                "id": item.id,
                "prompt": item.prompt,
                "status": "lost",
                "error": {"kind": "Lost", "message": LOST},
            }
            counts[line["status"]] += 1
            cost += line.get("cost") or 0.0
            unsaved += line.get("save_errors") or []
            if (line.get("error") or {}).get("kind") == "InvalidLine":
                invalid_lines.append(line["error"]["message"])
            results.write(json.dumps(line, ensure_ascii=False) + "\n")
    temporary.replace(path)
    return BatchSummary(counts["ok"], counts["failed"], counts["lost"], cost, path, unsaved, invalid_lines)
