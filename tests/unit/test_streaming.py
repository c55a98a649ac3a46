"""Server-sent events of streamed answers, read line by line."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from image_tool import APIConnectionError, APIStatusError, GenerationProgress, ImageGenerationResult
from image_tool._wire.streaming import ProgressTracker, StreamReader, progress_of_line
from image_tool.errors import MalformedResponseError, NoImageError, StreamWithoutImageError
from image_tool.models import MAX_IMAGES_READ
from image_tool.testing import png_image

from .test_markdown import FIELD_ANSWER_ZH


def chunk(content: Any = None, model: str = "gpt-4o-image", **extra: Any) -> str:
    delta = {} if content is None else {"content": content}
    return json.dumps(
        {"object": "chat.completion.chunk", "model": model, "choices": [{"delta": delta}], **extra}
    )


def events(*payloads: str, space: bool = True) -> list[str]:
    lines = []
    for payload in payloads:
        lines += [("data: " if space else "data:") + payload, ""]
    return lines


def read(lines: list[str]) -> tuple[ImageGenerationResult, list[GenerationProgress]]:
    reader = StreamReader("gpt-4o-image")
    progress = [update for line in lines for update in reader.feed(line)]
    return reader.result(), progress + reader.final_progress()


def pieces(text: str, size: int = 7) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def test_deltas_are_joined_then_read_like_a_plain_answer() -> None:
    lines = [": PING", "", *events(*(chunk(piece) for piece in pieces(FIELD_ANSWER_ZH))), "data: [DONE]", ""]
    result, progress = read(lines)
    assert result.urls == ["https://cdn.example/20260311/e952.png"]
    assert result.images[0].revised_prompt == "a cat in a tree"
    assert progress[0].stage == "queued"
    assert progress[-1].stage == "done"


def test_data_without_a_space_usage_chunk_and_keep_alives() -> None:
    usage_only = json.dumps({"object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 9}})
    lines = [
        ": keep-alive",
        *events(chunk("![a](https://cdn.example/a.png)", model="sora_image"), space=False),
        ": PING",
        "",
        *events(usage_only),
        "data:[DONE]",
        "",
    ]
    result, _ = read(lines)
    assert result.urls == ["https://cdn.example/a.png"]
    assert result.model == "sora_image"


def test_events_without_blank_lines_between_them() -> None:
    lines = ["data: " + chunk("![a](https://cdn.e"), "data: " + chunk("xample/a.png)"), "data: [DONE]"]
    assert read(lines)[0].urls == ["https://cdn.example/a.png"]


def test_crlf_lines_and_other_fields_are_tolerated() -> None:
    lines = ["event: message\r", "id: 1\r", "data: " + chunk("![a](https://cdn.example/a.png)") + "\r", "\r"]
    assert read([*lines, "data: [DONE]", ""])[0].urls == ["https://cdn.example/a.png"]


def test_an_error_object_mid_stream_is_the_relays_error() -> None:
    error = json.dumps(
        {"error": {"message": "upstream timeout", "type": "upstream_error", "code": "timeout"}}
    )
    reader = StreamReader("m")
    for line in events(chunk(">🕐 排队中.\n")):
        reader.feed(line)
    reader.feed("data: " + error)
    with pytest.raises(APIStatusError, match="upstream timeout") as caught:
        reader.feed("")
    assert caught.value.error_type == "upstream_error"


def test_a_finished_answer_without_an_image_is_no_image() -> None:
    finish = chunk(choices=[{"delta": {}, "finish_reason": "stop"}])
    with pytest.raises(NoImageError, match="排队中") as raised:
        read([*events(chunk(">🕐 排队中.\n>⚡ 生成中...\n> ✅ 生成完成"), finish), "data: [DONE]", ""])
    assert type(raised.value) is NoImageError


def test_done_while_still_generating_is_a_cut_upstream() -> None:
    # new-api and one-api end every stream with [DONE], even when their upstream was cut.
    with pytest.raises(
        APIConnectionError, match=r"still being generated \(last progress: 🏃 进度 13....73\)"
    ):
        read([*events(chunk(">🕐 排队中.\n>🏃 进度 13....73")), "data: [DONE]", ""])


@pytest.mark.parametrize(
    "lines",
    [
        ["data: [DONE]", ""],  # new-api, for a stream request its upstream answered in JSON
        [*events(chunk(choices=[{"delta": {}, "finish_reason": "stop"}])), "data: [DONE]", ""],  # LiteLLM
    ],
    ids=["bare-done", "stop-chunk-only"],
)
def test_a_clean_end_with_nothing_advises_a_plain_request(lines: list[str]) -> None:
    with pytest.raises(StreamWithoutImageError, match="stream=False"):
        read(lines)


def test_images_beside_the_content_images_events_and_doubled_prefixes() -> None:
    images = [{"type": "image_url", "image_url": {"url": "https://cdn.example/a.png"}}]
    event = json.dumps({"type": "image_generation.completed", "b64_json": "aW1hZ2U="})
    lines = [
        "data: : PING",
        "",
        *events(chunk(choices=[{"delta": {"content": "Here it is.", "images": images}}])),
        f"data: data: {event}",
        "",
        "data: [DONE]",
        "",
    ]
    result, _ = read(lines)
    assert [image.url or image.b64_json for image in result.images] == [
        "https://cdn.example/a.png",
        "aW1hZ2U=",
    ]


def test_progress_in_reasoning_content_is_read_apart_from_the_content() -> None:
    reasoning = chunk(choices=[{"delta": {"reasoning_content": "Initializing generation request...\n"}}])
    progress_in_reasoning = chunk(choices=[{"delta": {"reasoning_content": "Progress 45%"}}])
    lines = events(reasoning, progress_in_reasoning, chunk("![a](https://cdn.example/a.png)"))
    result, progress = read([*lines, "data: [DONE]", ""])
    assert result.urls == ["https://cdn.example/a.png"]
    assert [(update.stage, update.percent) for update in progress] == [
        ("queued", None),
        ("generating", 45),
        ("done", 100),
    ]


def test_a_stream_cut_before_done_without_an_image_is_a_connection_error() -> None:
    with pytest.raises(APIConnectionError, match="cut before it finished"):
        read(events(chunk(">🕐 排队中.\n")))


def test_a_stream_cut_after_its_image_keeps_the_image() -> None:
    result, _ = read(events(chunk("![a](https://cdn.example/a.png)")))
    assert result.urls == ["https://cdn.example/a.png"]


@pytest.mark.parametrize("line", ["data: {not json", "data: [1, 2]"])
def test_unreadable_events_are_malformed(line: str) -> None:
    reader = StreamReader("m")
    reader.feed(line)
    with pytest.raises(MalformedResponseError):
        reader.feed("")


def test_content_parts_in_a_stream() -> None:
    parts = [
        {"type": "text", "text": "Here."},
        {"type": "image_url", "image_url": {"url": "https://c.example/a.png"}},
    ]
    assert read([*events(chunk(parts)), "data: [DONE]", ""])[0].urls == ["https://c.example/a.png"]


@pytest.mark.parametrize(
    ("line", "stage", "percent"),
    [
        (">🕐 排队中.", "queued", None),
        (">⚡ 生成中.....", "generating", None),
        (">🏃 进度 13....57...[100](https://progress.example/20260311/preview.png)", "generating", 100),
        (">🏃 进度 13....57...", "generating", 57),
        ("> ✅ 生成完成", "done", 100),
        (">🕐 Queuing.", "queued", None),
        (">⚡ Generating.....", "generating", None),
        (">🏃 Progress 7....25...", "generating", 25),
        ("> ✅ Generation complete", "done", 100),
    ],
)
def test_progress_lines(line: str, stage: str, percent: int | None) -> None:
    progress = progress_of_line(line)
    assert progress is not None
    assert (progress.stage, progress.percent) == (stage, percent)
    assert progress.text.startswith(line.lstrip("> ")[:2])


@pytest.mark.parametrize(
    "line", ["![gen](https://cdn.example/a.png)", "[点击下载](https://cdn.example/a.png)", ""]
)
def test_other_lines_are_not_progress(line: str) -> None:
    assert progress_of_line(line) is None


def test_progress_is_reported_once_per_change() -> None:
    tracker = ProgressTracker()
    text = (
        ">🕐 排队中.\n\n>⚡ 生成中.....\n\n>🏃 进度 7....13....25....37....[100](https://p.example/x.png)\n"
    )
    updates = [update for piece in pieces(text, 1) for update in tracker.feed(piece)]
    assert [(update.stage, update.percent, update.preview_url) for update in updates] == [
        ("queued", None, None),
        ("generating", None, None),
        ("generating", 7, None),
        ("generating", 13, None),
        ("generating", 25, None),
        ("generating", 37, None),
        ("generating", 100, None),
        ("generating", 100, "https://p.example/x.png"),  # the preview, once its link is whole
    ]


def test_the_prompt_in_the_json_block_is_not_progress() -> None:
    tracker = ProgressTracker()
    assert tracker.feed('```json\n{"prompt": "a progress bar, generating energy"}\n```\n') == []


def test_a_large_inline_image_in_small_deltas() -> None:
    image = base64.b64encode(png_image(8, 8, "large") + bytes(1_500_000)).decode()
    text = f">🕐 排队中.\n\n![Generated Image](data:image/png;base64,{image})\n"
    lines = [*events(*(chunk(piece) for piece in pieces(text, 4096))), "data: [DONE]", ""]
    result, progress = read(lines)
    assert result.images[0].b64_json == image
    assert [update.stage for update in progress] == ["queued", "done"]


def test_images_beside_the_text_are_kept_up_to_the_reading_limit() -> None:
    images = [{"type": "image_url", "image_url": {"url": f"https://cdn.example/{i}.png"}} for i in range(600)]
    lines = events(*(chunk(choices=[{"delta": {"images": images}}]) for _ in range(3)))
    result, _ = read([*lines, "data: [DONE]", ""])
    assert len(result.images) == 600  # the same 600, each once
    more = [{"type": "image_url", "image_url": {"url": f"https://cdn.example/b{i}.png"}} for i in range(900)]
    result, _ = read([*lines, *events(chunk(choices=[{"delta": {"images": more}}])), "data: [DONE]", ""])
    assert len(result.images) == MAX_IMAGES_READ


def images_api_event(kind: str, **fields: Any) -> list[str]:
    return [f"event: {kind}", "data: " + json.dumps({"type": kind, **fields}), ""]


def test_images_api_stream_reports_each_partial_image_as_a_preview_then_the_image() -> None:
    usage = {
        "input_tokens": 9,
        "output_tokens": 1056,
        "total_tokens": 1065,
        "output_tokens_details": {"image_tokens": 1056},
    }
    lines = [
        *images_api_event("image_generation.partial_image", b64_json="UFJFVklFVzA=", partial_image_index=0),
        *images_api_event("image_generation.partial_image", b64_json="UFJFVklFVzE=", partial_image_index=1),
        *images_api_event("image_generation.completed", b64_json="RklOQUw=", created_at=1, usage=usage),
    ]
    reader = StreamReader("gpt-image-1")
    progress = [update for line in lines for update in reader.feed(line)]
    result = reader.result()
    assert [(update.text, update.preview_b64) for update in progress] == [
        ("partial image 1", "UFJFVklFVzA="),
        ("partial image 2", "UFJFVklFVzE="),
    ]
    assert "UFJF" not in repr(progress[0])  # the preview stays out of reprs and logs
    assert [image.b64_json for image in result.images] == ["RklOQUw="]
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.output_image_tokens) == (
        9,
        1056,
        1056,
    )


def test_the_usage_chunk_of_a_chat_stream_goes_into_the_result() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 1290, "total_tokens": 1302}
    usage_only = json.dumps({"object": "chat.completion.chunk", "choices": [], "usage": usage})
    result, _ = read([*events(chunk("![a](https://cdn.example/a.png)"), usage_only), "data: [DONE]", ""])
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.total_tokens) == (
        12,
        1290,
        1302,
    )


def test_a_stream_without_usage_has_none() -> None:
    result, _ = read([*events(chunk("![a](https://cdn.example/a.png)")), "data: [DONE]", ""])
    assert result.usage is None


def test_gateway_stream_images_arrive_in_delta_images() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with_image = json.dumps({"object": "chat.completion.chunk", "choices": [{"delta": {"images": [image]}}]})
    result, _ = read([*events(chunk("Here is your cat."), with_image), "data: [DONE]", ""])
    assert [image.b64_json for image in result.images] == ["iVBORw0KGgo="]
