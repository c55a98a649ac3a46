"""Asynchronous image jobs' tickets and polls, as the new-api forks that take them write them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_tool import ConfigurationError, ImageClient, errors
from image_tool._wire import image_jobs


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def job(**fields: Any) -> bytes:
    return body(**{"task_id": "task_9f2", "object": "image.generation.task", "status": "queued", **fields})


def test_a_ticket_is_its_task_id() -> None:
    assert image_jobs.ticket(202, job(progress="0%")) == "task_9f2"


def test_a_relay_that_draws_at_once_is_named() -> None:
    answer = body(created=1, data=[{"url": "https://x.example/a.png"}])
    with pytest.raises(errors.MalformedResponseError, match="image_jobs=False"):
        image_jobs.ticket(200, answer)


def test_a_refused_submit_is_read_as_any_error() -> None:
    conflict = body(error={"message": "Idempotency-Key was already used with a different request"})
    with pytest.raises(errors.APIStatusError, match="Idempotency-Key") as caught:
        image_jobs.ticket(409, conflict)
    assert caught.value.status_code == 409


def test_a_job_runs_then_ends_with_the_images_api_answer() -> None:
    running = image_jobs.task_of(200, job(status="in_progress", progress="40%"))
    assert (running.status, running.percent, running.ended) == ("IN_PROGRESS", 40, False)
    result = {
        "created": 1710000001,
        "data": [{"url": "https://cdn.example/a.png"}, {"url": "https://cdn.example/b.png"}],
    }
    done = image_jobs.task_of(200, job(status="completed", progress="100%", result=result))
    assert done.ended
    assert image_jobs.result_of(done, "gpt-image-1").urls == [
        "https://cdn.example/a.png",
        "https://cdn.example/b.png",
    ]


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("Your request was rejected by the safety system.", errors.ContentPolicyError),
        ("upstream timeout", errors.APIStatusError),
    ],
)
def test_a_failed_job_is_read_by_its_reason(reason: str, kind: type[errors.APIError]) -> None:
    failed = image_jobs.task_of(
        200,
        job(status="failed", progress="100%", error={"message": reason, "code": "image_generation_failed"}),
    )
    with pytest.raises(kind, match="image job task_9f2 failed") as caught:
        image_jobs.result_of(failed, "gpt-image-1")
    assert type(caught.value) is kind


def test_an_unknown_job_is_the_relays_error() -> None:
    missing = body(
        error={"message": "Image task not found", "type": "invalid_request_error", "code": "image_task_error"}
    )
    with pytest.raises(errors.APIStatusError, match="Image task not found"):
        image_jobs.task_of(404, missing)


def test_image_jobs_need_a_model_drawn_on_the_images_api() -> None:
    with pytest.raises(ConfigurationError, match="image_jobs=True draws on the Images API"):
        ImageClient(api_key="sk-jobs-0123456789abcdef", base_url="https://relay.example/v1", image_jobs=True)
    ImageClient(api_key="k", base_url="https://relay.example/v1", model="gpt-image-1", image_jobs=True)
