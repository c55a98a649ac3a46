"""Midjourney through a relay's ``/mj`` routes: the requests, the submit tickets and the tasks,
read into image-tool's results and errors. No I/O.

The shapes are new-api's (``router/relay-router.go``, ``relay/mjproxy_handler.go``,
``dto/midjourney.go``), which passes on midjourney-proxy's (``ReturnCode``, ``TaskStatus``):

- ``POST {root}/mj/submit/imagine`` ``{"prompt", "base64Array"}`` and ``POST {root}/mj/submit/action``
  ``{"customId", "taskId"}`` answer a ticket ``{"code", "description", "result": <task id>}``,
  often as ``text/plain``;
- ``GET {root}/mj/task/{id}/fetch`` answers the task: ``status``, ``progress`` (``"46%"``),
  ``imageUrl`` (a preview while it runs), ``failReason``, ``buttons`` (``customId``, ``label``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..errors import APIError, APIStatusError, ContentPolicyError, MalformedResponseError, RateLimitError
from ..models import GeneratedImage, ImageGenerationResult
from .failures import error_from_response
from .signals import kind_of
from .tasks import Task, json_object, percent_of

SUBMIT_IMAGINE = "/mj/submit/imagine"
SUBMIT_ACTION = "/mj/submit/action"

SUBMITTED = frozenset({1, 21, 22})
"""midjourney-proxy's codes for a task it has: submitted, already there, queued (new-api turns
21 and 22 into 1)."""
REFUSED_BY_CODE: Mapping[int, type[APIStatusError]] = {
    23: RateLimitError,  # QUEUE_REJECTED: "队列已满" (queue full)
    24: ContentPolicyError,  # BANNED_PROMPT: "可能包含敏感词", with the banned word
}
"""midjourney-proxy's ``ReturnCode`` values that name a kind; the others are read by their words."""


def poll_path(task_id: str) -> str:
    return f"/mj/task/{quote(task_id, safe='')}/fetch"


def base_of(base_url: str) -> str:
    """Where a relay serves ``/mj``: its root, beside ``/v1``."""
    return base_url.removesuffix("/v1")


def imagine_body(
    prompt: str, image_urls: Sequence[str], *, seed: int | None = None, negative_prompt: str | None = None
) -> dict[str, Any]:
    """An imagine request: images given inline go as ``base64Array``, links lead the prompt
    (Midjourney's image prompts); a seed and what not to draw end it, as Midjourney's parameters
    ``--seed`` and ``--no``."""
    inline = [url for url in image_urls if url.startswith("data:")]
    links = [url for url in image_urls if not url.startswith("data:")]
    parameters = [
        *([f"--seed {seed}"] if seed is not None else []),
        *([f"--no {negative_prompt}"] if negative_prompt is not None else []),
    ]
    body: dict[str, Any] = {"prompt": " ".join([*links, prompt, *parameters])}
    if inline:
        body["base64Array"] = inline
    return body


def action_body(task_id: str, custom_id: str) -> dict[str, Any]:
    return {"customId": custom_id, "taskId": task_id}


def ticket(status_code: int, body: bytes) -> str:
    """The task id a submit was given; else the error its answer means."""
    answer = json_object(body, status_code, "Midjourney")
    if answer is None or "code" not in answer:  # new-api's own middleware answers OpenAI's shape
        raise _unreadable("ticket", status_code, body)
    code, result = answer.get("code"), answer.get("result")
    if status_code == 200 and code in SUBMITTED and isinstance(result, str | int) and str(result):
        return str(result)
    description = str(answer.get("description") or "").strip() or "no reason given"
    properties = answer.get("properties")
    word = properties.get("bannedWord") if isinstance(properties, dict) else None
    banned = f" (the word {word!r})" if word else ""
    kind = REFUSED_BY_CODE.get(code) if isinstance(code, int) else None
    if kind is None:
        kind = kind_of(status_code, {str(code).lower(), description.lower()}, description, None)
    raise kind(
        f"The relay refused the Midjourney task: {description}{banned} (code {code}).",
        status_code=status_code if status_code >= 400 else 400,  # refused: nothing was drawn
        code=str(code),
    )


def task_of(status_code: int, body: bytes) -> Task:
    """The task in a fetch's answer; else the error its answer means."""
    answer = json_object(body, status_code, "Midjourney")
    if status_code != 200 or answer is None:
        if answer is not None and "code" in answer and "error" not in answer:
            description = str(answer.get("description") or "").strip()
            raise APIStatusError(
                f"The relay has no such Midjourney task: {description}", status_code=status_code
            )
        raise _unreadable("task", status_code, body)
    task_id = answer.get("id")
    if not isinstance(task_id, str | int) or not str(task_id):
        raise MalformedResponseError("The relay's Midjourney task has no id.", status_code=status_code)
    image_url = answer.get("imageUrl")
    return Task(
        name="Midjourney",
        id=str(task_id),
        status=str(answer.get("status") or "").upper(),
        percent=percent_of(answer.get("progress")),
        image_url=image_url if isinstance(image_url, str) and image_url else None,
        fail_reason=str(answer.get("failReason") or "").strip(),
        prompt=str(answer.get("promptEn") or answer.get("prompt") or ""),
        actions=_actions(answer.get("buttons")),
    )


def result_of(task: Task, model: str) -> ImageGenerationResult:
    """An ended task's image (a grid of four for an imagine), or the error it ended with."""
    if task.status == "SUCCESS" and task.image_url:
        image = GeneratedImage(url=task.image_url, revised_prompt=task.prompt or None)
        return ImageGenerationResult(model=model, images=[image], task_id=task.id, actions=list(task.actions))
    raise failure_of(task)


def failure_of(task: Task) -> APIError:
    """Why an ended task has no image: a refusal when its reason says so (by the words relays
    use for one), else the reason as the relay gave it."""
    if task.status == "SUCCESS":
        return MalformedResponseError(f"The Midjourney task {task.id} succeeded without an image.")
    reason = task.fail_reason or f"it ended as {task.status}"
    kind = kind_of(0, set(), reason, None) if task.status == "FAILURE" else APIStatusError
    return kind(f"The Midjourney task {task.id} failed: {reason}", code=task.status.lower())


def _actions(buttons: object) -> dict[str, str]:
    """Each button by the name a person or a model uses: its label (``U1``, ``V3``), or the
    action its customId names (``reroll``)."""
    actions: dict[str, str] = {}
    for button in buttons if isinstance(buttons, list) else []:
        custom_id = button.get("customId") if isinstance(button, dict) else None
        if not isinstance(custom_id, str) or not custom_id:
            continue
        label = str(button.get("label") or "").strip()
        parts = custom_id.split("::")
        name = label or (
            parts[2] if len(parts) > 2 and parts[1] == "JOB" else parts[1] if len(parts) > 1 else ""
        )
        if name:
            actions.setdefault(name, custom_id)
    return actions


def _unreadable(what: str, status_code: int, body: bytes) -> APIError:
    """An answer that is neither a ticket nor a task: the relay's error, or, with a 2xx, unreadable."""
    if status_code >= 400:
        return error_from_response(status_code, body)
    return MalformedResponseError(
        f"The relay's Midjourney {what} could not be read.", status_code=status_code
    )
