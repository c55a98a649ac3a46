"""FakeRelay's relay profiles, on the wire: what new-api, one-api and the LiteLLM proxy send on."""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from image_tool.testing import FakeRelay, RelayProfile, Reply

from ..helpers import fake_relay_command

REQUEST = {"model": "gpt-4o-image", "messages": [{"role": "user", "content": "a cat in a tree"}]}
SATURATED = "当前分组上游负载已饱和，请稍后再试"
TLS = ssl.create_default_context()  # built once: each new client would load the CA bundle again
NO_FALLBACK = (
    "\n\nLiteLLM: model group 'gpt-4o-image' failed with the error above. No fallback was attempted."
)


@dataclass
class Wire:
    status: int
    headers: httpx2.Headers
    body: bytes

    @property
    def events(self) -> list[str]:
        """The server-sent events, as written (the body split on blank lines)."""
        return [event for event in self.body.decode().split("\n\n") if event]

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = json.loads(self.body)["error"]
        return error


def call(relay: FakeRelay, reply: Reply | None = None, *, stream: bool = False, **fields: Any) -> Wire:
    if reply is not None:
        relay.queue(reply)
    headers = {"Authorization": f"Bearer {relay.api_key}"}
    body = {**REQUEST, "stream": stream, **fields}
    with (
        httpx2.Client(verify=TLS) as client,
        client.stream("POST", f"{relay.base_url}/chat/completions", json=body, headers=headers) as response,
    ):
        return Wire(response.status_code, response.headers, response.read())


def chunks(wire: Wire) -> list[dict[str, Any]]:
    """The JSON of every ``data:`` event but ``[DONE]`` (comments skipped)."""
    data = [event.split(":", 1)[1] for event in wire.events if event.startswith("data:")]
    return [json.loads(payload) for payload in data if payload.strip() != "[DONE]"]


def text_of(wire: Wire) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in chunks(wire)
        for choice in chunk.get("choices", [])
        if isinstance(choice["delta"].get("content"), str)
    )


def vendor_pieces(reply: Reply, relay: FakeRelay) -> tuple[str, str]:
    """The whole text the vendor streams for this reply, and the part of it sent as ``data: ``
    (not ``data:``), with the links as ``relay`` would write them."""
    with FakeRelay() as vendor:
        wire = call(vendor, reply, stream=True)
        origin = vendor.origin
    events = [event for event in wire.events if event.startswith("data: {")]
    spaced = Wire(wire.status, wire.headers, "\n\n".join(events).encode())
    return text_of(wire).replace(origin, relay.origin), text_of(spaced).replace(origin, relay.origin)


@pytest.fixture
def new_api() -> Iterator[FakeRelay]:
    with FakeRelay(profile="new-api") as relay:
        yield relay


@pytest.fixture
def one_api() -> Iterator[FakeRelay]:
    with FakeRelay(profile="one-api") as relay:
        yield relay


@pytest.fixture
def litellm() -> Iterator[FakeRelay]:
    with FakeRelay(profile="litellm") as relay:
        yield relay


# vendor: today's behaviour


def test_vendor_is_the_default_and_writes_streams_as_before() -> None:
    with FakeRelay() as relay:
        assert relay.profile == "vendor"
        relay.queue(Reply.success("markdown"))
        data = json.dumps({**REQUEST, "stream": True}).encode()
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {relay.api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        port = int(relay.origin.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(head.encode() + data)
            answer = b"".join(iter(lambda: connection.recv(65536), b""))
    expected = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    assert answer.startswith(expected + b"Connection: close\r\n\r\n: PING\n\n")
    assert answer.endswith(b"data: [DONE]\n\n")


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown relay profile 'sub2api'"):
        FakeRelay(profile="sub2api")  # type: ignore[arg-type]


def test_token_spent_and_prompt_blocked_as_the_vendor_sends_them(fake_relay: FakeRelay) -> None:
    spent = call(fake_relay, Reply.token_spent())
    assert spent.status == 401
    assert spent.error == {"message": "该令牌额度已用尽 (request id: 20260311-fake)", "type": "new_api_error"}
    blocked = call(fake_relay, Reply.prompt_blocked())
    assert (blocked.status, blocked.error["code"], blocked.error["type"]) == (
        400,
        "prompt_blocked",
        "prompt_blocked",
    )


# new-api and one-api: Go relays


@pytest.mark.parametrize("profile", ["new-api", "one-api"])
def test_go_relays_stream_chunked_and_keep_the_connection(profile: RelayProfile) -> None:
    with FakeRelay(profile=profile) as relay, httpx2.Client(verify=TLS) as client:
        for _ in range(2):
            relay.queue(Reply.success("markdown", locale="en"))
            headers = {"Authorization": f"Bearer {relay.api_key}"}
            response = client.post(
                f"{relay.base_url}/chat/completions", json={**REQUEST, "stream": True}, headers=headers
            )
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.headers["connection"] == "keep-alive"
            assert response.headers["x-accel-buffering"] == "no"
            assert re.fullmatch(r"\d{15,}\w{8}", response.headers["x-oneapi-request-id"])
            assert response.text.endswith("data: [DONE]\n\n")
        first, second = relay.requests
        assert first.client_port == second.client_port  # the second request reused the connection


def test_new_api_frames_every_event_with_a_space_and_drops_pings_and_the_usage_chunk(
    new_api: FakeRelay,
) -> None:
    reply = Reply.success("markdown", locale="en")
    wire = call(new_api, reply, stream=True)
    assert all(event.startswith("data: ") for event in wire.events)
    assert not any(event.startswith((": PING", "data:{")) for event in wire.events)
    assert wire.events[-1] == "data: [DONE]"
    assert chunks(wire)[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in chunk for chunk in chunks(wire))
    assert text_of(wire) == vendor_pieces(reply, new_api)[0]  # nothing of the text is lost


def test_new_api_keeps_the_usage_chunk_when_the_client_asks_for_it(new_api: FakeRelay) -> None:
    wire = call(new_api, Reply.success("markdown"), stream=True, stream_options={"include_usage": True})
    assert chunks(wire)[-1]["choices"] == []
    assert chunks(wire)[-1]["usage"]["total_tokens"] == 92


@pytest.mark.parametrize("profile", ["new-api", "one-api"])
def test_go_relays_end_a_cut_stream_with_done(profile: RelayProfile) -> None:
    with FakeRelay(profile=profile) as relay:
        wire = call(relay, Reply.streamed_fault("cut_before_done", locale="en"), stream=True)
    assert wire.events[-1] == "data: [DONE]"  # the cut stream looks complete
    assert "Generation complete" not in text_of(wire)
    assert not any(choice.get("finish_reason") for chunk in chunks(wire) for choice in chunk["choices"])


def test_new_api_passes_an_error_chunk_on_then_done(new_api: FakeRelay) -> None:
    wire = call(new_api, Reply.streamed_fault("error_mid_stream"), stream=True)
    assert json.loads(wire.events[-2].removeprefix("data: "))["error"]["code"] == "do_request_failed"
    assert wire.events[-1] == "data: [DONE]"


def test_new_api_answers_json_to_a_stream_request_with_a_bare_done(new_api: FakeRelay) -> None:
    wire = call(new_api, Reply.success(), stream=True)  # the upstream answered the documented JSON
    assert wire.status == 200
    assert wire.headers["content-type"] == "text/event-stream"
    assert wire.body == b"data: [DONE]\n\n"


def test_one_api_drops_unspaced_data_lines_error_chunks_and_pings(one_api: FakeRelay) -> None:
    reply = Reply.success("markdown", locale="en")
    wire = call(one_api, reply, stream=True)
    whole, spaced = vendor_pieces(reply, one_api)
    assert text_of(wire) == spaced != whole  # the "data:{" half of the text is gone
    assert not any(event.startswith(":") for event in wire.events)
    assert chunks(wire)[-1]["usage"]["total_tokens"] == 92  # a usage-only chunk has usage: kept
    assert wire.events[-1] == "data: [DONE]"

    failed = call(one_api, Reply.streamed_fault("error_mid_stream"), stream=True)
    assert not any("error" in chunk for chunk in chunks(failed))
    assert failed.events[-1] == "data: [DONE]"


def test_one_api_stops_at_a_line_of_64_kib_then_sends_done(one_api: FakeRelay) -> None:
    def image(length: int) -> Reply:  # the link streams whole, in one "data: " event
        return Reply.completion(f"Look.\nHere: ![cat](https://cdn.example/{'a' * length}.png)")

    short = call(one_api, image(60_000), stream=True)
    assert "cdn.example" in text_of(short)
    assert text_of(short) == vendor_pieces(image(60_000), one_api)[1]

    long = call(one_api, image(70_000), stream=True)  # that event is a line of about 70 KB
    assert text_of(long) == "Look.\n"  # what came before it, and no more
    assert long.events[-1] == "data: [DONE]"


def test_one_api_answers_json_to_a_stream_request_with_an_error(one_api: FakeRelay) -> None:
    wire = call(one_api, Reply.success(), stream=True)
    assert wire.status == 200
    assert wire.headers["content-type"] == "application/json; charset=utf-8"
    request_id = wire.headers["x-oneapi-request-id"]
    message = f"bad response status code 200 (request id: {request_id})"
    assert wire.body.decode() == (
        f'{{"error":{{"message":"{message}","type":"upstream_error","param":"200","code":"bad_response_status_code"}}}}'
    )


@pytest.mark.parametrize("profile", ["new-api", "one-api"])
def test_go_relays_append_the_request_id_and_drop_retry_after(profile: RelayProfile) -> None:
    with FakeRelay(profile=profile) as relay:
        wire = call(relay, Reply.content_policy())
        assert wire.status == 400
        request_id = wire.headers["x-oneapi-request-id"]
        assert wire.error["message"].endswith(f"our safety system. (request id: {request_id})")
        assert (wire.error["type"], wire.error["code"]) == (
            "image_generation_user_error",
            "content_policy_violation",
        )

        limited = call(relay, Reply.rate_limited(retry_after=30))
        assert limited.status == 429
        assert "retry-after" not in limited.headers
        assert (
            limited.error["message"] == f"{SATURATED} (request id: {limited.headers['x-oneapi-request-id']})"
        )
        assert limited.error["code"] == "rate_limit_exceeded"

        bare = call(relay, Reply.bare_rate_limit())  # any 429's message is replaced
        assert bare.error["message"].startswith(f"{SATURATED} (request id: ")
        assert (bare.error["code"], bare.error["param"]) == ("bad_response_status_code", "429")

        gateway = call(relay, Reply.bad_gateway())  # a body Go cannot read: no message at all
        assert gateway.status == 502
        assert gateway.error["message"] == f" (request id: {gateway.headers['x-oneapi-request-id']})"
        assert gateway.error["type"] == "upstream_error"


@pytest.mark.parametrize(
    ("profile", "own_type"), [("new-api", "new_api_error"), ("one-api", "one_api_error")]
)
def test_go_relays_refuse_a_spent_token_and_a_wrong_key_in_their_own_words(
    profile: RelayProfile, own_type: str
) -> None:
    with FakeRelay(profile=profile) as relay:
        spent = call(relay, Reply.token_spent())
        request_id = spent.headers["x-oneapi-request-id"]
        assert spent.status == 401
        assert spent.error == {"message": f"该令牌额度已用尽 (request id: {request_id})", "type": own_type}

        response = httpx2.post(
            f"{relay.base_url}/chat/completions",
            json=REQUEST,
            headers={"Authorization": "Bearer x"},
            verify=TLS,
        )
        assert response.status_code == 401
        assert response.json()["error"]["message"].startswith("无效的令牌 (request id: ")


def test_new_api_blocks_a_prompt_with_its_own_code(new_api: FakeRelay) -> None:
    wire = call(new_api, Reply.prompt_blocked())
    request_id = wire.headers["x-oneapi-request-id"]
    assert wire.status == 400
    assert wire.error == {
        "message": f"request blocked by Gemini API: PROHIBITED_CONTENT (request id: {request_id})",
        "type": "prompt_blocked",
        "param": "",
        "code": "prompt_blocked",
    }


@pytest.mark.parametrize("profile", ["new-api", "one-api"])
def test_go_relays_turn_a_200_carrying_an_error_into_an_error_and_pass_successes(
    profile: RelayProfile,
) -> None:
    with FakeRelay(profile=profile) as relay:
        wire = call(relay, Reply.error_with_200())
        assert wire.status == 200
        assert wire.error["message"] == f"用户额度不足 (request id: {wire.headers['x-oneapi-request-id']})"

        truncated = call(relay, Reply.truncated_json())
        assert truncated.status == 500
        assert truncated.error["message"].startswith("unexpected end of JSON input (request id: ")

        documented = call(relay, Reply.success())
        assert documented.status == 200
        assert documented.headers["content-type"] == "application/json"
        assert "x-oneapi-request-id" in documented.headers
        assert json.loads(documented.body)["data"][0]["url"].startswith(relay.origin)


# LiteLLM


def test_litellm_rebuilds_every_chunk_as_compact_json(litellm: FakeRelay) -> None:
    reply = Reply.success("markdown", locale="en")
    wire = call(litellm, reply, stream=True)
    assert wire.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert wire.headers["llm_provider-content-type"] == "text/event-stream"
    for event in wire.events[:-1]:
        payload = event.removeprefix("data: ")
        assert payload == json.dumps(json.loads(payload), ensure_ascii=False, separators=(",", ":"))
    assert wire.events[-1] == "data: [DONE]"
    assert not any("usage" in chunk for chunk in chunks(wire))  # the usage-only chunk is gone
    middle = chunks(wire)[1]["choices"][0]
    assert "finish_reason" not in middle  # no "finish_reason": null
    assert chunks(wire)[-1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert text_of(wire) == vendor_pieces(reply, litellm)[0]


def test_litellm_adds_a_stop_chunk_to_a_cut_stream(litellm: FakeRelay) -> None:
    wire = call(litellm, Reply.streamed_fault("cut_before_done", locale="en"), stream=True)
    assert chunks(wire)[-1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert chunks(wire)[-1]["id"] == "chatcmpl-fakerelay"
    assert wire.events[-1] == "data: [DONE]"
    assert "Generation complete" not in text_of(wire)


def test_litellm_ends_a_stream_at_an_upstream_error_without_done(litellm: FakeRelay) -> None:
    wire = call(litellm, Reply.streamed_fault("error_mid_stream"), stream=True)
    assert wire.events[-1] == (
        'data: {"error": {"message": "litellm.APIConnectionError: APIConnectionError: OpenAIException - '
        'upstream timeout (request id: 20260311-fake)", "type": null, "param": null, "code": "500"}}'
    )


def test_litellm_answers_json_or_content_parts_to_a_stream_request_with_a_stop_chunk(
    litellm: FakeRelay,
) -> None:
    documented = call(litellm, Reply.success(), stream=True)
    (stop,) = chunks(documented)
    assert stop["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert documented.events[-1] == "data: [DONE]"

    parts = call(litellm, Reply.success("content_parts"), stream=True)
    role, stop = chunks(parts)  # the delta holding the parts is gone
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert stop["choices"][0]["finish_reason"] == "stop"


def test_litellm_loses_the_documented_shape_and_content_parts(litellm: FakeRelay) -> None:
    documented = call(litellm, Reply.success())
    assert documented.status == 500
    assert documented.error["message"] == (
        "litellm.InternalServerError: InternalServerError: OpenAIException - litellm.APIError: LiteLLM: "
        "provider returned a response with no 'choices'. Raw keys: ['created', 'data']" + NO_FALLBACK
    )
    parts = call(litellm, Reply.success("content_parts"))
    assert (parts.status, parts.error["code"]) == (500, "500")
    assert parts.error["message"].endswith("OpenAIException - Invalid response object")

    markdown = call(litellm, Reply.success("markdown", locale="en"))
    assert markdown.status == 200
    assert markdown.body.decode() == json.dumps(
        json.loads(markdown.body), ensure_ascii=False, separators=(",", ":")
    )
    assert "![gen_00" in json.loads(markdown.body)["choices"][0]["message"]["content"]


def test_litellm_reshapes_errors(litellm: FakeRelay) -> None:
    limited = call(litellm, Reply.rate_limited(retry_after=7))
    assert limited.status == 429
    assert "retry-after" not in limited.headers
    assert limited.headers["llm_provider-retry-after"] == "7"
    assert limited.error == {
        "message": "litellm.RateLimitError: RateLimitError: OpenAIException - "
        "您已达到请求数限制：1分钟内最多请求10次" + NO_FALLBACK,
        "type": "throttling_error",
        "param": None,
        "code": "429",
    }
    refused = call(litellm, Reply.content_policy())
    assert (refused.status, refused.error["code"], refused.error["type"]) == (
        400,
        "400",
        "image_generation_user_error",
    )
    assert refused.error["message"].startswith(
        "litellm.BadRequestError: OpenAIException - Your request was rejected"
    )

    gateway = call(litellm, Reply.bad_gateway())  # the HTML page is lost
    assert gateway.error[
        "message"
    ] == "litellm.BadGatewayError: BadGatewayError: OpenAIException - Error code: 502" + (NO_FALLBACK)


def test_litellm_turns_a_200_carrying_an_error_into_a_500_with_a_meaningless_message(
    litellm: FakeRelay,
) -> None:
    wire = call(litellm, Reply.error_with_200())
    assert wire.status == 500
    assert wire.error == {
        "message": "'>=' not supported between instances of 'str' and 'int'",
        "type": "internal_server_error",
        "param": None,
        "code": "500",
    }


def test_litellm_refuses_a_spent_key_and_a_wrong_key_in_its_own_words(litellm: FakeRelay) -> None:
    spent = call(litellm, Reply.token_spent())
    assert (spent.status, spent.error["type"], spent.error["code"]) == (422, "budget_exceeded", "422")
    assert spent.error["message"].startswith("Budget has been exceeded!")

    response = httpx2.post(
        f"{litellm.base_url}/chat/completions",
        json=REQUEST,
        headers={"Authorization": "Bearer x"},
        verify=TLS,
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "no_db_connection"


# the command line


def test_fake_relay_command_takes_a_profile() -> None:
    with fake_relay_command("--pace", "0", "--profile", "one-api") as (_, base_url, first_line):
        assert "(answers: markdown, as one-api)" in first_line
        response = httpx2.post(
            f"{base_url}/chat/completions",
            json={**REQUEST, "stream": True},
            headers={"Authorization": "Bearer fake-relay-key"},
            timeout=30,
            verify=TLS,
        )
        assert response.headers["x-oneapi-request-id"]
        assert response.text.endswith("data: [DONE]\n\n")


def test_fake_relay_command_refuses_an_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    from image_tool.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["fake-relay", "--profile", "sub2api"])
    assert exited.value.code == 2
    assert "argument --profile: invalid choice: 'sub2api'" in capsys.readouterr().err
