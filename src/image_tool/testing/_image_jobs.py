"""Asynchronous Images API jobs as a new-api fork serves them ("Design A", lingozhi/new-api:
relay/channel/openai/image_stream/async.go, controller GetImageGenerationTask): a submit with
``"async": true`` answered 202 with a task, an ``Idempotency-Key`` that replays it, and polls
that move the task one step each.

Nothing here imports the rest of the emulator: ``Reply`` holds an ``ImageJobScript``,
``_images_api.py`` drives the jobs with the handler's limits and replies.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._midjourney import go_json

JOBS_PATH = "/v1/images/generations"
MAX_IDEMPOTENCY_KEY = 256
RETRY_AFTER = "2"
_POLL_ROUTE = re.compile(r"^/v1/images/generations/([^/?]+)/?(?:\?.*)?$")
_OBJECT = "image.generation.task"


@dataclass(frozen=True)
class ImageJobScript:
    """What an asynchronous submit does (``Reply.image_job`` and ``Reply.image_job_failed``)."""

    polls: int = 2
    """Polls that find the job in progress, after the first (queued) one."""
    fail_reason: str | None = None
    """The job ends ``failed`` with this message instead of ``completed``."""


@dataclass(frozen=True)
class JobAnswer:
    """An answer of the job routes, written by new-api's gin: compact JSON."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json; charset=utf-8"


@dataclass(frozen=True)
class JobOrder:
    """What a job draws: ``n`` images of ``size`` (``WxH``) for ``prompt``."""

    prompt: str
    n: int
    size: str


@dataclass
class ImageJob:
    """A job as the relay stores it, and the script that moves it."""

    id: str
    order: JobOrder
    script: ImageJobScript
    settle: Callable[[int], None]
    """Called once, with the images drawn (0 for a failure), when the job ends."""
    created_at: int
    accepted: bytes
    """The submit's 202 body, sent again to a replay."""
    polls: int = 0
    status: str = "queued"
    progress: str = "0%"
    completed_at: int = 0


@dataclass
class _Claim:
    """An Idempotency-Key's request fingerprint, and its job once the submit made one."""

    fingerprint: str
    job_id: str | None = None


def job_fields(body: bytes) -> dict[str, Any] | None:
    """The JSON fields of a generation that asks for a job (``"async": true``), else None."""
    try:
        fields = json.loads(body)
    except ValueError:
        return None
    return fields if isinstance(fields, dict) and fields.get("async") is True else None


def image_task_id(path: str) -> str | None:
    """The task id a poll path names (``/v1/images/generations/{task_id}``), or None."""
    match = _POLL_ROUTE.match(path)
    return match[1] if match else None


def idempotency_key(header: str | None) -> str | None:
    """The header trimmed; empty means no idempotency."""
    return (header or "").strip() or None


def job_refusal(fields: dict[str, Any], key: str | None) -> JobAnswer | None:
    """The 400 new-api gives a job it cannot take: streamed, not links (images go to storage),
    or a key too long to keep."""
    if fields.get("stream") is True:
        return invalid("stream is not supported for asynchronous image generation", "stream")
    if fields.get("response_format") not in (None, "", "url"):
        return invalid("response_format must be url for asynchronous image generation", "response_format")
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        return invalid("Idempotency-Key is too long", None)
    return None


def fingerprint(fields: dict[str, Any]) -> str:
    """The request's identity for its Idempotency-Key: the body without ``async``, canonical."""
    canonical = {name: value for name, value in fields.items() if name != "async"}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def invalid(message: str, param: str | None) -> JobAnswer:
    return _error(
        400, {"message": message, "type": "invalid_request_error", "param": param, "code": "invalid_value"}
    )


class ImageJobs:
    """The jobs FakeRelay holds, by id, and the Idempotency-Keys that made them."""

    def __init__(self) -> None:
        self._jobs: dict[str, ImageJob] = {}
        self._claims: dict[str, _Claim] = {}
        self._lock = threading.Lock()

    def claim(self, key: str | None, print_: str) -> JobAnswer | None:
        """None: a new submit may go on (its key now held). Else the answer to a key already
        used: its job again (202, ``Idempotency-Replayed: true``), or a 409 for another body
        or for a submit still being made."""
        if key is None:
            return None
        with self._lock:
            claim = self._claims.get(key)
            if claim is None:
                self._claims[key] = _Claim(print_)
                return None
            if claim.fingerprint != print_:
                return _error(
                    409,
                    {
                        "message": "Idempotency-Key was already used with a different request",
                        "type": "invalid_request_error",
                        "code": "idempotency_conflict",
                    },
                )
            replayed = ("Idempotency-Replayed", "true")
            if claim.job_id is None:
                message = "image submission is still being prepared; retry with the same Idempotency-Key"
                error = {"message": message, "type": "invalid_request_error", "code": "idempotency_conflict"}
                return _error(409, error, (replayed, ("Retry-After", RETRY_AFTER)))
            job = self._jobs[claim.job_id]
        return _accepted(job, (replayed,))

    def release(self, key: str | None) -> None:
        """The submit holding ``key`` made no job: the key is free again."""
        with self._lock:
            if key is not None and (claim := self._claims.get(key)) and claim.job_id is None:
                del self._claims[key]

    def submit(
        self, key: str | None, order: JobOrder, script: ImageJobScript, settle: Callable[[int], None]
    ) -> JobAnswer:
        """A new job, queued: the 202 that names it."""
        job = ImageJob(
            id=f"task_{uuid.uuid4().hex}",
            order=order,
            script=script,
            settle=settle,
            created_at=int(time.time()),
            accepted=b"",
        )
        job.accepted = go_json(_view(job, ""))
        with self._lock:
            self._jobs[job.id] = job
            if key is not None:
                self._claims[key].job_id = job.id
        return _accepted(job)

    def poll(self, task_id: str, origin: str) -> JobAnswer:
        """The job as it stands, then one step further for the next poll. A job that ends is
        settled here, before the answer goes out."""
        with self._lock:
            job = self._jobs.get(task_id)
            if job is None:
                error = {"message": "Image task not found", "type": "invalid_request_error"}
                return _error(404, {**error, "code": "image_task_error"})
            ended = job.completed_at == 0 and job.polls > job.script.polls
            if job.completed_at == 0:
                job.status, job.progress = _state(job.script, job.polls)
                job.polls += 1
                if ended:
                    job.completed_at = int(time.time())
            view = _view(job, origin)
        if ended:
            job.settle(0 if job.script.fail_reason is not None else job.order.n)
        headers = [("Cache-Control", "no-store")]
        if not job.completed_at:
            headers.append(("Retry-After", RETRY_AFTER))
        return JobAnswer(200, go_json(view), tuple(headers))


def _state(script: ImageJobScript, step: int) -> tuple[str, str]:
    """Status and progress at the ``step``-th poll (from 0): queued, ``polls`` times in progress
    (up to 80%), then completed or failed at 100% (new-api forces a failure's progress too)."""
    if step == 0:
        return "queued", "0%"
    if step <= script.polls:
        return "in_progress", f"{step * 80 // script.polls}%"
    return ("failed" if script.fail_reason is not None else "completed"), "100%"


def _view(job: ImageJob, origin: str) -> dict[str, Any]:
    """new-api's ImageTaskResponse: ``completed_at``, ``result`` and ``error`` only when set."""
    view: dict[str, Any] = {
        "task_id": job.id,
        "object": _OBJECT,
        "status": job.status,
        "progress": job.progress,
        "created_at": job.created_at,
    }
    if job.completed_at:
        view["completed_at"] = job.completed_at
    if job.status == "completed":
        links = [
            {"url": f"{origin}/images/{job.order.size}/{_token(job.id, index)}.png"}
            for index in range(job.order.n)
        ]
        view["result"] = {"created": job.completed_at, "data": links}
    elif job.status == "failed":
        view["error"] = {"message": job.script.fail_reason, "code": "image_generation_failed"}
    return view


def _accepted(job: ImageJob, headers: tuple[tuple[str, str], ...] = ()) -> JobAnswer:
    """The 202 of a submit (or of its replay): the queued job and where to poll it."""
    location = ("Location", f"{JOBS_PATH}/{job.id}")
    return JobAnswer(202, job.accepted, (location, ("Retry-After", RETRY_AFTER), *headers))


def _error(status: int, error: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> JobAnswer:
    return JobAnswer(status, go_json({"error": error}), headers)


def _token(task_id: str, index: int) -> str:
    """A 16-hex token for FakeRelay's ``/images/WxH/TOKEN.png``."""
    return hashlib.sha256(f"{task_id}|{index}".encode()).hexdigest()[:16]
