"""Durable batch runs: prompts in (JSONL), images saved, one result line per prompt out (JSONL).

The output directory holds:

- ``images/``: every image, saved as it arrives;
- ``journal.jsonl``: a line written (and synced to disk) right before a prompt's request goes out
  (after any wait for a slot or a rate limit's pause), and one when it ends, holding its result or
  its error (``_io/journal.py``);
- ``results.jsonl``: one line per prompt, in the order of the input, rewritten from the journal
  at the end of each run.

The promise: after Ctrl-C, every prompt exactly once; after a kill or a power cut, never twice.
The first Ctrl-C starts no more prompts and lets those in flight finish; a second abandons them.
The same run started again does only what is left: a prompt whose request ended is not sent
again, a prompt not yet sent is sent, and a prompt whose request went out but whose end was never
written, or that the relay had whole and never answered (docs/reliability.md, paid work), is
reported as ``lost`` (it may have been generated and billed), sent again only when asked
(``resend_lost=True``, ``--resend-lost``). A model drawn as a task (Midjourney) has its task id
journaled once submitted: a run that stopped before the task ended leaves it to the next run,
which polls it to its images and never submits it again. One run at a time holds an output directory; a
prompts file whose id now asks for another prompt than the journal recorded is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._io import tracing
from ._io.journal import Journal
from ._io.prompts import Prompt, read_prompts
from ._policy.retries import may_have_drawn, wait_before
from .client import ImageClient
from .errors import APIError, ConfigurationError, ImageToolError, RateLimitError
from .models import ImageGenerationResult

Status = Literal["ok", "failed", "lost"]
BATCH_RETRIES = 10
"""Retries of a prompt whose request failed on its way (a connection, a 502)."""
REQUEUES = 20
REQUEUE_SECONDS = 600.0
"""A prompt the relay refuses for load (a 429, saturation) spends none of its retries: it waits
(the relay's Retry-After, else a backoff) and goes again, up to ``REQUEUES`` times and
``REQUEUE_SECONDS`` in all; then it fails with the ``RateLimitError`` (a relay whose every
account is spent does not recover)."""
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
    lost: int = 0
    """Reached the relay and went unanswered: it may have been generated (not sent again unasked)."""
    skipped: int = 0
    """Ended in an earlier run of the same output directory."""
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    stopping: bool = False
    """Ctrl-C was pressed: no more prompts start; those in flight finish (another Ctrl-C
    abandons them)."""

    @property
    def rate(self) -> float:
        """Prompts ended a second, in this run."""
        elapsed = time.monotonic() - self.started
        return (self.done + self.failed + self.lost) / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds until every prompt has ended, at the current rate."""
        left = self.total - self.skipped - self.done - self.failed - self.lost
        return left / self.rate if self.rate else None


@dataclass(frozen=True)
class BatchSummary:
    """How a run ended: counts by status over every prompt, and where the results are."""

    ok: int
    failed: int
    lost: int
    cost: float
    results: Path
    not_started: int = 0
    """Prompts a stopped run did not start: the same run, again, does them."""
    unsaved: list[str] = field(default_factory=list)
    """Why each image generated but not saved was not (its link is in the results)."""
    invalid_lines: list[str] = field(default_factory=list)
    """Why each prompt line that could not be used was not (never sent)."""


def run_batch(
    prompts: str | Path,
    out: str | Path,
    *,
    concurrency: int = 16,
    on_progress: Callable[[BatchProgress], object] | None = None,
    resend_lost: bool = False,
    **settings: Any,
) -> BatchSummary:
    """Generate every prompt of the JSONL file ``prompts`` into ``out`` (see the module's
    docstring), at most ``concurrency`` at a time; ``settings`` are ``ImageClient``'s
    (``save_dir`` is ``out/images``). Unless told otherwise, the run finds the rate a relay allows
    (``adaptive_concurrency``), retries a prompt that failed on its way up to ``BATCH_RETRIES``
    times, and sends one the relay refused for load again after each wait, up to ``REQUEUES``
    times.
    Resumable: run it again with the same ``out`` after a crash or Ctrl-C; ``resend_lost`` sends
    the prompts an earlier run lost again (they may be billed twice)."""
    run = arun_batch(
        prompts, out, concurrency=concurrency, on_progress=on_progress, resend_lost=resend_lost, **settings
    )
    return asyncio.run(run)


async def arun_batch(
    prompts: str | Path,
    out: str | Path,
    *,
    concurrency: int = 16,
    on_progress: Callable[[BatchProgress], object] | None = None,
    resend_lost: bool = False,
    **settings: Any,
) -> BatchSummary:
    """Async twin of ``run_batch``."""
    out, prompts = Path(out), Path(prompts)
    (out / "images").mkdir(parents=True, exist_ok=True)
    journal = Journal(out)
    try:
        unfinished = journal.unfinished_tasks()  # polled again, not submitted again
        done_before = (journal.sent if not resend_lost else journal.ended.keys() - journal.lost) - set(
            unfinished
        )
        progress = _survey(prompts, journal, done_before)
        report = on_progress or (lambda progress: None)
        defaults = {
            "adaptive_concurrency": True,
            "max_retries": BATCH_RETRIES,
            "retry_rate_limits": False,  # requeued here instead
            "max_concurrency": concurrency,
        }
        settings = {**defaults, **settings, "save_dir": out / "images"}
        with tracing.batch(prompts, progress.total, progress.skipped, concurrency) as traced:
            try:
                async with ImageClient(**settings) as client:
                    await _run(
                        client, journal, prompts, done_before, unfinished, concurrency, progress, report
                    )
            finally:
                summary = _write_results(prompts, journal, out / "results.jsonl")
                traced.batch_ended(summary)
    finally:
        journal.close()
    return summary


async def _run(
    client: ImageClient,
    journal: Journal,
    prompts: Path,
    done_before: Collection[str],
    unfinished: dict[str, str],
    concurrency: int,
    progress: BatchProgress,
    report: Callable[[BatchProgress], object],
) -> None:
    """Start each prompt not done before, ``concurrency`` at a time, until they are all done or
    Ctrl-C."""
    in_flight: set[asyncio.Task[None]] = set()

    async def generate(item: Prompt) -> None:
        line = await _generate(client, journal, item, unfinished.get(item.id))
        progress.in_flight -= 1
        progress.done += line["status"] == "ok"
        progress.failed += line["status"] == "failed"
        progress.lost += line["status"] == "lost"
        progress.cost += line.get("cost") or 0.0
        report(progress)

    with _interrupts(progress, report) as stopping:
        try:
            for item in read_prompts(prompts):
                if stopping.is_set():
                    break
                if item.id in done_before:
                    continue
                while len(in_flight) >= concurrency:
                    done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    # A journal that cannot be written (a full disk) stops the run.
                    ended = [task for task in done if not task.cancelled()]
                    if failures := [error for task in ended if (error := task.exception())]:
                        raise failures[0]
                progress.in_flight += 1
                in_flight.add(asyncio.create_task(generate(item)))
            if in_flight:
                await asyncio.gather(*in_flight)
        except BaseException as error:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            if isinstance(error, asyncio.CancelledError):
                raise KeyboardInterrupt from None  # the second Ctrl-C: the run is abandoned
            raise


@contextlib.contextmanager
def _interrupts(
    progress: BatchProgress, report: Callable[[BatchProgress], object]
) -> Iterator[asyncio.Event]:
    """The first Ctrl-C sets the event (no more prompts start); a second cancels the run. Where
    the loop cannot take over Ctrl-C (another thread, Windows), it interrupts as before."""
    stopping = asyncio.Event()
    loop, task = asyncio.get_running_loop(), asyncio.current_task()

    def interrupted() -> None:
        if stopping.is_set():
            if task is not None:
                task.cancel()
            return
        stopping.set()
        progress.stopping = True
        report(progress)

    taken = threading.current_thread() is threading.main_thread()
    if taken:
        try:
            loop.add_signal_handler(signal.SIGINT, interrupted)
        except (NotImplementedError, RuntimeError):
            taken = False
    try:
        yield stopping
    finally:
        if taken:
            loop.remove_signal_handler(signal.SIGINT)


async def _generate(
    client: ImageClient, journal: Journal, item: Prompt, task_id: str | None
) -> dict[str, Any]:
    """``item`` generated (or, with the ``task_id`` an earlier run submitted, its task followed)
    and its end journaled."""
    if item.problem is not None:
        return _ended(journal, _failed(item, "InvalidLine", item.problem))

    async def sending() -> None:  # on disk before the request's bytes go
        await asyncio.to_thread(journal.send, item.id, item.digest)

    async def submitted(task_id: str) -> None:  # on disk before the task is polled
        await asyncio.to_thread(journal.task, item.id, task_id)

    requeues, since = 0, time.monotonic()
    while True:
        try:
            if task_id is not None:  # submitted by a run that stopped: polled, not paid again
                result = await client.afollow_task(task_id)
            else:
                result = await client.agenerate(
                    item.prompt, **item.options, on_sending=sending, on_task=submitted
                )
        except RateLimitError as error:
            if requeues < REQUEUES and time.monotonic() - since < REQUEUE_SECONDS:
                requeues += 1
                await asyncio.sleep(wait_before(requeues, error))
                continue
            return _ended(journal, _failed(item, type(error).__name__, str(error)))
        except ImageToolError as error:
            lost = isinstance(error, APIError) and may_have_drawn(error)
            return _ended(
                journal, _failed(item, type(error).__name__, str(error), "lost" if lost else "failed")
            )
        return _ended(journal, _succeeded(item, result))


def _ended(journal: Journal, line: dict[str, Any]) -> dict[str, Any]:
    journal.end(line)
    return line


def _survey(prompts: Path, journal: Journal, done_before: Collection[str]) -> BatchProgress:
    """How many prompts there are and how many ended before; a prompts file whose ids now ask for
    other prompts than the journal recorded is refused, naming them."""
    progress, moved = BatchProgress(total=0), []
    for item in read_prompts(prompts):
        progress.total += 1
        progress.skipped += item.id in done_before
        recorded = journal.digests.get(item.id)
        if recorded is not None and item.problem is None and recorded != item.digest:
            moved.append(item.id)
    if moved:
        named = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
        raise ConfigurationError(
            f"{journal.path.parent} holds results for other prompts under the ids {named}: the prompts "
            "file changed. Give this run a fresh --out (or restore the prompts file)."
        )
    return progress


def _succeeded(item: Prompt, result: ImageGenerationResult) -> dict[str, Any]:
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


def _failed(item: Prompt, kind: str, message: str, status: Status = "failed") -> dict[str, Any]:
    error = {"kind": kind, "message": message}
    return {"id": item.id, "prompt": item.prompt, "status": status, "error": error}


def _write_results(prompts: Path, journal: Journal, path: Path) -> BatchSummary:
    """``results.jsonl`` from the journal, in the input's order (written whole, then renamed)."""
    counts: dict[Status, int] = {"ok": 0, "failed": 0, "lost": 0}
    cost, not_started = 0.0, 0
    unsaved: list[str] = []
    invalid_lines: list[str] = []
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8") as results, journal.results() as result_of:
        for item in read_prompts(prompts):
            if item.id not in journal.sent:
                not_started += 1  # a later run does it
                continue
            line = result_of(item.id) or {
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
    return BatchSummary(
        counts["ok"], counts["failed"], counts["lost"], cost, path, not_started, unsaved, invalid_lines
    )
