"""FakeRelay's Midjourney routes (new-api's /mj/...): submits, tasks advanced by fetches, buttons,
refusals, new-api's own errors, the limits and the counts, over raw httpx2."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from image_tool.testing import FakeRelay, Reply, png_size

PNG_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/images/(\d+)x(\d+)/[0-9a-f]{16}\.png$")
DTO_KEYS = [
    "id",
    "action",
    "customId",
    "botType",
    "prompt",
    "promptEn",
    "description",
    "state",
    "submitTime",
    "startTime",
    "finishTime",
    "imageUrl",
    "videoUrl",
    "videoUrls",
    "status",
    "progress",
    "failReason",
    "buttons",
    "maskBase64",
    "properties",
]
BANNED = (
    "[Banned prompt detected] Sorry! Our AI moderator thinks this prompt is probably against our "
    "community standards."
)
SAMPLE_IMAGE = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay() as relay:
        yield relay


@pytest.fixture
def http(relay: FakeRelay) -> Iterator[httpx2.Client]:
    headers = {"Authorization": f"Bearer {relay.api_key}"}
    with httpx2.Client(base_url=relay.origin, headers=headers, timeout=10) as client:
        yield client


def imagine(
    http: httpx2.Client, prompt: str = "a lighthouse at dusk", prefix: str = "", **fields: Any
) -> str:
    answer = http.post(f"{prefix}/mj/submit/imagine", json={"prompt": prompt, **fields})
    assert answer.status_code == 200, answer.text
    ticket = answer.json()
    assert ticket["code"] == 1 and ticket["description"] == "提交成功" and ticket["properties"] == {}
    assert re.fullmatch(r"\d{16}", ticket["result"])
    return str(ticket["result"])


def fetch(http: httpx2.Client, task_id: str, prefix: str = "") -> dict[str, Any]:
    answer = http.get(f"{prefix}/mj/task/{task_id}/fetch")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    task: dict[str, Any] = answer.json()
    assert list(task) == DTO_KEYS
    return task


def until_done(http: httpx2.Client, task_id: str, limit: int = 60) -> list[dict[str, Any]]:
    seen = [fetch(http, task_id)]
    while seen[-1]["status"] not in ("SUCCESS", "FAILURE"):
        assert len(seen) < limit
        seen.append(fetch(http, task_id))
    return seen


def relay_error(answer: httpx2.Response, description: str) -> None:
    """new-api's own refusal: 400, gin's JSON, the keys sorted, a trailing space."""
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert (
        answer.content
        == json.dumps(
            {"code": 4, "description": f"{description} ", "type": "upstream_error"},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )


def test_imagine_then_fetch_until_success(relay: FakeRelay, http: httpx2.Client) -> None:
    task_id = imagine(http, base64Array=[SAMPLE_IMAGE], botType="MID_JOURNEY")
    seen = until_done(http, task_id)
    assert [(task["status"], task["progress"]) for task in seen] == [
        ("", "0%"),
        ("SUBMITTED", "0%"),
        ("IN_PROGRESS", "50%"),
        ("SUCCESS", "100%"),
    ]
    first, _, drawing, done = seen
    assert first["buttons"] is None and first["properties"] is None and first["imageUrl"] == ""
    assert first["submitTime"] > 0 and first["startTime"] == first["finishTime"] == 0
    preview = PNG_LINK.match(drawing["imageUrl"])
    assert preview and drawing["buttons"] == [] and drawing["startTime"] >= first["submitTime"]
    assert done["id"] == task_id and done["action"] == "IMAGINE" and done["failReason"] == ""
    assert done["prompt"] == done["promptEn"] == "a lighthouse at dusk"
    assert done["customId"] == done["botType"] == done["maskBase64"] == ""
    assert done["finishTime"] >= done["startTime"] > 0
    assert done["properties"] == {"finalPrompt": "a lighthouse at dusk", "finalZhPrompt": ""}
    link = PNG_LINK.match(done["imageUrl"])
    assert link and link.groups() == ("1024", "1024")
    image = httpx2.get(done["imageUrl"])
    assert image.headers["content-type"] == "image/png" and png_size(image.content) == (1024, 1024)
    assert fetch(http, task_id)["status"] == "SUCCESS"  # it stays done


def test_a_grid_has_upscale_reroll_and_variation_buttons(http: httpx2.Client) -> None:
    done = until_done(http, imagine(http))[-1]
    buttons = done["buttons"]
    job = buttons[0]["customId"].rsplit("::", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", job)
    assert [(button["customId"], button["label"], button["emoji"]) for button in buttons] == [
        *((f"MJ::JOB::upsample::{n}::{job}", f"U{n}", "") for n in range(1, 5)),
        (f"MJ::JOB::reroll::0::{job}::SOLO", "", "🔄"),
        *((f"MJ::JOB::variation::{n}::{job}", f"V{n}", "") for n in range(1, 5)),
    ]
    assert {(button["type"], button["style"]) for button in buttons} == {(2, 2)}


def test_upscale_of_a_grid_image_is_a_new_task_with_one_image(relay: FakeRelay, http: httpx2.Client) -> None:
    grid_id = imagine(http, "a red fox")
    grid = until_done(http, grid_id)[-1]
    u2 = next(button["customId"] for button in grid["buttons"] if button["label"] == "U2")
    answer = http.post("/mj/submit/action", json={"customId": u2, "taskId": grid_id})
    assert answer.status_code == 200 and answer.json()["code"] == 1
    upscale_id = answer.json()["result"]
    assert upscale_id != grid_id
    done = until_done(http, upscale_id)[-1]
    assert done["action"] == "UPSCALE" and done["prompt"] == "a red fox" and done["status"] == "SUCCESS"
    assert png_size(httpx2.get(done["imageUrl"]).content) == (512, 512)
    assert done["imageUrl"] != grid["imageUrl"]
    assert [button["label"] for button in done["buttons"]] == ["Vary (Subtle)", "Vary (Strong)"]
    assert relay.generated == 2 and relay.generated_prompts == ["a red fox", "a red fox"]


@pytest.mark.parametrize(
    ("custom_id", "action"),
    [
        ("MJ::JOB::variation::3::{job}", "VARIATION"),
        ("MJ::JOB::reroll::0::{job}::SOLO", "REROLL"),
        ("MJ::JOB::pan_left::1::{job}::SOLO", "PAN"),
        ("MJ::Outpaint::50::1::{job}::SOLO", "ZOOM"),
    ],
)
def test_other_actions_make_a_grid(http: httpx2.Client, custom_id: str, action: str) -> None:
    grid_id = imagine(http)
    job = until_done(http, grid_id)[-1]["buttons"][0]["customId"].rsplit("::", 1)[1]
    answer = http.post("/mj/submit/action", json={"customId": custom_id.format(job=job), "taskId": grid_id})
    done = until_done(http, answer.json()["result"])[-1]
    assert done["action"] == action and len(done["buttons"]) == 9
    assert png_size(httpx2.get(done["imageUrl"]).content) == (1024, 1024)


def test_action_refusals(http: httpx2.Client) -> None:
    grid_id = imagine(http)
    upscale = "MJ::JOB::upsample::1::3785da15-4f70-4034-9128-f3ff1ac634fa"
    relay_error(
        http.post("/mj/submit/action", json={"customId": upscale, "taskId": grid_id}),
        "task_status_not_success",
    )
    relay_error(http.post("/mj/submit/action", json={"customId": upscale, "taskId": "1"}), "task_not_found")
    relay_error(http.post("/mj/submit/action", json={"customId": upscale}), "task_id_is_required")
    relay_error(http.post("/mj/submit/action", json={"taskId": grid_id}), "custom_id_is_required")
    for custom_id in ("MJ::JOB::animate_high::1::x::SOLO", "nonsense", "MJ::Inpaint::1::x::SOLO"):
        answer = http.post("/mj/submit/action", json={"customId": custom_id, "taskId": grid_id})
        relay_error(answer, f"unknown_action:{custom_id}")
    relay_error(
        http.post("/mj/submit/action", json={"customId": "MJ::JOB::upsample::x::y", "taskId": grid_id}),
        "index_parse_failed",
    )


def test_imagine_refusals(http: httpx2.Client) -> None:
    relay_error(http.post("/mj/submit/imagine", json={"prompt": " "}), "prompt_is_required")
    relay_error(http.post("/mj/submit/imagine", content=b"{not json"), "bind_request_body_failed")
    bad_image = http.post("/mj/submit/imagine", json={"prompt": "a cat", "base64Array": ["abc"]})
    assert bad_image.status_code == 200
    assert bad_image.json() == {"code": 4, "description": "base64格式错误", "result": None, "properties": {}}


@pytest.mark.parametrize("prefix", ["/mj-fast", "/mj-turbo", "/mj-relax"])
def test_mode_prefixes_are_ignored(http: httpx2.Client, prefix: str) -> None:
    task_id = imagine(http, prefix=prefix)
    assert fetch(http, task_id, prefix)["status"] == ""
    assert fetch(http, task_id)["status"] == "SUBMITTED"  # the same task, with or without the mode


def test_key_in_mj_api_secret_or_bearer(relay: FakeRelay) -> None:
    url = f"{relay.origin}/mj/submit/imagine"
    body = {"prompt": "a cat"}
    for headers in (
        {"mj-api-secret": relay.api_key},
        {"Authorization": "midjourney-proxy", "mj-api-secret": relay.api_key},
    ):
        assert httpx2.post(url, json=body, headers=headers).json()["code"] == 1
    for headers in (
        {},
        {"mj-api-secret": "wrong"},
        {"Authorization": "Bearer wrong", "mj-api-secret": relay.api_key},  # Authorization wins
    ):
        answer = httpx2.post(url, json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_api_key"
    assert httpx2.get(f"{relay.origin}/mj/task/1/fetch").status_code == 401


def test_new_api_profile_sends_submits_on_as_sniffed_text() -> None:
    with FakeRelay(profile="new-api") as relay:
        headers = {"Authorization": f"Bearer {relay.api_key}"}
        with httpx2.Client(base_url=relay.origin, headers=headers) as http:
            relay.queue(Reply.mj_task(), Reply.mj_queue_full())
            submitted = http.post("/mj/submit/imagine", json={"prompt": "a cat"})
            refused = http.post("/mj/submit/imagine", json={"prompt": "a cat"})
            for answer in (submitted, refused):
                assert answer.headers["content-type"] == "text/plain; charset=utf-8"
            assert submitted.json()["code"] == 1 and refused.json()["code"] == 23
            assert (
                http.get(f"/mj/task/{submitted.json()['result']}/fetch").headers["content-type"]
                == "application/json"
            )
            bad_key = http.post(
                "/mj/submit/imagine", json={"prompt": "a cat"}, headers={"Authorization": "Bearer x"}
            )
            assert bad_key.status_code == 401 and "无效的令牌" in bad_key.json()["error"]["message"]


def test_other_profiles_send_submits_as_json(http: httpx2.Client) -> None:
    assert (
        http.post("/mj/submit/imagine", json={"prompt": "a cat"}).headers["content-type"]
        == "application/json"
    )


def test_failure_after_progress(relay: FakeRelay, http: httpx2.Client) -> None:
    relay.queue(Reply.mj_failed(BANNED))
    seen = until_done(http, imagine(http, "a forbidden thing"))
    assert [(task["status"], task["progress"]) for task in seen] == [
        ("IN_PROGRESS", "33%"),
        ("IN_PROGRESS", "66%"),
        ("FAILURE", "100%"),
    ]
    assert [task["failReason"] for task in seen] == ["", "", BANNED]
    assert seen[-1]["imageUrl"] == "" and seen[-1]["buttons"] == [] and seen[-1]["finishTime"] > 0
    assert relay.generated == 0 and relay.generated_prompts == []


def test_slow_task_and_polls(relay: FakeRelay, http: httpx2.Client) -> None:
    relay.queue(Reply.mj_task(polls=50), Reply.mj_task(polls=0))
    slow, quick = imagine(http), imagine(http)
    seen = until_done(http, slow)
    assert len(seen) == 51 and {task["status"] for task in seen[2:-1]} == {"IN_PROGRESS"}
    progress = [int(task["progress"].rstrip("%")) for task in seen[2:-1]]
    assert progress == sorted(progress) and progress[-1] < 100
    assert [task["status"] for task in until_done(http, quick)] == ["SUCCESS"]


@pytest.mark.parametrize(
    ("reply", "code", "description", "properties"),
    [
        (Reply.mj_queue_full(), 23, "队列已满，请稍后尝试", {}),
        (Reply.mj_banned("gore"), 24, "可能包含敏感词", {"promptEn": "a cat", "bannedWord": "gore"}),
        (Reply.mj_submit_refused(4, "prompt不能为空"), 4, "prompt不能为空", {}),
        (Reply.mj_submit_refused(3, "无可用的账号实例", {"x": 1}), 3, "无可用的账号实例", {"x": 1}),
    ],
)
def test_submit_refusals(
    relay: FakeRelay,
    http: httpx2.Client,
    reply: Reply,
    code: int,
    description: str,
    properties: dict[str, Any],
) -> None:
    relay.queue(reply)
    answer = http.post("/mj/submit/imagine", json={"prompt": "a cat"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "code": code,
        "description": description,
        "result": None,
        "properties": properties,
    }
    assert imagine(http)  # the next submit falls back to a task
    assert relay.generated == 0


def test_quota_not_enough_and_unknown_tasks(relay: FakeRelay, http: httpx2.Client) -> None:
    relay.queue(Reply.mj_quota_not_enough())
    relay_error(http.post("/mj/submit/imagine", json={"prompt": "a cat"}), "quota_not_enough")
    relay_error(http.get("/mj/task/1712000000000000/fetch"), "task_no_found")
    relay_error(http.get("/mj-relax/mj/task/nope/fetch"), "task_no_found")


def test_refusal_factories_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="code 1"):
        Reply.mj_submit_refused(1, "提交成功")
    with pytest.raises(ValueError, match="polls"):
        Reply.mj_task(-1)
    with pytest.raises(ValueError, match="after"):
        Reply.mj_failed("x", after=-1)


def test_a_task_counts_once_when_it_succeeds(relay: FakeRelay, http: httpx2.Client) -> None:
    first, second = imagine(http, "one"), imagine(http, "two")
    assert relay.generated == 0
    until_done(http, second)
    assert (relay.generated, relay.generated_prompts) == (1, ["two"])
    until_done(http, first)
    fetch(http, first)
    assert (relay.generated, relay.generated_prompts) == (2, ["two", "one"])


def test_records_the_requests(relay: FakeRelay, http: httpx2.Client) -> None:
    task_id = imagine(http, "a cat", prefix="/mj-fast", base64Array=[SAMPLE_IMAGE])
    fetch(http, task_id)
    submit, poll = relay.requests
    assert (submit.method, submit.path) == ("POST", "/mj-fast/mj/submit/imagine")
    assert submit.json == {"prompt": "a cat", "base64Array": [SAMPLE_IMAGE]}
    assert submit.headers["Authorization"] == f"Bearer {relay.api_key}"
    assert (poll.method, poll.path, poll.body) == ("GET", f"/mj/task/{task_id}/fetch", b"")


def test_raw_replies_faults_and_delays_play_on_submits(relay: FakeRelay, http: httpx2.Client) -> None:
    relay.queue(Reply.bad_gateway(), Reply.transport_fault("reset_mid_body"), Reply.slow(0.2))
    gateway = http.post("/mj/submit/imagine", json={"prompt": "a cat"})
    assert gateway.status_code == 502 and gateway.headers["content-type"] == "text/html"
    with pytest.raises(httpx2.TransportError):
        http.post("/mj/submit/imagine", json={"prompt": "a cat"})
    assert imagine(http)  # slow, then an ordinary task


def test_rate_limit_and_quota_apply_to_submits_not_fetches() -> None:
    now = [0.0]
    with (
        FakeRelay(rate_limit=1, quota_images=1, clock=lambda: now[0]) as relay,
        httpx2.Client(base_url=relay.origin, headers={"Authorization": f"Bearer {relay.api_key}"}) as http,
    ):
        task_id = imagine(http)
        limited = http.post("/mj/submit/imagine", json={"prompt": "a cat"})
        assert limited.status_code == 429 and limited.headers["retry-after"] == "1.00"
        now[0] += 1
        relay_error(http.post("/mj/submit/imagine", json={"prompt": "a cat"}), "quota_not_enough")
        until_done(http, task_id)  # fetches are free: no token, no quota
        assert relay.generated == 1
        now[0] += 1
        relay_error(http.post("/mj/submit/imagine", json={"prompt": "a cat"}), "quota_not_enough")


def test_a_failed_or_refused_task_gives_its_quota_back() -> None:
    with (
        FakeRelay(quota_images=1) as relay,
        httpx2.Client(base_url=relay.origin, headers={"Authorization": f"Bearer {relay.api_key}"}) as http,
    ):
        relay.queue(Reply.mj_failed("boom", after=0), Reply.mj_banned("x"))
        until_done(http, imagine(http))
        assert http.post("/mj/submit/imagine", json={"prompt": "a cat"}).json()["code"] == 24
        until_done(http, imagine(http))
        assert relay.generated == 1


def test_concurrent_submits_get_distinct_tasks(relay: FakeRelay) -> None:
    ids: list[str] = []

    def submit() -> None:
        headers = {"Authorization": f"Bearer {relay.api_key}"}
        with httpx2.Client(base_url=relay.origin, headers=headers) as http:
            ids.extend(imagine(http) for _ in range(5))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 20
    assert relay.max_in_flight >= 1
