"""FakeRelay's OpenAI Images API (generations, edits, their streams) and its ``gateway`` profile,
checked on the wire with raw httpx2."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from image_tool.testing import (
    ASPECT_RATIOS,
    JPEG_IMAGE,
    WEBP_IMAGE,
    FakeRelay,
    Reply,
    image_format,
    png_image,
    png_size,
)

from ..helpers import wait_until

FilesArg = list[tuple[str, tuple[str, bytes, str]]]


def headers(relay: FakeRelay) -> dict[str, str]:
    return {"Authorization": f"Bearer {relay.api_key}"}


def generate(relay: FakeRelay, **body: Any) -> httpx2.Response:
    body.setdefault("prompt", "a red fox in fresh snow")
    return httpx2.post(f"{relay.base_url}/images/generations", json=body, headers=headers(relay))


def edit(relay: FakeRelay, files: FilesArg, **fields: str) -> httpx2.Response:
    fields.setdefault("prompt", "make the sky purple")
    fields.setdefault("model", "gpt-image-1")
    return httpx2.post(f"{relay.base_url}/images/edits", data=fields, files=files, headers=headers(relay))


def decoded(b64: str) -> bytes:
    return base64.b64decode(b64, validate=True)


def sse_events(response: httpx2.Response) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` of each server-sent event of a streamed images answer."""
    events = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def chat_chunks(lines: Iterator[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON chunks of a streamed chat answer, and every ``data:`` line as it came."""
    data = [line for line in lines if line.startswith("data:")]
    chunks = [json.loads(line.removeprefix("data: ")) for line in data if line != "data: [DONE]"]
    return chunks, data


def image_pair() -> FilesArg:
    return [
        ("image[]", ("room.png", png_image(48, 32, "room"), "image/png")),
        ("image[]", ("lamp.jpg", JPEG_IMAGE, "image/jpeg")),
    ]


# Images API: generations


def test_gpt_image_answers_base64_pngs_of_the_asked_size_with_its_settings(fake_relay: FakeRelay) -> None:
    response = generate(fake_relay, model="gpt-image-1", n=2, size="1536x1024", quality="high")
    assert response.status_code == 200
    answer = response.json()
    assert isinstance(answer["created"], int)
    assert (answer["background"], answer["output_format"]) == ("opaque", "png")
    assert (answer["quality"], answer["size"]) == ("high", "1536x1024")
    images = [decoded(item["b64_json"]) for item in answer["data"]]
    assert [png_size(image) for image in images] == [(1536, 1024)] * 2
    assert images[0] != images[1]
    assert all(set(item) == {"b64_json"} for item in answer["data"])  # no url, no revised_prompt


def test_gpt_image_resolves_auto_and_defaults(fake_relay: FakeRelay) -> None:
    answer = generate(fake_relay, model="gpt-image-1", size="auto", background="auto").json()
    assert (answer["size"], answer["quality"], answer["background"]) == ("1024x1024", "medium", "opaque")
    assert png_size(decoded(answer["data"][0]["b64_json"])) == (1024, 1024)


@pytest.mark.parametrize(
    ("quality", "n", "size", "output_tokens"),
    [
        ("low", 1, "1024x1024", 272),
        ("medium", 1, "1024x1024", 1056),
        ("high", 3, "1024x1024", 3 * 4160),
        ("low", 2, "1024x1536", 2 * 408),
    ],
)
def test_gpt_image_usage_counts_output_tokens_by_quality_times_n(
    fake_relay: FakeRelay, quality: str, n: int, size: str, output_tokens: int
) -> None:
    usage = generate(
        fake_relay, model="gpt-image-1", prompt="one two three four", quality=quality, n=n, size=size
    ).json()["usage"]
    assert usage == {
        "input_tokens": 4,
        "input_tokens_details": {"text_tokens": 4, "image_tokens": 0},
        "output_tokens": output_tokens,
        "total_tokens": 4 + output_tokens,
    }


@pytest.mark.parametrize(("output_format", "image"), [("jpeg", JPEG_IMAGE), ("webp", WEBP_IMAGE)])
def test_gpt_image_encodes_in_the_asked_output_format(
    fake_relay: FakeRelay, output_format: str, image: bytes
) -> None:
    answer = generate(
        fake_relay, model="gpt-image-1", output_format=output_format, output_compression=50
    ).json()
    data = decoded(answer["data"][0]["b64_json"])
    assert answer["output_format"] == output_format
    assert image_format(data) == output_format
    assert data == image
    if output_format == "jpeg":
        assert data.startswith(b"\xff\xd8\xff")
    else:
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def test_dall_e_3_answers_links_it_serves_with_a_revised_prompt(fake_relay: FakeRelay) -> None:
    answer = generate(fake_relay, model="dall-e-3", size="1024x1792", style="natural", quality="hd").json()
    assert "usage" not in answer
    (item,) = answer["data"]
    assert item["revised_prompt"].startswith("a red fox in fresh snow")
    assert "natural" in item["revised_prompt"]
    image = httpx2.get(item["url"])
    assert image.headers["content-type"] == "image/png"
    assert png_size(image.content) == (1024, 1792)


def test_dall_e_3_answers_base64_when_asked(fake_relay: FakeRelay) -> None:
    (item,) = generate(fake_relay, model="dall-e-3", size="1792x1024", response_format="b64_json").json()[
        "data"
    ]
    assert "url" not in item
    assert png_size(decoded(item["b64_json"])) == (1792, 1024)
    assert item["revised_prompt"]


def test_dall_e_3_refuses_more_than_one_image_in_openai_words(fake_relay: FakeRelay) -> None:
    response = generate(fake_relay, model="dall-e-3", n=2)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "You must provide n=1 for this model.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_dall_e_3_does_not_stream(fake_relay: FakeRelay) -> None:
    response = generate(fake_relay, model="dall-e-3", stream=True)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"


def test_other_models_take_many_images_in_either_familys_sizes(fake_relay: FakeRelay) -> None:
    answer = generate(fake_relay, model="flux-kontext-pro", n=3, size="1536x1024").json()
    assert len(answer["data"]) == 3
    assert all(item["revised_prompt"] for item in answer["data"])
    assert png_size(httpx2.get(answer["data"][2]["url"]).content) == (1536, 1024)


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (
            {"model": "gpt-image-1", "size": "1792x1024"},
            "size",
            "Invalid value: '1792x1024'. Supported values are: "
            "'1024x1024', '1536x1024', '1024x1536', and 'auto'.",
        ),
        ({"model": "dall-e-3", "size": "1536x1024"}, "size", "'1024x1024', '1792x1024', and '1024x1792'"),
        ({"model": "gpt-image-1", "quality": "hd"}, "quality", "'low', 'medium', 'high', and 'auto'"),
        ({"model": "dall-e-3", "quality": "high"}, "quality", "'standard' and 'hd'"),
        ({"model": "dall-e-3", "style": "noir"}, "style", "'vivid' and 'natural'"),
        (
            {"model": "gpt-image-1", "background": "white"},
            "background",
            "'transparent', 'opaque', and 'auto'",
        ),
        ({"model": "gpt-image-1", "output_format": "gif"}, "output_format", "'png', 'jpeg', and 'webp'"),
        ({"model": "gpt-image-1", "moderation": "none"}, "moderation", "'low' and 'auto'"),
        ({"model": "dall-e-3", "response_format": "png"}, "response_format", "'url' and 'b64_json'"),
    ],
)
def test_refuses_invalid_values_naming_the_field_and_the_allowed_ones(
    fake_relay: FakeRelay, body: dict[str, Any], param: str, words: str
) -> None:
    response = generate(fake_relay, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, "invalid_value")
    assert words in error["message"]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "gpt-image-1", "prompt": None}, "prompt", "missing_required_parameter"),
        ({"model": "gpt-image-1", "n": 11}, "n", "integer_above_max_value"),
        ({"model": "gpt-image-1", "n": 0}, "n", "integer_below_min_value"),
        ({"model": "gpt-image-1", "n": "2"}, "n", "invalid_type"),
        (
            {"model": "gpt-image-1", "output_compression": 101},
            "output_compression",
            "integer_above_max_value",
        ),
        ({"model": "gpt-image-1", "partial_images": 4}, "partial_images", "integer_above_max_value"),
    ],
)
def test_refuses_missing_and_out_of_range_fields(
    fake_relay: FakeRelay, body: dict[str, Any], param: str, code: str
) -> None:
    response = generate(fake_relay, **body)
    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)


@pytest.mark.parametrize("size", ["1024x768", "2048x1152", "3840x2160", "688x1024", "3840x1280"])
def test_gpt_image_2_draws_its_named_sizes_and_sizes_that_keep_its_rule(
    fake_relay: FakeRelay, size: str
) -> None:
    answer = generate(fake_relay, model="gpt-image-2", size=size, quality="low").json()
    width, height = (int(side) for side in size.split("x"))
    assert answer["size"] == size
    assert png_size(decoded(answer["data"][0]["b64_json"])) == (width, height)


@pytest.mark.parametrize(
    "size",
    [
        "1000x1000",  # not multiples of 16
        "4096x2048",  # an edge over 3840
        "3840x1152",  # over 3:1
        "640x640",  # under 655,360 pixels
        "huge",
    ],
)
def test_gpt_image_2_refuses_a_size_that_breaks_its_rule(fake_relay: FakeRelay, size: str) -> None:
    response = generate(fake_relay, model="gpt-image-2", size=size)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("size", "invalid_value")
    assert "divisible by 16" in error["message"]


def test_gpt_image_2_refuses_a_transparent_background(fake_relay: FakeRelay) -> None:
    response = generate(fake_relay, model="gpt-image-2", background="transparent")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "background"
    assert "'opaque' and 'auto'" in error["message"]
    answer = generate(fake_relay, model="gpt-image-2", background="opaque", quality="high").json()
    assert (answer["background"], answer["quality"]) == ("opaque", "high")


def test_gpt_image_2_edits_and_its_unknown_fields_reach_the_record(fake_relay: FakeRelay) -> None:
    response = edit(fake_relay, image_pair(), model="gpt-image-2", size="1024x768", seed="7")
    assert response.status_code == 200
    assert png_size(decoded(response.json()["data"][0]["b64_json"])) == (1024, 768)
    form = fake_relay.requests[-1].form
    assert form is not None and form.fields["seed"] == "7"
    generate(fake_relay, model="gpt-image-2", provider={"order": ["openai"]})
    assert fake_relay.requests[-1].json["provider"] == {"order": ["openai"]}


def test_a_refused_request_does_not_take_a_queued_reply(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.server_error())
    assert generate(fake_relay, model="gpt-image-1", size="1x1").status_code == 400
    assert generate(fake_relay, model="gpt-image-1").status_code == 500


def test_images_endpoints_check_the_bearer_key(fake_relay: FakeRelay) -> None:
    wrong = {"Authorization": "Bearer wrong"}
    response = httpx2.post(f"{fake_relay.base_url}/images/generations", json={"prompt": "a"}, headers=wrong)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


# Images API: edits


def test_edit_takes_several_images_and_a_mask_and_records_the_form(fake_relay: FakeRelay) -> None:
    mask = png_image(48, 32, "mask")
    files = [*image_pair(), ("mask", ("mask.png", mask, "image/png"))]
    response = edit(fake_relay, files, n="2", quality="low", size="1024x1536")
    assert response.status_code == 200
    answer = response.json()
    assert [png_size(decoded(item["b64_json"])) for item in answer["data"]] == [(1024, 1536)] * 2
    assert answer["usage"]["input_tokens_details"] == {"text_tokens": 4, "image_tokens": 2 * 194}
    assert answer["usage"]["output_tokens"] == 2 * 408

    (recorded,) = fake_relay.requests
    assert recorded.path == "/v1/images/edits"
    form = recorded.form
    assert form is not None
    assert form.fields == {
        "prompt": "make the sky purple",
        "model": "gpt-image-1",
        "n": "2",
        "quality": "low",
        "size": "1024x1536",
    }
    described = [(file.name, file.filename, file.content_type) for file in form.files]
    assert described == [
        ("image[]", "room.png", "image/png"),
        ("image[]", "lamp.jpg", "image/jpeg"),
        ("mask", "mask.png", "image/png"),
    ]
    assert [file.data for file in form.files_named("image[]")] == [png_image(48, 32, "room"), JPEG_IMAGE]
    assert form.files_named("mask")[0].data == mask


def test_edit_accepts_a_single_image_field_and_a_webp(fake_relay: FakeRelay) -> None:
    response = edit(fake_relay, [("image", ("in.webp", WEBP_IMAGE, "image/webp"))])
    assert response.status_code == 200
    assert response.json()["usage"]["input_tokens_details"]["image_tokens"] == 194


def test_recorded_json_requests_have_no_form(fake_relay: FakeRelay) -> None:
    generate(fake_relay, model="gpt-image-1")
    assert fake_relay.requests[0].form is None


@pytest.mark.parametrize(
    ("files", "param", "words"),
    [
        ([*image_pair(), ("mask", ("mask.jpg", JPEG_IMAGE, "image/jpeg"))], "mask", "must be a PNG"),
        ([("image[]", ("notes.txt", b"just some text", "image/png"))], "image", "unsupported image"),
        ([("mask", ("mask.png", png_image(8, 8, "m"), "image/png"))], "image", "Missing required"),
        ([("image[]", (f"{i}.png", png_image(8, 8, str(i)), "image/png")) for i in range(17)], "image", "16"),
    ],
    ids=["jpeg-mask", "text-as-image", "no-image", "17-images"],
)
def test_edit_refuses_bad_files(fake_relay: FakeRelay, files: FilesArg, param: str, words: str) -> None:
    response = edit(fake_relay, files)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert words in error["message"]


def test_edit_refuses_dall_e_3_and_a_json_body(fake_relay: FakeRelay) -> None:
    response = edit(fake_relay, image_pair(), model="dall-e-3")
    assert (response.status_code, response.json()["error"]["param"]) == (400, "model")
    assert "'dall-e-2'" in response.json()["error"]["message"]
    as_json = httpx2.post(
        f"{fake_relay.base_url}/images/edits",
        json={"prompt": "a", "model": "gpt-image-1"},
        headers=headers(fake_relay),
    )
    assert as_json.status_code == 400
    assert "multipart/form-data" in as_json.json()["error"]["message"]


# Images API: streams


def test_streamed_generation_sends_previews_then_each_image(fake_relay: FakeRelay) -> None:
    response = generate(
        fake_relay,
        model="gpt-image-1",
        stream=True,
        partial_images=2,
        n=2,
        quality="low",
        output_format="png",
    )
    assert response.headers["content-type"] == "text/event-stream"
    assert "[DONE]" not in response.text
    events = sse_events(response)
    partial, completed = "image_generation.partial_image", "image_generation.completed"
    assert [name for name, _ in events] == [partial, partial, completed] * 2
    assert all(data["type"] == name for name, data in events)
    assert [data["partial_image_index"] for name, data in events if name == partial] == [0, 1, 0, 1]
    previews = [decoded(data["b64_json"]) for name, data in events if name == partial]
    finals = [decoded(data["b64_json"]) for name, data in events if name == completed]
    assert {png_size(preview) for preview in previews} == {(64, 64)}
    assert [png_size(final) for final in finals] == [(1024, 1024)] * 2
    assert not set(previews) & set(finals)
    for name, data in events:
        assert (data["size"], data["quality"], data["background"], data["output_format"]) == (
            "1024x1024",
            "low",
            "opaque",
            "png",
        )
        assert isinstance(data["created_at"], int)
        assert ("usage" in data) == (name == completed)
    assert events[-1][1]["usage"]["output_tokens"] == 272


def test_streamed_edit_uses_the_edit_event_names(fake_relay: FakeRelay) -> None:
    response = edit(fake_relay, image_pair(), stream="true", partial_images="1", output_format="jpeg")
    events = sse_events(response)
    assert [name for name, _ in events] == ["image_edit.partial_image", "image_edit.completed"]
    final = events[-1][1]
    assert decoded(final["b64_json"]).startswith(b"\xff\xd8\xff")
    assert final["usage"]["input_tokens_details"]["image_tokens"] == 2 * 194


def test_streamed_generation_without_previews_is_one_event(fake_relay: FakeRelay) -> None:
    events = sse_events(generate(fake_relay, model="gpt-image-1", stream=True))
    assert [name for name, _ in events] == ["image_generation.completed"]


def test_streamed_images_are_paced(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply(pace=0.1))
    started = time.perf_counter()
    events = sse_events(generate(fake_relay, model="gpt-image-1", stream=True, partial_images=3))
    assert len(events) == 4
    assert time.perf_counter() - started >= 0.35  # four waits of 0.1 s, one before each event


def test_a_cut_image_stream_ends_before_the_last_image(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.streamed_fault("cut_before_done"))
    events = sse_events(generate(fake_relay, model="gpt-image-1", stream=True, partial_images=2))
    assert [name for name, _ in events] == ["image_generation.partial_image"] * 2


# Images API: queued replies


@pytest.mark.parametrize("endpoint", ["generations", "edits"])
def test_queued_replies_play_on_the_images_endpoints(fake_relay: FakeRelay, endpoint: str) -> None:
    fake_relay.queue(
        Reply.rate_limited(2), Reply.error(400, "Your prompt was flagged.", code="moderation_blocked")
    )

    def call() -> httpx2.Response:
        if endpoint == "generations":
            return generate(fake_relay, model="gpt-image-1")
        return edit(fake_relay, image_pair())

    limited, refused, success = call(), call(), call()
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "moderation_blocked")
    assert success.status_code == 200
    assert [request.path for request in fake_relay.requests] == [f"/v1/images/{endpoint}"] * 3


def test_a_raw_body_and_a_transport_fault_on_the_images_endpoint(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.truncated_json(), Reply.transport_fault("reset_mid_body"))
    assert generate(fake_relay, model="gpt-image-1").content == Reply.truncated_json().body
    with pytest.raises(httpx2.HTTPError):
        generate(fake_relay, model="gpt-image-1")


def test_slow_image_requests_are_counted_in_flight(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.slow(1.0), Reply.slow(1.0))  # both arrive within that on a loaded machine
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(generate, fake_relay, model="gpt-image-1") for _ in range(2)]
        assert [call.result().status_code for call in calls] == [200, 200]
    assert fake_relay.max_in_flight == 2
    # Counted out just after the last write, which the caller may have read before that: waited for.
    wait_until(lambda: fake_relay.in_flight == 0, "the answered requests were never counted out")


def test_a_relay_profile_reshapes_images_errors() -> None:
    with FakeRelay(profile="new-api") as relay:
        relay.queue(Reply.rate_limited(2))
        response = generate(relay, model="gpt-image-1")
    assert response.status_code == 429
    assert "retry-after" not in response.headers  # new-api drops the upstream's headers
    assert response.json()["error"]["message"].startswith("当前分组上游负载已饱和")
    assert "request id: " in response.json()["error"]["message"]


# The gateway profile


@pytest.fixture
def gateway() -> Iterator[FakeRelay]:
    with FakeRelay(profile="gateway") as relay:
        yield relay


GATEWAY_REQUEST: dict[str, Any] = {
    "model": "google/gemini-2.5-flash-image",
    "messages": [{"role": "user", "content": "a lighthouse at dusk"}],
    "modalities": ["image", "text"],
}


def chat(relay: FakeRelay, **body: Any) -> httpx2.Response:
    return httpx2.post(
        f"{relay.base_url}/chat/completions", json={**GATEWAY_REQUEST, **body}, headers=headers(relay)
    )


def data_url_png(image: dict[str, Any]) -> bytes:
    assert image["type"] == "image_url"
    url: str = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    return decoded(url.split(",", 1)[1])


def test_gateway_answers_images_beside_the_text(gateway: FakeRelay) -> None:
    answer = chat(gateway, n=2).json()
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    assert message["role"] == "assistant"
    assert isinstance(message["content"], str) and message["content"]
    images = [data_url_png(image) for image in message["images"]]
    assert [png_size(image) for image in images] == [(1024, 1024)] * 2
    assert answer["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 2 * 1290,
        "total_tokens": 4 + 2 * 1290,
        "completion_tokens_details": {"image_tokens": 2 * 1290},
    }


@pytest.mark.parametrize(
    ("ratio", "size"), [("16:9", (1344, 768)), ("2:3", (832, 1248)), ("21:9", (1536, 672))]
)
def test_gateway_draws_at_the_asked_aspect_ratio(
    gateway: FakeRelay, ratio: str, size: tuple[int, int]
) -> None:
    assert ASPECT_RATIOS[ratio] == size
    (image,) = chat(gateway, image_config={"aspect_ratio": ratio}).json()["choices"][0]["message"]["images"]
    assert png_size(data_url_png(image)) == size


def test_gateway_refuses_an_unknown_aspect_ratio(gateway: FakeRelay) -> None:
    response = chat(gateway, image_config={"aspect_ratio": "7:5"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "7:5" in message
    assert all(ratio in message for ratio in ASPECT_RATIOS)


def test_gateway_without_the_image_modality_answers_text_only(gateway: FakeRelay) -> None:
    request = {key: value for key, value in GATEWAY_REQUEST.items() if key != "modalities"}
    answer = httpx2.post(
        f"{gateway.base_url}/chat/completions", json=request, headers=headers(gateway)
    ).json()
    message = answer["choices"][0]["message"]
    assert "images" not in message
    assert message["content"]
    assert answer["usage"]["completion_tokens_details"]["image_tokens"] == 0


@pytest.mark.parametrize(("resolution", "size"), [("1K", (1344, 768)), ("2K", (2688, 1536))])
def test_gateway_draws_at_the_asked_image_size(
    gateway: FakeRelay, resolution: str, size: tuple[int, int]
) -> None:
    config = {"aspect_ratio": "16:9", "image_size": resolution}
    (image,) = chat(gateway, image_config=config).json()["choices"][0]["message"]["images"]
    assert png_size(data_url_png(image)) == size


def test_gateway_refuses_an_unknown_image_size(gateway: FakeRelay) -> None:
    response = chat(gateway, image_config={"image_size": "8K"})
    assert response.status_code == 400
    assert "image_size '8K'" in response.json()["error"]["message"]


def test_gateway_takes_a_size_it_ignores(gateway: FakeRelay) -> None:
    (image,) = chat(gateway, size="1536x1024").json()["choices"][0]["message"]["images"]
    assert png_size(data_url_png(image)) == (1024, 1024)


def test_gateway_streams_text_pieces_then_one_chunk_per_image(gateway: FakeRelay) -> None:
    body = {
        "stream": True,
        "n": 2,
        "image_config": {"aspect_ratio": "3:4"},
        "stream_options": {"include_usage": True},
    }
    with httpx2.stream(
        "POST",
        f"{gateway.base_url}/chat/completions",
        json={**GATEWAY_REQUEST, **body},
        headers=headers(gateway),
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        chunks, data = chat_chunks(response.iter_lines())
    assert data[-1] == "data: [DONE]"
    *choices, usage_only = chunks
    assert usage_only["choices"] == []
    assert usage_only["usage"]["completion_tokens"] == 2 * 1290
    deltas = [chunk["choices"][0]["delta"] for chunk in choices]
    assert deltas[0] == {"role": "assistant", "content": ""}
    text_pieces = [delta["content"] for delta in deltas[1:] if "content" in delta]
    assert len(text_pieces) > 1 and all(len(piece) <= 12 for piece in text_pieces)
    images = [delta["images"] for delta in deltas if "images" in delta]
    assert [len(batch) for batch in images] == [1, 1]
    assert {png_size(data_url_png(batch[0])) for batch in images} == {(864, 1184)}
    assert choices[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}


def test_gateway_stream_sends_usage_even_unasked(gateway: FakeRelay) -> None:
    """OpenRouter always ends a stream with the usage (``include_usage`` has no effect there)."""
    with httpx2.stream(
        "POST",
        f"{gateway.base_url}/chat/completions",
        json={**GATEWAY_REQUEST, "stream": True},
        headers=headers(gateway),
    ) as response:
        chunks, data = chat_chunks(response.iter_lines())
    assert data[-1] == "data: [DONE]"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"image_tokens": 1290}
    assert sum("images" in chunk["choices"][0]["delta"] for chunk in chunks[:-1]) == 1


def test_gateway_plays_queued_errors_as_the_vendor(gateway: FakeRelay) -> None:
    gateway.queue(Reply.rate_limited(3), Reply.content_policy())
    limited, refused, success = chat(gateway), chat(gateway), chat(gateway)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "content_policy_violation")
    assert len(success.json()["choices"][0]["message"]["images"]) == 1
