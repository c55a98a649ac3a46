"""Chat-completion answers, as the wire-format notes show them, read into results."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from image_tool import GeneratedImage
from image_tool._wire.parsing import parse_result, result_from_content
from image_tool.errors import APIError, ContentPolicyError, NoImageError, RateLimitError
from image_tool.testing import png_image

FIELD_ANSWER_ZH = """```json
{"prompt": "a cat in a tree", "ratio": "1:1", "n": 1}
```

>🕐 排队中.

>⚡ 生成中.....

>🏃 进度 13....57...[100](https://progress.example/preview_src.png)

> ✅ 生成完成

![gen_01abc](https://cdn.example/20260311/e952.png)

[点击下载](https://cdn.example/download/20260311/e952.png)
"""

FIELD_ANSWER_EN_TWO = """```json
{"prompt": "two foxes in the snow, watercolour", "n": 2}
```

>🕐 Queuing.
>⚡ Generating.....
>🏃 Progress 7....25...[100](https://progress.example/p.png)
> ✅ Generation complete

![gen_1](https://cdn.example/a.png)
[Click to download](https://cdn.example/a.png)

![gen_2](https://cdn.example/b.png)
[下载⏬](https://cdn.example/b.png)
"""


def completion(content: Any, model: str = "gpt-4o-image") -> bytes:
    message = {"role": "assistant", "content": content}
    return json.dumps(
        {
            "object": "chat.completion",
            "created": 1773200000,
            "model": model,
            "choices": [{"message": message}],
        }
    ).encode()


def test_markdown_answer_in_chinese() -> None:
    result = parse_result(completion(FIELD_ANSWER_ZH), requested_model="gpt-4o-image")
    # The download link and the progress preview are not images; the json block's prompt is kept.
    assert result.images == [
        GeneratedImage(url="https://cdn.example/20260311/e952.png", revised_prompt="a cat in a tree")
    ]
    assert result.created == 1773200000


def test_markdown_answer_in_english_with_two_images_and_another_model() -> None:
    result = parse_result(completion(FIELD_ANSWER_EN_TWO, "sora_image"), requested_model="gpt-4o-image-vip")
    assert result.urls == ["https://cdn.example/a.png", "https://cdn.example/b.png"]
    assert {image.revised_prompt for image in result.images} == {"two foxes in the snow, watercolour"}
    assert result.model == "sora_image"


def test_inline_data_images() -> None:
    content = "![Generated Image](data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==)"
    (image,) = parse_result(completion(content), requested_model="m").images
    assert image == GeneratedImage(b64_json="iVBORw0KGgoAAAANSUhEUg==")


def test_content_as_a_list_of_parts() -> None:
    content = [
        {"type": "text", "text": "Here is your cat."},
        {"type": "image_url", "image_url": {"url": "https://cdn.example/cat.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}},
    ]
    result = parse_result(completion(content), requested_model="m")
    assert result.images == [
        GeneratedImage(url="https://cdn.example/cat.png"),
        GeneratedImage(b64_json="UklGRg=="),
    ]


def test_urls_only_in_the_json_block() -> None:
    content = '```json\n{"prompt": "a red kite", "image": ["https://cdn.example/kite.png"]}\n```\n\n生成完成'
    (image,) = parse_result(completion(content), requested_model="m").images
    assert image == GeneratedImage(url="https://cdn.example/kite.png", revised_prompt="a red kite")


def test_the_same_image_twice_is_one_image() -> None:
    content = "![a](https://cdn.example/a.png)\n\n![a again](https://cdn.example/a.png)"
    assert len(parse_result(completion(content), requested_model="m").images) == 1


def test_an_image_inside_a_progress_line_is_a_preview() -> None:
    content = ">🏃 进度 57 ![preview](https://progress.example/p.png)\n\n![gen](https://cdn.example/a.png)"
    assert parse_result(completion(content), requested_model="m").urls == ["https://cdn.example/a.png"]


@pytest.mark.parametrize(
    ("content", "kind", "words"),
    [
        ('```json\n{"prompt": "x"}\n```\n\n>🕐 排队中.\n\n![image]()', NoImageError, "![image]()"),
        (
            "任务已提交，ID: task_01hx9\n预览页面: https://preview.example/task_01hx9",
            NoImageError,
            "task_01hx9",
        ),
        ("", NoImageError, "(empty answer)"),
        ("图片检测系统认为内容可能违反相关政策", ContentPolicyError, "违反相关政策"),
        (
            "输入的提示词...违反了OpenAI的相关服务政策，请调整提示词后进行重试",
            ContentPolicyError,
            "违反了OpenAI",
        ),
        (
            "Your request may contain content that is not allowed by our safety system",
            ContentPolicyError,
            "safety",
        ),
        (">🕐 排队中.\n> ❌ 当前分组上游负载已饱和，请稍后再试", RateLimitError, "负载已饱和"),
    ],
)
def test_answers_without_an_image_are_failures(content: str, kind: type[APIError], words: str) -> None:
    with pytest.raises(kind) as caught:
        parse_result(completion(content), requested_model="m")
    assert type(caught.value) is kind
    assert words in caught.value.message  # the relay's own text, for the user to see
    assert caught.value.status_code == 200


def test_empty_choices_is_no_image() -> None:
    with pytest.raises(NoImageError):
        parse_result(b'{"object": "chat.completion", "choices": []}', requested_model="m")


def test_result_from_content_is_what_streaming_uses() -> None:
    result = result_from_content(FIELD_ANSWER_ZH, model="gpt-4o-image", created=None)
    assert result.urls == ["https://cdn.example/20260311/e952.png"]


def test_large_inline_images_parse() -> None:
    images = [base64.b64encode(png_image(8, 8, str(index)) + bytes(2_250_000)).decode() for index in range(4)]
    content = "\n\n".join(f"![Generated Image](data:image/png;base64,{image})" for image in images)
    result = parse_result(completion(content), requested_model="m")
    assert [image.b64_json for image in result.images] == images
