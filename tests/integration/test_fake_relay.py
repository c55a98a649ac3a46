"""FakeRelay, the loopback emulator: what tests and users rely on it for."""

from __future__ import annotations

import base64
import json
import threading

import httpx2
import pytest

from image_tool.testing import FakeRelay, Reply, png_size


def post(relay: FakeRelay, body: object, key: str | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {key or relay.api_key}"}
    return httpx2.post(f"{relay.base_url}/chat/completions", json=body, headers=headers)


REQUEST = {"model": "gpt-4o-image", "messages": [{"role": "user", "content": "a cat in a tree"}]}


def test_answers_in_the_documented_shape_with_images_it_serves(fake_relay: FakeRelay) -> None:
    answer = post(fake_relay, {**REQUEST, "n": 2, "size": "1024x1792"}).json()
    assert isinstance(answer["created"], int)
    assert len(answer["data"]) == 2
    for item in answer["data"]:
        assert item["revised_prompt"].startswith("a cat in a tree")
        image = httpx2.get(item["url"])
        assert image.headers["content-type"] == "image/png"
        assert png_size(image.content) == (1024, 1792)


def test_b64_json_success_holds_the_png(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.success(image_format="b64_json"))
    item = post(fake_relay, {**REQUEST, "size": "1792x1024"}).json()["data"][0]
    assert png_size(base64.b64decode(item["b64_json"])) == (1792, 1024)


def test_checks_the_bearer_key(fake_relay: FakeRelay) -> None:
    response = post(fake_relay, REQUEST, key="wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_plays_queued_replies_in_order_then_succeeds(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.content_policy(), Reply.rate_limited(retry_after=3), Reply.server_error())
    first, second, third, fourth = (post(fake_relay, REQUEST) for _ in range(4))
    assert (first.status_code, first.json()["error"]["code"]) == (400, "content_policy_violation")
    assert (second.status_code, second.headers["retry-after"]) == (429, "3")
    assert third.status_code == 500
    assert fourth.status_code == 200


def test_records_the_requests_it_received(fake_relay: FakeRelay) -> None:
    post(fake_relay, {**REQUEST, "user": "end-user-42"})
    (recorded,) = fake_relay.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.json["user"] == "end-user-42"
    assert recorded.headers["Authorization"] == f"Bearer {fake_relay.api_key}"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", b"{not json", 400),
        ("/v1/chat/completions", b'{"model": "m", "messages": []}', 400),
        ("/v1/images/variations", b"{}", 404),
    ],
)
def test_rejects_bad_requests(fake_relay: FakeRelay, path: str, body: bytes, status: int) -> None:
    headers = {"Authorization": f"Bearer {fake_relay.api_key}"}
    assert httpx2.post(fake_relay.origin + path, content=body, headers=headers).status_code == status


def test_unknown_image_is_404(fake_relay: FakeRelay) -> None:
    assert httpx2.get(f"{fake_relay.origin}/images/1x1/nothing.png").status_code == 404


def test_delay_and_concurrency(fake_relay: FakeRelay) -> None:
    # Answers of 2 s: five requests sent together arrive well within that even on a loaded machine
    # (at 0.3 s, one was answered before the fifth arrived).
    fake_relay.queue(*[Reply.slow(2.0)] * 5)
    together = threading.Barrier(5)

    def post_together() -> None:
        together.wait()
        post(fake_relay, REQUEST)

    threads = [threading.Thread(target=post_together) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake_relay.max_in_flight == 5  # the five slow answers were served at once


def test_stop_interrupts_a_slow_answer() -> None:
    relay = FakeRelay().start()
    relay.queue(Reply.slow(30))
    failures: list[Exception] = []

    def call() -> None:
        try:
            post(relay, REQUEST)
        except httpx2.HTTPError as error:
            failures.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    while not relay.in_flight:
        threading.Event().wait(0.01)
    relay.stop()
    caller.join(timeout=10)  # generous, and still short of the answer's 30 s
    assert not caller.is_alive()
    assert len(failures) == 1  # the caller saw the connection close instead of waiting 30 s


def test_streams_server_sent_events_as_relays_do(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.success("markdown", locale="en"))
    with httpx2.stream(
        "POST",
        f"{fake_relay.base_url}/chat/completions",
        json={**REQUEST, "stream": True},
        headers={"Authorization": f"Bearer {fake_relay.api_key}"},
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        lines = list(response.iter_lines())
    assert ": PING" in lines
    assert any(line.startswith("data:{") for line in lines)  # "data:" without a space
    assert any(line.startswith("data: {") for line in lines)
    assert any('"choices": []' in line and '"usage"' in line for line in lines)  # a usage-only chunk
    assert lines[-2:] == ["data: [DONE]", ""]
    text = "".join(
        json.loads(line.split(":", 1)[1])["choices"][0]["delta"].get("content", "")
        for line in lines
        if line.startswith("data:") and "[DONE]" not in line and '"choices": []' not in line
    )
    assert ">🕐 Queuing." in text
    assert "Generation complete" in text
    assert "[Click to download](" in text


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply.success("inline_data"), "data:image/png;base64,iVBOR"),
        (Reply.success("json_block"), '"image": ["http'),
        (Reply.text_only(), "task_01hx9"),
    ],
)
def test_answers_chat_completions(fake_relay: FakeRelay, reply: Reply, words: str) -> None:
    fake_relay.queue(reply)
    answer = post(fake_relay, REQUEST).json()
    assert answer["object"] == "chat.completion"
    assert words in answer["choices"][0]["message"]["content"]


def test_content_parts(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.success("content_parts"))
    parts = post(fake_relay, {**REQUEST, "n": 2}).json()["choices"][0]["message"]["content"]
    assert [part["type"] for part in parts] == ["text", "image_url", "image_url"]
