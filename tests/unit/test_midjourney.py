"""Midjourney's tickets and tasks, as new-api and midjourney-proxy write them, read into results
and errors (no relay: the answers as bytes)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_tool import errors
from image_tool._wire import midjourney
from image_tool._wire.tasks import MAX_ANSWER_BYTES, progress_of
from image_tool.catalog import family_of

BUTTONS = [
    *({"customId": f"MJ::JOB::upsample::{i}::3785da15", "label": f"U{i}", "emoji": ""} for i in range(1, 5)),
    *({"customId": f"MJ::JOB::variation::{i}::3785da15", "label": f"V{i}", "emoji": ""} for i in range(1, 5)),
    {"customId": "MJ::JOB::reroll::0::3785da15::SOLO", "label": "", "emoji": "🔄"},
]


def body(**fields: Any) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def task(**fields: Any) -> bytes:
    base = {"id": "1712345", "action": "IMAGINE", "prompt": "a cat", "promptEn": "a cat", "status": "",
            "progress": "0%", "imageUrl": "", "failReason": "", "buttons": None}  # fmt: skip
    return body(**{**base, **fields})


def test_the_model_names_relays_sell_are_drawn_as_tasks() -> None:
    for model in ("mj_imagine", "midjourney", "MJ_IMAGINE", "niji-journey"):
        assert family_of(model).api == "midjourney"
    assert midjourney.base_of("https://relay.example/v1") == "https://relay.example"


@pytest.mark.parametrize("code", [1, 21, 22])
def test_a_submitted_ticket_is_its_task_id(code: int) -> None:
    assert midjourney.ticket(200, body(code=code, description="提交成功", result="1712345")) == "1712345"


@pytest.mark.parametrize(
    ("status", "answer", "kind", "says"),
    [
        (200, body(code=23, description="队列已满，请稍后尝试"), errors.RateLimitError, "队列已满"),
        (
            200,
            body(code=24, description="可能包含敏感词", properties={"promptEn": "x", "bannedWord": "gore"}),
            errors.ContentPolicyError,
            "'gore'",
        ),
        (
            400,
            body(description="quota_not_enough ", type="upstream_error", code=4),
            errors.QuotaExceededError,
            "quota",
        ),
        (200, body(code=4, description="prompt不能为空"), errors.APIStatusError, "prompt不能为空"),
        (
            401,
            body(error={"message": "无效的令牌 (request id: 2025)", "type": "new_api_error"}),
            errors.AuthenticationError,
            "无效的令牌",
        ),
    ],
    ids=["queue-full", "banned", "quota", "invalid", "key"],
)
def test_a_refused_submit_is_its_kind(
    status: int, answer: bytes, kind: type[errors.APIError], says: str
) -> None:
    with pytest.raises(kind, match=says) as caught:
        midjourney.ticket(status, answer)
    assert type(caught.value) is kind
    assert caught.value.status_code is not None and caught.value.status_code >= 400  # nothing drawn


def test_a_task_in_progress_reports_its_stage_and_preview() -> None:
    running = midjourney.task_of(
        200, task(status="IN_PROGRESS", progress="46%", imageUrl="https://r.example/p.png")
    )
    assert (running.ended, running.percent) == (False, 46)
    update = progress_of(running)
    assert (update.stage, update.percent, update.preview_url) == ("generating", 46, "https://r.example/p.png")
    assert progress_of(midjourney.task_of(200, task())).stage == "queued"


def test_a_finished_grid_is_one_image_with_its_actions() -> None:
    done = midjourney.task_of(
        200,
        task(
            status="SUCCESS", progress="100%", imageUrl="https://r.example/mj/image/1712345", buttons=BUTTONS
        ),
    )
    result = midjourney.result_of(done, "mj_imagine")
    assert [image.url for image in result.images] == ["https://r.example/mj/image/1712345"]
    assert result.task_id == "1712345"
    assert result.actions == ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "reroll"]
    assert done.actions["reroll"] == "MJ::JOB::reroll::0::3785da15::SOLO"


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (
            "[Banned prompt detected] Sorry! Our AI moderator thinks this prompt is probably against our "
            "community standards.",
            errors.ContentPolicyError,
        ),
        ("Request cancelled due to output filters", errors.ContentPolicyError),
        ("上游任务超时（超过1小时）", errors.APIStatusError),
    ],
)
def test_a_failed_task_is_read_by_its_reason(reason: str, kind: type[errors.APIError]) -> None:
    failed = midjourney.task_of(200, task(status="FAILURE", progress="100%", failReason=reason))
    with pytest.raises(kind, match="failed") as caught:
        midjourney.result_of(failed, "mj_imagine")
    assert type(caught.value) is kind


def test_an_unknown_task_and_an_unreadable_answer() -> None:
    with pytest.raises(errors.APIStatusError, match="no such Midjourney task: task_no_found"):
        midjourney.task_of(400, body(description="task_no_found ", type="upstream_error", code=4))
    with pytest.raises(errors.MalformedResponseError):
        midjourney.task_of(200, b"<html>")
    with pytest.raises(errors.MalformedResponseError, match="larger than 1 MiB"):
        midjourney.task_of(200, b" " * (MAX_ANSWER_BYTES + 1))


def test_images_go_inline_or_lead_the_prompt() -> None:
    request = midjourney.imagine_body("a cat", ["https://x.example/a.png", "data:image/png;base64,AAAA"])
    assert request == {
        "prompt": "https://x.example/a.png a cat",
        "base64Array": ["data:image/png;base64,AAAA"],
    }
    assert midjourney.imagine_body("a cat", []) == {"prompt": "a cat"}
