"""FakeRelay, the loopback emulator: what tests and users rely on it for."""

from __future__ import annotations

import base64
import threading

import httpx
import pytest

from image_tool.testing import FakeRelay, Reply, png_size


def post(relay: FakeRelay, body: object, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or relay.api_key}"}
    return httpx.post(f"{relay.base_url}/chat/completions", json=body, headers=headers)


REQUEST = {"model": "gpt-4o-image", "messages": [{"role": "user", "content": "a cat in a tree"}]}


def test_answers_in_the_documented_shape_with_images_it_serves(fake_relay: FakeRelay) -> None:
    answer = post(fake_relay, {**REQUEST, "n": 2, "size": "1024x1792"}).json()
    assert isinstance(answer["created"], int)
    assert len(answer["data"]) == 2
    for item in answer["data"]:
        assert item["revised_prompt"].startswith("a cat in a tree")
        image = httpx.get(item["url"])
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
        ("/v1/images/generations", b"{}", 404),
    ],
)
def test_rejects_bad_requests(fake_relay: FakeRelay, path: str, body: bytes, status: int) -> None:
    headers = {"Authorization": f"Bearer {fake_relay.api_key}"}
    assert httpx.post(fake_relay.origin + path, content=body, headers=headers).status_code == status


def test_unknown_image_is_404(fake_relay: FakeRelay) -> None:
    assert httpx.get(f"{fake_relay.origin}/images/1x1/nothing.png").status_code == 404


def test_delay_and_concurrency(fake_relay: FakeRelay) -> None:
    fake_relay.queue(*[Reply.slow(0.3)] * 5)
    threads = [threading.Thread(target=post, args=(fake_relay, REQUEST)) for _ in range(5)]
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
        except httpx.HTTPError as error:
            failures.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    while not relay.in_flight:
        threading.Event().wait(0.01)
    relay.stop()
    caller.join(timeout=5)
    assert not caller.is_alive()
    assert len(failures) == 1  # the caller saw the connection close instead of waiting 30 s
