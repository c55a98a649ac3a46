"""Reading a successful answer into an ImageGenerationResult."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_tool import GeneratedImage, ImageGenerationResult
from image_tool._wire.parsing import parse_result
from image_tool.errors import APIStatusError, ContentPolicyError, MalformedResponseError, NoImageError


def parse(payload: Any) -> ImageGenerationResult:
    return parse_result(json.dumps(payload).encode(), requested_model="gpt-4o-image")


def test_documented_shape_keeps_every_image_and_revised_prompt() -> None:
    result = parse(
        {
            "created": 1725000000,
            "data": [
                {"url": "https://cdn.example/a.png", "revised_prompt": "A cat in an oak tree"},
                {"url": "https://cdn.example/b.png", "revised_prompt": "A cat on a branch"},
            ],
        }
    )
    assert result == ImageGenerationResult(
        created=1725000000,
        model="gpt-4o-image",
        images=[
            GeneratedImage(url="https://cdn.example/a.png", revised_prompt="A cat in an oak tree"),
            GeneratedImage(url="https://cdn.example/b.png", revised_prompt="A cat on a branch"),
        ],
    )
    assert result.urls == ["https://cdn.example/a.png", "https://cdn.example/b.png"]


def test_b64_json_images() -> None:
    result = parse({"created": 1, "data": [{"b64_json": "iVBORw0KGgo=", "revised_prompt": "p"}]})
    assert result.images == [GeneratedImage(b64_json="iVBORw0KGgo=", revised_prompt="p")]
    assert result.urls == []
    assert "iVBOR" not in repr(result)  # base64 stays out of reprs and logs


def test_model_that_answered_is_kept() -> None:
    assert parse({"model": "sora_image", "data": [{"url": "https://x/a.png"}]}).model == "sora_image"


def test_missing_or_odd_fields_are_tolerated() -> None:
    result = parse({"created": "soon", "data": [{"url": "https://x/a.png", "revised_prompt": 5}, "junk", {}]})
    assert result.created is None
    assert result.images == [GeneratedImage(url="https://x/a.png")]


@pytest.mark.parametrize("payload", [{"data": []}, {"created": 1, "data": [{}, {"url": ""}]}])
def test_answer_without_image_is_a_failure(payload: Any) -> None:
    with pytest.raises(NoImageError, match="no image"):
        parse(payload)


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>502</html>", b"[1, 2]", b'"text"', b'{"id": "x", "object": "unknown"}', b"\xff\xfe"],
)
def test_unreadable_answer_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse_result(body, requested_model="m")


def test_error_body_with_http_200_is_a_failure() -> None:
    with pytest.raises(ContentPolicyError) as caught:
        parse({"error": {"message": "rejected", "code": "content_policy_violation"}})
    assert caught.value.status_code == 200
    with pytest.raises(APIStatusError, match="quota"):
        parse({"error": {"message": "insufficient quota", "type": "new_api_error"}})


def test_non_finite_created_is_ignored() -> None:
    body = b'{"created": Infinity, "data": [{"url": "https://x/a.png"}]}'
    assert parse_result(body, requested_model="m").created is None


def completion(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [{"message": message}], **extra}


def test_images_beside_the_message_content() -> None:
    # OpenRouter, LiteLLM and the Gemini gateways put images in message.images.
    images = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    result = parse(completion({"content": "Here is your sunset.", "images": images}))
    assert [image.b64_json for image in result.images] == ["iVBORw0KGgo="]


def test_a_bare_link_as_the_whole_content_is_the_image() -> None:
    result = parse(completion({"content": " https://cdn.example/grok/a.jpg \n"}))
    assert result.urls == ["https://cdn.example/grok/a.jpg"]
    with pytest.raises(NoImageError):  # a link inside prose is not an image
        parse(completion({"content": "Preview: https://cdn.example/task/1"}))


@pytest.mark.parametrize(
    "content",
    [
        "> 🎉 视频已生成\n\n[▶️ 在线观看](https://cdn.example/v/a.mp4) | [⏬ 下载](https://cdn.example/v/a.mp4)",
        "![thumb](https://cdn.example/v/a.webp)\n[在线播放▶️](https://cdn.example/v/a.MP4?sig=1)",
    ],
)
def test_a_video_is_not_an_image_and_says_so(content: str) -> None:
    with pytest.raises(NoImageError, match=r"a video, not an image: https://cdn.example/v/a\.(mp4|MP4)"):
        parse(completion({"content": content}))


def test_an_empty_message_with_billed_tokens_says_the_image_was_lost() -> None:
    payload = completion({"role": "assistant"}, usage={"completion_tokens": 1120})
    with pytest.raises(NoImageError, match="1120 completion tokens"):
        parse(payload)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "prompt_tokens": 12,
                "completion_tokens": 1290,
                "total_tokens": 1302,
                "completion_tokens_details": {"image_tokens": 1290},
            },
            {"input_tokens": 12, "output_tokens": 1290, "total_tokens": 1302, "output_image_tokens": 1290},
        ),
        (
            {
                "input_tokens": 50,
                "output_tokens": 4160,
                "total_tokens": 4210,
                "input_tokens_details": {"text_tokens": 16, "image_tokens": 34},
            },
            {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210, "input_image_tokens": 34},
        ),
        ({"images": 2, "total_tokens": True, "output_tokens": -1}, {"images": 2}),
        ({"completion_tokens": "many"}, None),
        ("12 tokens", None),
    ],
)
def test_usage_is_read_from_either_api(usage: object, expected: dict[str, int] | None) -> None:
    body = {"created": 1, "data": [{"url": "https://cdn.example/a.png"}], "usage": usage}
    result = parse_result(json.dumps(body).encode(), requested_model="m")
    read = result.usage.model_dump(exclude_none=True) if result.usage else None
    assert read == expected


def test_a_gateway_message_with_images_and_usage() -> None:
    message = {
        "role": "assistant",
        "content": "Here is a cat.",
        "images": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}],
    }
    body = {
        "model": "google/gemini-2.5-flash-image",
        "choices": [{"message": message}],
        "usage": {"total_tokens": 1300},
    }
    result = parse_result(json.dumps(body).encode(), requested_model="m")
    assert [image.b64_json for image in result.images] == ["iVBORw0KGgo="]
    assert result.usage is not None and result.usage.total_tokens == 1300
