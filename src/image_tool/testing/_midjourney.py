"""new-api's Midjourney routes, as FakeRelay emulates them: submits answered with a task id, tasks
that advance one step a fetch, and new-api's own errors.

The sources are new-api's relay/relay-mj.go (later relay/mjproxy_handler.go), controller/relay.go
RelayMidjourney, service/midjourney.go CoverPlusActionToNormalAction and dto/midjourney.go, with
midjourney-proxy's submit codes (ReturnCode.java) and the plus proxies' buttons. Nothing here
imports the rest of the emulator: ``Reply`` holds an ``MjScript``, the handler drives the tasks.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

MjRouteKind = Literal["imagine", "action", "fetch"]

_ROUTE = re.compile(r"^(?:/[^/?]+)?/mj/(submit/imagine|submit/action|task/([^/?]+)/fetch)/?(?:\?.*)?$")
_GRID = "1024x1024"  # midjourney's 2x2 grid, at half its 2048 px
_SINGLE = "512x512"  # one image of it, upscaled
_PREVIEW = "256x256"  # the low-resolution preview while drawing
_GRID_ACTIONS = {
    "low_variation": "LOW_VARIATION",
    "high_variation": "HIGH_VARIATION",
}
SUBMITTED = "提交成功"


@dataclass(frozen=True)
class MjScript:
    """What a Midjourney submit does (``Reply.mj_task`` and its siblings build these)."""

    polls: int = 3
    """Fetches that find the task unfinished (in progress, when it fails)."""
    fail_reason: str | None = None
    """The task ends in FAILURE with this ``failReason`` instead of SUCCESS."""
    code: int = 1
    """The submit's code: 1 makes a task; any other refuses, with no task id."""
    description: str = SUBMITTED
    properties: dict[str, Any] = field(default_factory=dict)
    """The refusal's ``properties`` (code 24: ``bannedWord``; its ``promptEn`` is the prompt)."""
    relay_error: str | None = None
    """new-api's own refusal (HTTP 400, code 4) with this description, such as ``quota_not_enough``."""


@dataclass(frozen=True)
class MjAnswer:
    """An answer of the Midjourney routes."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class Submission:
    """A submit new-api accepted: a new task of ``action`` (an action's prompt is its origin's)."""

    action: str
    prompt: str


@dataclass
class Task:
    """A task as new-api stores it, and the script that moves it."""

    id: str
    action: str
    prompt: str
    script: MjScript
    settle: Callable[[int], None]
    """Called once, with 1 image or 0, when the task ends."""
    submit_time: int
    single: bool = False
    """One image (an upscale), not a grid."""
    fetches: int = 0
    status: str = ""
    start_time: int = 0
    finish_time: int = 0

    @property
    def hash(self) -> str:
        """The job's hash in its buttons' customIds (Discord's message UUID)."""
        return str(uuid.uuid5(uuid.NAMESPACE_OID, self.id))


def midjourney_route(path: str) -> tuple[MjRouteKind, str] | None:
    """The route ``path`` names and the task id of a fetch, under ``/mj`` or a mode prefix such as
    ``/mj-fast/mj`` (new-api's getMjRequestPath strips it), or None."""
    match = _ROUTE.match(path)
    if match is None:
        return None
    if match[2] is not None:
        return "fetch", match[2]
    return ("imagine" if match[1] == "submit/imagine" else "action"), ""


def relay_error(description: str, code: int = 4) -> MjAnswer:
    """new-api's own error: controller/relay.go writes a gin.H, so Go sorts its keys, and its
    ``"%s %s"`` of description and an empty result leaves a trailing space."""
    payload = {"code": code, "description": f"{description} ", "type": "upstream_error"}
    return MjAnswer(400, go_json(payload), "application/json; charset=utf-8")


def go_json(payload: Any) -> bytes:
    """Go's encoding/json: compact, UTF-8, with ``<``, ``>``, ``&`` and the line separators escaped."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for plain, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(plain, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


class MidjourneyTasks:
    """The tasks FakeRelay holds, by id. ``sniffed``: submit answers go out as new-api copies them,
    as ``text/plain; charset=utf-8`` (Go sniffs a body written with no Content-Type)."""

    def __init__(self, *, sniffed: bool = False) -> None:
        self.sniffed = sniffed
        self._tasks: dict[str, Task] = {}
        self._last_id = 0
        self._lock = threading.Lock()

    def check(self, kind: MjRouteKind, body: bytes) -> Submission | MjAnswer:
        """The submission ``body`` asks for, or new-api's refusal of it (read before any limit)."""
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return relay_error("bind_request_body_failed")
        if kind == "imagine":
            prompt = request.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                return relay_error("prompt_is_required")
            images = request.get("base64Array") or []
            if not isinstance(images, list) or not all(_is_data_url(image) for image in images):
                return self._submit_answer(4, "base64格式错误", None, {})  # midjourney-proxy's own check
            return Submission("IMAGINE", prompt)
        custom_id = request.get("customId")
        if not isinstance(custom_id, str) or not custom_id:
            return relay_error("custom_id_is_required")
        action = _parse_custom_id(custom_id)
        if isinstance(action, MjAnswer):
            return action
        task_id = request.get("taskId")
        if not isinstance(task_id, str) or not task_id:
            return relay_error("task_id_is_required")
        with self._lock:
            origin = self._tasks.get(task_id)
            status = origin.status if origin else ""
        if origin is None:
            return relay_error("task_not_found")
        if status != "SUCCESS":  # MjActionCheckSuccessEnabled, on by default
            return relay_error("task_status_not_success")
        return Submission(action, origin.prompt)

    def submit(self, submission: Submission, script: MjScript, settle: Callable[[int], None]) -> MjAnswer:
        """The submit's answer. A task made holds ``settle``; otherwise it is called with 0 here."""
        if script.relay_error is not None:
            settle(0)
            return relay_error(script.relay_error)
        if script.code != 1:
            settle(0)
            properties = dict(script.properties)
            if script.code == 24:
                properties = {"promptEn": submission.prompt, **properties}
            return self._submit_answer(script.code, script.description, None, properties)
        now = _now()
        with self._lock:
            self._last_id = max(now * 1000, self._last_id + 1)  # midjourney-proxy: millis + 3 digits
            task = Task(
                id=str(self._last_id),
                action=submission.action,
                prompt=submission.prompt,
                script=script,
                settle=settle,
                submit_time=now,
                single=submission.action == "UPSCALE",
            )
            self._tasks[task.id] = task
        return self._submit_answer(1, script.description, task.id, {})

    def fetch(self, task_id: str, origin: str) -> MjAnswer:
        """The task's DTO, one step further than the last fetch saw it. A task that ends is settled
        here, before the answer goes out."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return relay_error("task_no_found")
            step = task.fetches
            task.fetches += 1
            task.status, progress = _state(task.script, step)
            now = _now()
            if task.status == "IN_PROGRESS" and not task.start_time:
                task.start_time = now
            ended = task.status in ("SUCCESS", "FAILURE") and not task.finish_time
            if ended:
                task.start_time = task.start_time or now
                task.finish_time = now
            view = _dto(task, progress, step, origin)
        if ended:
            task.settle(1 if task.status == "SUCCESS" else 0)
        return MjAnswer(200, go_json(view))  # RelayMidjourneyTask sets application/json itself

    def _submit_answer(
        self, code: int, description: str, result: str | None, properties: dict[str, Any]
    ) -> MjAnswer:
        """midjourney-proxy's SubmitResultVO, passed through by new-api (HTTP 200)."""
        payload = {"code": code, "description": description, "result": result, "properties": properties}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return MjAnswer(200, body, "text/plain; charset=utf-8" if self.sniffed else "application/json")


def _parse_custom_id(custom_id: str) -> str | MjAnswer:
    """The action a button's customId names (CoverPlusActionToNormalAction). Inpaint and
    CustomZoom, which wait for ``/submit/modal``, are not emulated: ``unknown_action``."""
    parts = custom_id.split("::")
    name = (parts[2] if parts[1] == "JOB" and len(parts) > 2 else parts[1]) if len(parts) > 1 else ""
    if "upsample" in name or name == "variation":
        if len(parts) < 4 or not parts[3].isdigit():
            return relay_error("index_parse_failed")
        return "UPSCALE" if "upsample" in name else "VARIATION"
    if name in _GRID_ACTIONS:
        return _GRID_ACTIONS[name]
    for word, action in (("pan", "PAN"), ("reroll", "REROLL")):
        if word in name:
            return action
    if name == "Outpaint":
        return "ZOOM"
    return relay_error(f"unknown_action:{custom_id}")


def _state(script: MjScript, step: int) -> tuple[str, str]:
    """Status and progress at the ``step``-th fetch (from 0). A success shows new-api's empty
    status first, then SUBMITTED, then IN_PROGRESS; a failure is in progress until it fails, and
    new-api forces its progress to 100%."""
    if script.fail_reason is not None:
        if step >= script.polls:
            return "FAILURE", "100%"
        return "IN_PROGRESS", f"{(step + 1) * 100 // (script.polls + 1)}%"
    if step >= script.polls:
        return "SUCCESS", "100%"
    if step < 2:
        return ("", "SUBMITTED")[step], "0%"
    return "IN_PROGRESS", f"{(step - 1) * 100 // (script.polls - 1)}%"


def _dto(task: Task, progress: str, step: int, origin: str) -> dict[str, Any]:
    """dto.MidjourneyDto: every key, with no omitempty."""
    status = task.status
    image_url = ""
    if status == "SUCCESS":
        image_url = f"{origin}/images/{_SINGLE if task.single else _GRID}/{_token(task.id)}.png"
    elif status == "IN_PROGRESS":
        image_url = f"{origin}/images/{_PREVIEW}/{_token(f'{task.id}|{step}')}.png"
    buttons: list[dict[str, Any]] | None = None if status == "" else []
    if status == "SUCCESS":
        buttons = _single_buttons(task.hash) if task.single else _grid_buttons(task.hash)
    return {
        "id": task.id,
        "action": task.action,
        "customId": "",
        "botType": "",
        "prompt": task.prompt,
        "promptEn": task.prompt,
        "description": task.script.description,
        "state": "",
        "submitTime": task.submit_time,
        "startTime": task.start_time,
        "finishTime": task.finish_time,
        "imageUrl": image_url,
        "videoUrl": "",
        "videoUrls": None,
        "status": status,
        "progress": progress,
        "failReason": task.script.fail_reason if status == "FAILURE" else "",
        "buttons": buttons,
        "maskBase64": "",
        "properties": None if status == "" else {"finalPrompt": task.prompt, "finalZhPrompt": ""},
    }


def _grid_buttons(job: str) -> list[dict[str, Any]]:
    """Discord's rows under a grid: U1-U4 and reroll, then V1-V4."""
    upscales = [_button(f"MJ::JOB::upsample::{n}::{job}", f"U{n}") for n in range(1, 5)]
    reroll = _button(f"MJ::JOB::reroll::0::{job}::SOLO", "", "🔄")
    variations = [_button(f"MJ::JOB::variation::{n}::{job}", f"V{n}") for n in range(1, 5)]
    return [*upscales, reroll, *variations]


def _single_buttons(job: str) -> list[dict[str, Any]]:
    return [
        _button(f"MJ::JOB::low_variation::1::{job}::SOLO", "Vary (Subtle)", "🪄"),
        _button(f"MJ::JOB::high_variation::1::{job}::SOLO", "Vary (Strong)", "🪄"),
    ]


def _button(custom_id: str, label: str, emoji: str = "") -> dict[str, Any]:
    return {"customId": custom_id, "emoji": emoji, "label": label, "type": 2, "style": 2}


def _token(seed: str) -> str:
    """A 16-hex token for FakeRelay's ``/images/WxH/TOKEN.png``."""
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def _is_data_url(image: object) -> bool:
    return isinstance(image, str) and image.startswith("data:") and ";base64," in image


def _now() -> int:
    return time.time_ns() // 1_000_000
