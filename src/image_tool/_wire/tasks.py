"""What a relay's task (a Midjourney grid, an asynchronous image job) is while it runs, whoever
reports it: its status, how far it is, and the progress update it makes. No I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import MalformedResponseError
from ..models import GenerationProgress, ProgressStage

MAX_ANSWER_BYTES = 1024 * 1024
"""A ticket or a task is a few kilobytes; more is not read."""

QUEUED = frozenset({"", "NOT_START", "SUBMITTED", "MODAL", "QUEUED"})
ENDED = frozenset({"SUCCESS", "FAILURE", "CANCEL"})
"""midjourney-proxy's ``TaskStatus`` words, which image jobs' statuses are read into."""
_PERCENT = re.compile(r"(\d{1,3})\s*%")


@dataclass(frozen=True)
class Task:
    """A task as the relay reports it."""

    name: str
    """What kind of task, for the progress text (``Midjourney``, ``Image job``)."""
    id: str
    status: str
    percent: int | None
    image_url: str | None = None
    """Its image when it succeeded, a preview while it runs (Midjourney)."""
    fail_reason: str = ""
    prompt: str = ""
    actions: dict[str, str] = field(default_factory=dict)
    """What may be done with its images next, by name (``U1``, ``V2``, ``reroll``): the customId."""
    result: Any = None
    """The images it drew, in the shape its relay wrote them (an image job's ``result``)."""

    @property
    def ended(self) -> bool:
        return self.status in ENDED


def percent_of(progress: object) -> int | None:
    """``"46%"`` (or 46) as 46; ``None`` when there is no figure."""
    if isinstance(progress, int | float) and not isinstance(progress, bool):
        return max(0, min(100, int(progress)))
    found = _PERCENT.search(str(progress or ""))
    return min(100, int(found.group(1))) if found else None


def progress_of(task: Task) -> GenerationProgress:
    stage: ProgressStage = (
        "queued" if task.status in QUEUED else "done" if task.status == "SUCCESS" else "generating"
    )
    text = f"{task.name}: {task.status.lower() or 'submitted'}" + (
        f", {task.percent}%" if task.percent else ""
    )
    preview = task.image_url if task.status not in ENDED else None
    return GenerationProgress(stage=stage, percent=task.percent, text=text, preview_url=preview)


def json_object(body: bytes, status_code: int, what: str) -> dict[str, Any] | None:
    """The JSON object ``body`` holds, ``None`` when it holds none; larger than the cap, an error."""
    if len(body) > MAX_ANSWER_BYTES:
        raise MalformedResponseError(
            f"The relay's {what} answer is larger than 1 MiB.", status_code=status_code
        )
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
