"""Property tests: whatever a relay sends, the parser returns a result or raises one of the typed
API errors (MalformedResponseError for what it cannot read), and never hangs."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings, strategies as st

from image_tool._wire.parsing import parse_result, result_from_content
from image_tool._wire.streaming import StreamReader
from image_tool.errors import APIError
from image_tool.models import ImageGenerationResult

PROPERTY_SETTINGS = settings(max_examples=150, deadline=2000)

KEYS = st.sampled_from(
    ["data", "url", "b64_json", "revised_prompt", "created", "model", "choices", "message", "delta",
     "content", "type", "text", "image_url", "error", "code", "prompt", "image"]
)  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
MARKDOWN = st.lists(
    st.sampled_from(
        [
            "```json\n",
            "```",
            '{"prompt": "p", "image": ["https://x.example/i.png"]}',
            "\n",
            ">",
            "🏃 进度 ",
            "7....",
            "[100](",
            "https://cdn.example/a.png",
            ")",
            "![",
            "]",
            "(",
            "data:image/png;base64,",
            "iVBOR==",
            "生成完成",
            "违反",
            "负载已饱和",
            "Queuing",
            "Progress",
            " ",
            "[点击下载]",
        ]
    )
    | st.text(max_size=20),
    max_size=40,
).map("".join)


def settles(call: Any) -> None:
    try:
        outcome = call()
    except APIError:
        return
    assert isinstance(outcome, ImageGenerationResult)
    assert outcome.images


@PROPERTY_SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes(body: bytes) -> None:
    settles(lambda: parse_result(body, requested_model="m"))


@PROPERTY_SETTINGS
@given(JSON)
def test_any_json(payload: Any) -> None:
    settles(lambda: parse_result(json.dumps(payload).encode(), requested_model="m"))


@PROPERTY_SETTINGS
@given(MARKDOWN | st.lists(JSON, max_size=4))
def test_any_completion_content(content: Any) -> None:
    body = json.dumps({"object": "chat.completion", "choices": [{"message": {"content": content}}]})
    settles(lambda: parse_result(body.encode(), requested_model="m"))
    settles(lambda: result_from_content(content, model="m"))


EVENT_LINES = st.lists(
    st.sampled_from(["", ": PING", "data: [DONE]", "data:[DONE]", "event: x", "data: {", "data: 1"])
    | MARKDOWN.map(lambda text: "data: " + json.dumps({"choices": [{"delta": {"content": text}}]}))
    | JSON.map(lambda payload: "data: " + json.dumps(payload))
    | st.text(max_size=30),
    max_size=30,
)


@PROPERTY_SETTINGS
@given(EVENT_LINES)
def test_any_event_stream(lines: list[str]) -> None:
    reader = StreamReader("m")

    def run() -> ImageGenerationResult:
        for line in lines:
            reader.feed(line)
        return reader.result()

    settles(run)
