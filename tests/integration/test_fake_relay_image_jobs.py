"""FakeRelay's asynchronous Images API jobs (a new-api fork's ``"async": true``): the 202 submit,
polls that move the job, Idempotency-Key replays and conflicts, and the limits, over raw httpx2."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from image_tool.testing import FakeRelay, Reply, png_size

TASK_ID = re.compile(r"^task_[0-9a-f]+$")
PNG_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/images/(\d+)x(\d+)/[0-9a-f]{16}\.png$")
PROMPT = "a paper boat on a rainy street"


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay() as relay:
        yield relay


@pytest.fixture
def http(relay: FakeRelay) -> Iterator[httpx2.Client]:
    headers = {"Authorization": f"Bearer {relay.api_key}"}
    with httpx2.Client(base_url=relay.base_url, headers=headers, timeout=10) as client:
        yield client


def submit(http: httpx2.Client, key: str | None = None, **fields: Any) -> httpx2.Response:
    body = {"model": "dall-e-3", "prompt": PROMPT, "async": True, **fields}
    headers = {"Idempotency-Key": key} if key is not None else {}
    return http.post("/images/generations", json=body, headers=headers)


def poll(http: httpx2.Client, task_id: str) -> httpx2.Response:
    answer = http.get(f"/images/generations/{task_id}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer


def until_done(http: httpx2.Client, task_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """Every poll's body, up to the first terminal one."""
    seen: list[dict[str, Any]] = []
    for _ in range(limit):
        answer = poll(http, task_id)
        task = answer.json()
        seen.append(task)
        if task["status"] in ("completed", "failed"):
            assert "retry-after" not in answer.headers
            return seen
        assert answer.headers["retry-after"] == "2"
    raise AssertionError(f"the job never ended: {seen[-1]}")


def test_submit_answers_202_with_a_queued_task(relay: FakeRelay, http: httpx2.Client) -> None:
    answer = submit(http)
    assert answer.status_code == 202, answer.text
    task = answer.json()
    assert list(task) == ["task_id", "object", "status", "progress", "created_at"]
    assert TASK_ID.match(task["task_id"])
    assert task["object"] == "image.generation.task"
    assert (task["status"], task["progress"]) == ("queued", "0%")
    assert isinstance(task["created_at"], int)
    assert answer.headers["location"] == f"/v1/images/generations/{task['task_id']}"
    assert answer.headers["retry-after"] == "2"
    assert "idempotency-replayed" not in answer.headers
    assert relay.generated == 0  # nothing drawn until the job completes


def test_polls_move_the_job_to_completed_with_downloadable_images(
    relay: FakeRelay, http: httpx2.Client
) -> None:
    relay.queue(Reply.image_job(polls=2))
    task_id = submit(http, size="1792x1024").json()["task_id"]
    seen = until_done(http, task_id)
    assert [(task["status"], task["progress"]) for task in seen] == [
        ("queued", "0%"),
        ("in_progress", "40%"),
        ("in_progress", "80%"),
        ("completed", "100%"),
    ]
    assert relay.generated == 1 and relay.generated_prompts == [PROMPT]
    done = seen[-1]
    assert done["task_id"] == task_id and done["completed_at"] >= done["created_at"]
    assert "error" not in done and "result" not in seen[-2]
    assert list(done["result"]) == ["created", "data"]
    [image] = done["result"]["data"]
    assert list(image) == ["url"]
    link = PNG_LINK.match(image["url"])
    assert link and (link[1], link[2]) == ("1792", "1024")
    download = httpx2.get(image["url"])
    assert download.status_code == 200 and png_size(download.content) == (1792, 1024)
    assert poll(http, task_id).json() == done  # terminal: it stays, counted once
    assert relay.generated == 1


def test_a_job_of_two_images(relay: FakeRelay, http: httpx2.Client) -> None:
    relay.queue(Reply.image_job(polls=0))
    task_id = submit(http, model="gpt-image-1", n=2, size="1024x1536").json()["task_id"]
    seen = until_done(http, task_id)
    assert [task["status"] for task in seen] == ["queued", "completed"]
    links = [image["url"] for image in seen[-1]["result"]["data"]]
    assert len(set(links)) == 2
    for link in links:
        assert png_size(httpx2.get(link).content) == (1024, 1536)
    assert relay.generated == 2 and relay.generated_prompts == [PROMPT]


def test_a_failed_job(relay: FakeRelay, http: httpx2.Client) -> None:
    relay.queue(Reply.image_job_failed("upstream refused the prompt", after=1))
    task_id = submit(http).json()["task_id"]
    seen = until_done(http, task_id)
    assert [(task["status"], task["progress"]) for task in seen] == [
        ("queued", "0%"),
        ("in_progress", "80%"),
        ("failed", "100%"),
    ]
    assert seen[-1]["error"] == {"message": "upstream refused the prompt", "code": "image_generation_failed"}
    assert "result" not in seen[-1]
    assert relay.generated == 0 and relay.generated_prompts == []


def test_the_same_key_and_body_replay_the_same_task(relay: FakeRelay, http: httpx2.Client) -> None:
    relay.queue(Reply.image_job(polls=0))
    first = submit(http, key="order-42")
    again = submit(http, key="order-42")
    assert again.status_code == 202
    assert again.headers["idempotency-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    # The same fields in another order are the same request.
    body = {"async": True, "prompt": PROMPT, "model": "dall-e-3"}
    reordered = http.post("/images/generations", json=body, headers={"Idempotency-Key": "order-42"})
    assert reordered.status_code == 202 and reordered.content == first.content
    until_done(http, first.json()["task_id"])
    submit(http, key="order-42")
    assert relay.generated == 1 and relay.generated_prompts == [PROMPT]
    submits = [r for r in relay.requests if r.method == "POST"]
    assert len(submits) == 4


def test_the_same_key_with_another_body_is_a_conflict(relay: FakeRelay, http: httpx2.Client) -> None:
    assert submit(http, key="order-7").status_code == 202
    conflict = submit(http, key="order-7", prompt="a different prompt")
    assert conflict.status_code == 409
    assert conflict.json() == {
        "error": {
            "message": "Idempotency-Key was already used with a different request",
            "type": "invalid_request_error",
            "code": "idempotency_conflict",
        }
    }
    assert "idempotency-replayed" not in conflict.headers


def test_a_key_too_long_is_refused(http: httpx2.Client) -> None:
    assert submit(http, key="k" * 256).status_code == 202
    answer = submit(http, key="k" * 257)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and "Idempotency-Key" in error["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "b64_json"}, "response_format"),
        ({"model": "gpt-image-1", "stream": True}, "stream"),
    ],
)
def test_links_only_and_no_stream(http: httpx2.Client, fields: dict[str, Any], param: str) -> None:
    answer = submit(http, **fields)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert submit(http, response_format="url").status_code == 202


def test_a_bad_value_gets_the_images_api_400(http: httpx2.Client) -> None:
    answer = submit(http, size="640x480")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "size"


def test_an_unknown_task_is_404(http: httpx2.Client) -> None:
    answer = http.get("/images/generations/task_0123456789abcdef")
    assert answer.status_code == 404
    assert answer.json() == {
        "error": {
            "message": "Image task not found",
            "type": "invalid_request_error",
            "code": "image_task_error",
        }
    }


def test_an_error_reply_answers_the_submit_itself(relay: FakeRelay, http: httpx2.Client) -> None:
    relay.queue(Reply.rate_limited(retry_after=3), Reply.content_policy())
    limited = submit(http, key="retry-me")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    refused = submit(http, key="retry-me")  # the key is free again: no job was made
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "content_policy_violation"
    assert submit(http, key="retry-me").status_code == 202
    assert relay.generated == 0


def test_the_limits_apply_to_submits() -> None:
    with FakeRelay(quota_images=1) as relay:
        headers = {"Authorization": f"Bearer {relay.api_key}"}
        with httpx2.Client(base_url=relay.base_url, headers=headers, timeout=10) as client:
            task_id = submit(client).json()["task_id"]
            spent = submit(client)  # the first job's image is reserved
            assert spent.status_code == 403
            assert spent.json()["error"]["code"] == "insufficient_user_quota"
            until_done(client, task_id)
            assert relay.generated == 1


def test_synchronous_requests_are_unchanged(relay: FakeRelay, http: httpx2.Client) -> None:
    for fields in ({}, {"async": False}):
        body = {"model": "dall-e-3", "prompt": PROMPT, **fields}
        answer = http.post("/images/generations", json=body, headers={"Idempotency-Key": "sync"})
        assert answer.status_code == 200, answer.text
        assert list(answer.json()) == ["created", "data"]
        assert "location" not in answer.headers
    assert relay.generated == 2


def test_every_route_checks_the_key(relay: FakeRelay, http: httpx2.Client) -> None:
    task_id = submit(http).json()["task_id"]
    wrong = {"Authorization": "Bearer not-the-key"}
    body = {"model": "dall-e-3", "prompt": PROMPT, "async": True}
    assert httpx2.post(f"{relay.base_url}/images/generations", json=body, headers=wrong).status_code == 401
    assert httpx2.get(f"{relay.base_url}/images/generations/{task_id}", headers=wrong).status_code == 401
    assert httpx2.get(f"{relay.base_url}/images/generations/{task_id}").status_code == 401
    assert poll(http, task_id).json()["status"] == "queued"  # the refused polls moved nothing
