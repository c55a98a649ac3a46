"""OpenTelemetry spans of a generation, its attempts and downloads, a batch run and a tool call,
read from the SDK's in-memory exporter; the key in none of them; nothing without OpenTelemetry."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from image_tool import (
    AuthenticationError,
    Fallback,
    GenerationProgress,
    ImageClient,
    ImageGenerationTool,
    QuotaExceededError,
)
from image_tool._io import tracing
from image_tool._wire.redaction import REDACTED
from image_tool.batch import run_batch
from image_tool.testing import FakeRelay, Reply

from ..helpers import tool_call
from ..tracing_provider import SWITCH
from .test_secrets import SECRET, RecordEverything, keyed_progress


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """What this test's generations record. A provider set here records this test's spans alone
    (tests/tracing_provider.py)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if SWITCH.current is not provider:
        pytest.skip("another tracer provider was set in this process before the tests'")
    return exporter


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    return dict(span.attributes or {})


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [span for span in spans if span.parent and span.parent.span_id == parent.context.span_id]


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def port_of(relay: FakeRelay) -> int | None:
    return urlsplit(relay.origin).port


def client_of(relay: FakeRelay, **settings: Any) -> ImageClient:
    return ImageClient(api_key=relay.api_key, base_url=relay.base_url, **{"max_retries": 0, **settings})


def test_a_generation_is_a_span_over_its_attempt_and_downloads(
    spans: InMemorySpanExporter, fake_relay: FakeRelay, tmp_path: Path
) -> None:
    settings = {"save_dir": tmp_path, "allow_private_downloads": True, "price_per_image": 0.04}
    with client_of(fake_relay, name="fake", **settings) as client:
        result = client.generate("A cat", n=2)
    recorded = finished(spans)
    generation = only(recorded, "chat gpt-4o-image")
    assert generation.parent is None and generation.kind is SpanKind.CLIENT
    assert generation.status.status_code is StatusCode.UNSET
    assert attributes(generation) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-image",
        "gen_ai.output.type": "image",
        "gen_ai.request.choice.count": 2,
        "gen_ai.response.model": result.model,
        "server.address": "127.0.0.1",
        "server.port": port_of(fake_relay),
        "image_tool.endpoint": "chat",
        "image_tool.relay": "fake",
        "image_tool.attempts": 1,
        "image_tool.images": 2,
        "image_tool.cost": pytest.approx(0.08),
    }
    assert [event.name for event in generation.events] == ["image_tool.progress"]  # saving
    (attempt,) = named(children(recorded, generation), "POST")
    assert attempt.kind is SpanKind.CLIENT
    assert attributes(attempt) == {
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "url.full": f"{fake_relay.base_url}/chat/completions",
        "server.address": "127.0.0.1",
        "server.port": port_of(fake_relay),
        "image_tool.relay": "fake",
        "gen_ai.request.model": "gpt-4o-image",
    }
    downloads = named(children(recorded, generation), "GET")
    links = sorted(str(image.url) for image in result.images)
    assert sorted(attributes(span)["url.full"] for span in downloads) == links
    assert all(attributes(span)["http.response.status_code"] == 200 for span in downloads)
    assert len(recorded) == 4 and len({span.context.trace_id for span in recorded if span.context}) == 1


async def test_an_async_generation_on_the_images_api_records_its_usage(
    spans: InMemorySpanExporter, fake_relay: FakeRelay
) -> None:
    async with client_of(fake_relay, model="gpt-image-1") as client:
        result = await client.agenerate("A cat", quality="low")
    recorded = finished(spans)
    generation = only(recorded, "generate_content gpt-image-1")
    assert result.usage is not None
    assert attributes(generation)["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    assert attributes(generation)["gen_ai.usage.output_tokens"] == result.usage.output_tokens == 272
    assert attributes(generation)["image_tool.endpoint"] == "images"
    (attempt,) = children(recorded, generation)  # inline images: nothing downloaded
    assert attributes(attempt)["url.full"] == f"{fake_relay.base_url}/images/generations"


@pytest.mark.usefixtures("quick_backoff")
def test_a_retry_is_a_second_attempt_under_the_same_generation(
    spans: InMemorySpanExporter, fake_relay: FakeRelay
) -> None:
    fake_relay.queue(Reply.bad_gateway(), Reply())
    with client_of(fake_relay, max_retries=1) as client:
        client.generate("A cat")
    recorded = finished(spans)
    generation = only(recorded, "chat gpt-4o-image")
    first, second = sorted(
        named(children(recorded, generation), "POST"), key=lambda span: span.start_time or 0
    )
    assert attributes(first)["http.response.status_code"] == 502
    assert attributes(first)["error.type"] == "APIStatusError"
    assert first.status.status_code is StatusCode.ERROR
    assert "http.request.resend_count" not in attributes(first)
    assert attributes(second)["http.request.resend_count"] == 1
    assert attributes(second)["http.response.status_code"] == 200
    assert attributes(generation)["image_tool.attempts"] == 2
    assert generation.status.status_code is StatusCode.UNSET


def test_each_attempt_of_a_failover_names_its_relay(spans: InMemorySpanExporter) -> None:
    with FakeRelay(api_key="key-a") as first, FakeRelay(api_key="key-b") as second:
        first.queue(Reply.quota_exhausted())
        fallback = Fallback(base_url=second.base_url, api_key="key-b", name="b")
        with ImageClient(
            api_key="key-a", base_url=first.base_url, name="a", max_retries=0, fallbacks=[fallback]
        ) as client:
            result = client.generate("A cat")
        ports = [port_of(first), port_of(second)]
    assert result.target == "b"
    recorded = finished(spans)
    generation = only(recorded, "chat gpt-4o-image")
    attempts = sorted(named(children(recorded, generation), "POST"), key=lambda span: span.start_time or 0)
    assert [attributes(span)["image_tool.relay"] for span in attempts] == ["a", "b"]
    assert [attributes(span)["server.port"] for span in attempts] == ports
    assert attributes(attempts[0])["error.type"] == QuotaExceededError.__name__
    assert attributes(generation)["image_tool.relay"] == "b"
    assert attributes(generation)["server.port"] == ports[1]
    assert attributes(generation)["image_tool.failovers"] == 1


def everything_recorded(spans: list[ReadableSpan]) -> str:
    return "\n".join(span.to_json() for span in spans)


def test_a_failure_is_recorded_without_the_key(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tracing.CAPTURE_CONTENT, "true")
    with FakeRelay(api_key=SECRET) as relay:
        relay.queue(
            Reply.error(401, f"Invalid token {SECRET}", headers={"X-Echo": SECRET}),
            Reply.error(500, f"upstream rejected key {SECRET}"),
        )
        with ImageClient(api_key=SECRET, base_url=relay.base_url, max_retries=0) as client:
            with pytest.raises(AuthenticationError):
                client.generate(f"A cat, says {SECRET}")
            with pytest.raises(Exception, match="upstream rejected key"):
                client.generate("A dog")
    recorded = finished(spans)
    generations = named(recorded, "chat gpt-4o-image")
    assert [attributes(span)["error.type"] for span in generations] == [
        "AuthenticationError",
        "APIStatusError",
    ]
    for generation in generations:
        assert generation.status.status_code is StatusCode.ERROR
        (event,) = [event for event in generation.events if event.name == "exception"]
        assert REDACTED in str(dict(event.attributes or {})["exception.message"])
    assert f"A cat, says {REDACTED}" in attributes(generations[0])["gen_ai.input.messages"]
    assert SECRET not in everything_recorded(recorded)


def test_progress_is_events_of_the_generation_without_the_key(spans: InMemorySpanExporter) -> None:
    with FakeRelay(api_key=SECRET) as relay:
        relay.queue(keyed_progress(relay))
        updates: list[GenerationProgress] = []
        with ImageClient(api_key=SECRET, base_url=relay.base_url, stream=True) as client:
            client.generate("A cat", on_progress=updates.append)
    recorded = finished(spans)
    generation = only(recorded, "chat gpt-4o-image")
    events = [
        dict(event.attributes or {}) for event in generation.events if event.name == "image_tool.progress"
    ]
    assert len(events) == len(updates) > 2
    assert [event["image_tool.progress.stage"] for event in events] == [update.stage for update in updates]
    assert not any(
        event.name == "image_tool.progress"
        for span in children(recorded, generation)
        for event in span.events
    )
    assert SECRET[:5] not in everything_recorded(recorded)


def test_the_prompt_is_recorded_only_when_asked(
    spans: InMemorySpanExporter, fake_relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client_of(fake_relay) as client:
        client.generate("A cat in the rain")
        monkeypatch.setenv(tracing.CAPTURE_CONTENT, "True")
        client.generate("A dog in the rain" + "!" * 10_000)
    first, second = named(finished(spans), "chat gpt-4o-image")
    assert "gen_ai.input.messages" not in attributes(first)
    assert "A cat in the rain" not in everything_recorded([first])
    (message,) = json.loads(attributes(second)["gen_ai.input.messages"])
    assert message["role"] == "user"
    (part,) = message["parts"]
    assert part["type"] == "text" and part["content"].startswith("A dog in the rain!!")
    assert len(part["content"]) == tracing.MAX_PROMPT_CHARS


def test_a_batch_run_is_the_parent_of_its_generations(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"A cat {i}"}) + "\n" for i in range(3)))
    with FakeRelay() as relay:
        relay.queue(Reply.content_policy())
        summary = run_batch(
            prompts,
            tmp_path / "out",
            concurrency=1,
            api_key=relay.api_key,
            base_url=relay.base_url,
            allow_private_downloads=True,
        )
    assert (summary.ok, summary.failed) == (2, 1)
    recorded = finished(spans)
    run = only(recorded, "image_tool batch")
    assert run.parent is None
    assert {key: value for key, value in attributes(run).items() if key.startswith("image_tool.batch.")} == {
        "image_tool.batch.prompts_file": "prompts.jsonl",
        "image_tool.batch.total": 3,
        "image_tool.batch.skipped": 0,
        "image_tool.batch.concurrency": 1,
        "image_tool.batch.ok": 2,
        "image_tool.batch.failed": 1,
        "image_tool.batch.lost": 0,
        "image_tool.batch.not_started": 0,
    }
    generations = children(recorded, run)
    assert [span.name for span in generations] == ["chat gpt-4o-image"] * 3
    assert [attributes(span).get("error.type") for span in generations].count("ContentPolicyError") == 1
    assert all(named(children(recorded, span), "POST") for span in generations)


def test_a_tool_call_is_traced_and_langchain_callbacks_are_unchanged(
    spans: InMemorySpanExporter, fake_relay: FakeRelay
) -> None:
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url)
    callbacks = RecordEverything()
    with tracing.tool_call("generate_image", "call_1"):
        message = tool.invoke(tool_call(prompt="A cat"), config={"callbacks": [callbacks]})
    tool.client.close()
    assert message.status == "success" and len(callbacks.seen) == 2  # start and end, as before
    recorded = finished(spans)
    outer = only(recorded, "execute_tool generate_image")
    assert attributes(outer) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "generate_image",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "call_1",
    }
    assert [span.name for span in children(recorded, outer)] == ["chat gpt-4o-image"]


def test_without_opentelemetry_a_generation_records_nothing_and_works(
    spans: InMemorySpanExporter, fake_relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "opentelemetry"]:
        monkeypatch.setitem(sys.modules, name, None)  # any import of it now fails
    with client_of(fake_relay, stream=True) as client:
        result = client.generate("A cat", on_progress=lambda update: None)
    assert result.images and finished(spans) == []
    spec = importlib.util.spec_from_file_location("image_tool._io.tracing_again", tracing.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)  # imported afresh, with OpenTelemetry missing
    with fresh.tool_call() as traced:
        assert traced is fresh.OFF


def test_with_no_provider_set_nothing_is_recorded(fake_relay: FakeRelay) -> None:
    assert "opentelemetry.trace" in sys.modules  # the API is loaded: its spans are invalid
    with client_of(fake_relay) as client, tracing.tool_call() as traced:
        assert traced is tracing.OFF
        assert client.generate("A cat").images


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@cdn.example/a/b.png?sig=abc&se=2026#x", "https://cdn.example/a/b.png"),
        (
            f"https://relay.example/v1/{SECRET}/chat/completions",
            f"https://relay.example/v1/{REDACTED}/chat/completions",
        ),
        ("data:image/png;base64,iVBORw0KGgo=", "data:"),
    ],
)
def test_a_recorded_url_keeps_no_credentials(url: str, shown: str) -> None:
    assert tracing._shown(url, SECRET) == shown


async def test_an_mcp_tool_call_is_the_parent_of_its_generation_and_attempts(
    spans: InMemorySpanExporter, fake_relay: FakeRelay
) -> None:
    pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")
    from mcp import Client

    from image_tool.mcp_server import create_server

    fake_relay.queue(Reply.bad_gateway())  # retried: two attempts under one generation
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url, max_retries=1)
    async with Client(create_server(tool)) as client:  # in process, as the SDK connects a Server
        result = await client.call_tool("generate_image", {"prompt": "A cat"})
    await tool.client.aclose()
    assert not result.is_error
    recorded = finished(spans)
    outer = only(recorded, "execute_tool generate_image")
    assert attributes(outer)["gen_ai.tool.call.id"].startswith("mcp_")
    (generation,) = children(recorded, outer)
    assert generation.name == "chat gpt-4o-image" and attributes(generation)["image_tool.attempts"] == 2
    statuses = [attributes(span)["http.response.status_code"] for span in children(recorded, generation)]
    assert statuses == [502, 200]


@pytest.mark.usefixtures("quick_polls")
def test_a_midjourney_task_is_a_generation_whose_submit_is_its_attempt(spans: InMemorySpanExporter) -> None:
    with FakeRelay(profile="new-api") as relay:
        relay.queue(Reply.mj_task(polls=2))
        client = ImageClient(api_key=relay.api_key, base_url=relay.base_url, model="mj_imagine")
        result = client.generate("A lighthouse", seed=7)
        client.close()
    recorded = finished(spans)
    generation = only(recorded, "generate_content mj_imagine")
    assert attributes(generation)["image_tool.endpoint"] == "midjourney"
    assert attributes(generation)["image_tool.images"] == len(result.images) == 1
    (submit,) = children(recorded, generation)  # the polls are not attempts
    assert (submit.name, attributes(submit)["http.response.status_code"]) == ("POST", 200)
    assert attributes(submit)["url.full"].endswith("/mj/submit/imagine")
    assert {event.name for event in generation.events} == {"image_tool.progress"}
