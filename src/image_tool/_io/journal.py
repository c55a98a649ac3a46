"""A batch run's journal: ``journal.jsonl`` in the output directory, the record that lets a run
stop anywhere and go on without sending a prompt twice.

Each prompt's request is recorded (and synced to disk) right before its bytes go,
``{"id", "sent", "digest"}``, and its end when it ends: the result line, with its ``digest``. The
digest binds the id to the prompt and options it was sent with. One run at a time holds the
directory (an advisory lock on ``.lock``, released when the process ends, however it ends).

Only what each id needs stays in memory: whether it was sent, where its end is in the file, and
its digest; a result line is read back from the file when the results are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ConfigurationError

JOURNAL = "journal.jsonl"
LOCK = ".lock"


def digest(prompt: str, options: Mapping[str, Any]) -> str:
    """What a prompt line asks for, as a short fingerprint."""
    asked = json.dumps({"prompt": prompt, "options": options}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(asked.encode()).hexdigest()[:16]


class Journal:
    """The journal of ``out``, held by this run until ``close``."""

    def __init__(self, out: Path) -> None:
        self.path = out / JOURNAL
        self._lock_file = _hold(out / LOCK)
        try:
            _drop_torn_line(self.path)
            self.sent: set[str] = set()
            """Every id with a record: sent, and perhaps ended."""
            self.ended: dict[str, int] = {}
            """Each ended id, and where its result line starts in the file."""
            self.lost: set[str] = set()
            """Ended ids whose request reached the relay unanswered (status ``lost``)."""
            self.tasks: dict[str, str] = {}
            """The relay's task of each id drawn as one (Midjourney), once it was submitted."""
            self.digests: dict[str, str] = {}
            self._index()
            self._file = self.path.open("a", encoding="utf-8")
        except BaseException:
            self._lock_file.close()
            raise
        self._lock = threading.Lock()  # sendings are written from worker threads

    def send(self, id_: str, prompt_digest: str) -> None:
        """Record that ``id_``'s request goes out now, synced to disk first (once: its retries go
        out under the same record)."""
        with self._lock:
            if id_ in self.sent:
                return
            self.sent.add(id_)
            self._write({"id": id_, "sent": time.time(), "digest": prompt_digest}, sync=True)

    def task(self, id_: str, task_id: str) -> None:
        """Record the relay's task for ``id_``, synced to disk: a run that stops before the task
        ends polls it again instead of submitting it twice."""
        with self._lock:
            self.tasks[id_] = task_id
            self._write({"id": id_, "task": task_id}, sync=True)

    def unfinished_tasks(self) -> dict[str, str]:
        """The relay's task of each id whose task was submitted but whose images were not got
        (a run stopped while it was drawn, or gave up polling): polled again, never resubmitted."""
        with self._lock:
            return {
                id_: task for id_, task in self.tasks.items() if id_ not in self.ended or id_ in self.lost
            }

    def end(self, line: dict[str, Any]) -> None:
        with self._lock:  # every write is flushed: the file's size is where this line starts
            self._ended(line["id"], line["status"], self.path.stat().st_size)
            self._write(line, sync=False)

    def _ended(self, id_: str, status: object, offset: int) -> None:
        self.sent.add(id_)
        self.ended[id_] = offset
        if status == "lost":
            self.lost.add(id_)
        else:
            self.lost.discard(id_)

    @contextlib.contextmanager
    def results(self) -> Iterator[Callable[[str], dict[str, Any] | None]]:
        """A look-up of each id's result line (``None`` while only its sending is known), on one
        reading of the file (every write is flushed: each line is there)."""
        with self.path.open("rb") as journal:

            def result(id_: str) -> dict[str, Any] | None:
                offset = self.ended.get(id_)
                if offset is None:
                    return None
                journal.seek(offset)
                line: dict[str, Any] = json.loads(journal.readline())
                return line

            yield result

    def close(self) -> None:
        self._file.close()
        self._lock_file.close()

    def _write(self, entry: dict[str, Any], *, sync: bool) -> None:
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def _index(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as journal:
            offset = 0
            for number, raw in enumerate(journal, 1):
                try:
                    entry = json.loads(raw)
                except ValueError as error:
                    raise ConfigurationError(
                        f"{self.path}, line {number}, cannot be read ({error}): the journal was changed "
                        "by hand or by another program. Mend or remove that line, or start a fresh --out."
                    ) from None
                if isinstance(entry, dict) and isinstance(id_ := entry.get("id"), str):
                    self.sent.add(id_)
                    if "status" in entry:
                        self._ended(id_, entry["status"], offset)
                    if isinstance(entry.get("digest"), str):
                        self.digests[id_] = entry["digest"]
                    if isinstance(entry.get("task"), str):
                        self.tasks[id_] = entry["task"]
                offset += len(raw)


def _hold(path: Path) -> BinaryIO:
    """The lock of an output directory, held for this process (the system drops it when the
    process ends, a kill included); a second run is refused, naming the first one's PID."""
    lock = path.open("a+b")
    try:
        _lock_now(lock)
    except OSError:
        lock.seek(0)
        holder = lock.read().decode(errors="replace").strip() or "unknown"
        lock.close()
        raise ConfigurationError(
            f"{path.parent} is in use by another batch run (PID {holder}): wait for it to end, or "
            "give this one another --out."
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()).encode())
    lock.flush()
    return lock


def _lock_now(lock: BinaryIO) -> None:
    """Lock ``lock`` for this process, or raise ``OSError`` at once when another holds it."""
    if sys.platform == "win32":
        import msvcrt

        lock.seek(0)
        msvcrt.locking(lock.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


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
