"""Asynchronous image jobs on the Images API: a generation submitted with ``"async": true`` (and an
``Idempotency-Key``), answered 202 with a task id, then polled. No I/O.

The shapes are those of the new-api forks that take such jobs (lingozhi/new-api,
``relay/channel/openai/image_stream/async.go``, ``router/relay-router.go``); new-api itself draws
every Images API request at once. ``POST {base}/images/generations`` answers
``{"task_id", "object": "image.generation.task", "status": "queued", "progress": "0%"}``; ``GET
{base}/images/generations/{task_id}`` answers the same, ``in_progress`` then ``completed`` with the
Images API's answer under ``result``, or ``failed`` with an ``error``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from ..errors import APIError, MalformedResponseError
from ..models import ImageGenerationResult
from .failures import error_from_response
from .parsing import parse_result
from .signals import kind_of
from .tasks import Task, json_object, percent_of

SUBMIT = "/images/generations"
STATUSES = {"queued": "QUEUED", "in_progress": "IN_PROGRESS", "completed": "SUCCESS", "failed": "FAILURE"}
"""The jobs' statuses, in midjourney-proxy's words (``_wire/tasks.py``)."""


def base_of(base_url: str) -> str:
    """Jobs are posted where the Images API is: under the base URL."""
    return base_url


def poll_path(task_id: str) -> str:
    return f"/images/generations/{quote(task_id, safe='')}"


def job_body(body: dict[str, Any]) -> dict[str, Any]:
    """An Images API generation's body, as a job."""
    return {**body, "async": True}


def ticket(status_code: int, body: bytes) -> str:
    """The task id a submit was given (202, or 200 from a relay that skips the Accepted); else the
    error its answer means."""
    answer = json_object(body, status_code, "image job")
    task_id = answer.get("task_id") if answer else None
    if status_code in (200, 202) and isinstance(task_id, str) and task_id:
        return task_id
    if status_code >= 400:
        raise error_from_response(status_code, body)
    raise MalformedResponseError(
        "The relay answered an image job without a task_id: it may not take asynchronous jobs "
        "(set image_jobs=False).",
        status_code=status_code,
    )


def task_of(status_code: int, body: bytes) -> Task:
    """The job in a poll's answer; else the error its answer means."""
    if status_code >= 400:
        raise error_from_response(status_code, body)
    answer = json_object(body, status_code, "image job") or {}
    task_id = answer.get("task_id")
    if not isinstance(task_id, str):
        raise MalformedResponseError("The relay's image job could not be read.", status_code=status_code)
    error = answer.get("error")
    reason = error.get("message") if isinstance(error, dict) else None
    return Task(
        name="Image job",
        id=task_id,
        status=STATUSES.get(str(answer.get("status")), "QUEUED"),
        percent=percent_of(answer.get("progress")),
        fail_reason=str(reason or "").strip(),
        result=answer.get("result"),
    )


def result_of(task: Task, model: str) -> ImageGenerationResult:
    """A finished job's images, read as the Images API's answer; or the error it ended with."""
    if task.status == "SUCCESS":
        return parse_result(json.dumps(task.result).encode(), requested_model=model)
    raise failure_of(task)


def failure_of(task: Task) -> APIError:
    """A refusal when the reason says so (by the words relays use for one), else the reason."""
    reason = task.fail_reason or f"it ended as {task.status}"
    return kind_of(0, set(), reason, None)(
        f"The image job {task.id} failed: {reason}", code="image_generation_failed"
    )
