"""Every way of drawing: the Images API (generations and edits, plain and streamed with previews),
chat gateways (``message.images``, ``delta.images``), dall-e-3, each sync and async, replayed from
cassettes recorded from FakeRelay, and what the tool, the CLI and the MCP server make of them."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from image_tool import GenerationProgress, ImageClient, ImageGenerationResult, ImageGenerationTool
from image_tool._cli.displays import ProgressDisplay
from image_tool.cli import main
from image_tool.errors import ContentPolicyError, InvalidRequestError, NoImageError
from image_tool.testing import FakeRelay, Reply, png_image

from ..conftest import RelayTarget
from ..helpers import call

GPT_IMAGE = "gpt-image-1"
GEMINI = "google/gemini-2.5-flash-image"
PNG = png_image(64, 64, "00112233445566ff")
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def image_bytes(result: ImageGenerationResult) -> list[bytes]:
    return [base64.b64decode(image.b64_json or "") for image in result.images]


def client_for(relay: RelayTarget, model: str, **settings: Any) -> ImageClient:
    return ImageClient(api_key=relay.api_key, base_url=relay.base_url, model=model, max_retries=0, **settings)


both = pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])


# --- The Images API, replayed ---


@both
@pytest.mark.vcr
@pytest.mark.emulator_only
async def test_images_api_generation(relay: RelayTarget, asynchronous: bool) -> None:
    client = client_for(relay, GPT_IMAGE)
    result = await call(client, asynchronous, n=2, size="1536x1024", quality="low", background="opaque")
    assert [png_size(data) for data in image_bytes(result)] == [(1536, 1024)] * 2
    assert result.usage is not None
    input_tokens, output_tokens = result.usage.input_tokens or 0, result.usage.output_tokens or 0
    assert output_tokens == 2 * 408  # two low-quality landscape images, as FakeRelay bills them
    assert result.usage.total_tokens == input_tokens + output_tokens


@both
@pytest.mark.vcr
@pytest.mark.emulator_only
async def test_images_api_streamed_generation_reports_previews(
    relay: RelayTarget, asynchronous: bool
) -> None:
    updates: list[GenerationProgress] = []
    client = client_for(relay, GPT_IMAGE, stream=True, partial_images=2)
    result = await call(client, asynchronous, quality="medium", on_progress=updates.append)
    previews = [update for update in updates if update.preview_b64]
    assert len(previews) == 2
    assert all(base64.b64decode(update.preview_b64 or "").startswith(b"\x89PNG") for update in previews)
    assert updates[-1].stage == "done"
    assert [png_size(data) for data in image_bytes(result)] == [(1024, 1024)]
    assert result.usage is not None and result.usage.output_tokens


@both
@pytest.mark.vcr
@pytest.mark.emulator_only
async def test_images_api_output_format_is_kept(
    relay: RelayTarget, asynchronous: bool, tmp_path: Path
) -> None:
    client = client_for(relay, GPT_IMAGE, save_dir=tmp_path)
    result = await call(client, asynchronous, output_format="jpeg", output_compression=60)
    (image,) = result.images
    assert image.path is not None and image.path.suffix == ".jpg"
    assert image.path.read_bytes().startswith(b"\xff\xd8\xff")


@both
@pytest.mark.vcr
@pytest.mark.emulator_only
async def test_images_api_edit_sends_the_images_and_the_mask(relay: RelayTarget, asynchronous: bool) -> None:
    client = client_for(relay, GPT_IMAGE)
    result = await call(client, asynchronous, prompt="Add a hat", image_urls=[PNG_URL, PNG_URL], mask=PNG_URL)
    assert len(result.images) == 1
    assert result.usage is not None and result.usage.input_image_tokens


@both
@pytest.mark.vcr
@pytest.mark.emulator_only
async def test_images_api_streamed_edit(relay: RelayTarget, asynchronous: bool) -> None:
    updates: list[GenerationProgress] = []
    client = client_for(relay, GPT_IMAGE, stream=True, partial_images=1)
    result = await call(
        client, asynchronous, prompt="Add a hat", image_urls=[PNG_URL], on_progress=updates.append
    )
    assert [update.text for update in updates if update.preview_b64] == ["partial image 1"]
    assert len(result.images) == 1


@both
@pytest.mark.vcr
@pytest.mark.emulator_only
async def test_dall_e_3_answers_links_with_revised_prompts(relay: RelayTarget, asynchronous: bool) -> None:
    client = client_for(relay, "dall-e-3")
    result = await call(client, asynchronous, size="1792x1024", quality="hd", style="natural")
    (image,) = result.images
    assert image.url and image.url.endswith(".png") and "1792x1024" in image.url
    assert image.revised_prompt and "A cat" in image.revised_prompt


# --- Chat gateways (message.images, delta.images), replayed ---


@both
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.vcr
@pytest.mark.emulator_only
@pytest.mark.relay_profile("gateway")
async def test_gateway_images_in_the_message(relay: RelayTarget, asynchronous: bool, stream: bool) -> None:
    client = client_for(relay, GEMINI, stream=stream)
    result = await call(client, asynchronous, aspect_ratio="16:9")
    assert [png_size(data) for data in image_bytes(result)] == [(1344, 768)]
    assert result.model == GEMINI
    assert result.usage is not None and result.usage.output_tokens


# --- What was sent, on a live FakeRelay ---


def test_gateway_requests_ask_for_images_and_the_aspect_ratio() -> None:
    with FakeRelay(profile="gateway") as relay:
        with client_for(RelayTarget(relay.base_url, relay.api_key), GEMINI) as client:
            client.generate("A cat", aspect_ratio="9:16")
        body = relay.requests[-1].json
    assert body["modalities"] == ["image", "text"]
    assert body["image_config"] == {"aspect_ratio": "9:16"}
    assert "size" not in body


def test_a_gateway_draws_only_when_asked_for_images() -> None:
    with FakeRelay(profile="gateway") as relay:
        target = RelayTarget(relay.base_url, relay.api_key)
        with client_for(target, GEMINI) as client:
            assert client.generate("A cat").images  # the catalog asks Gemini for images
        # An unknown model is not asked for images: the gateway answers in words only.
        with client_for(target, "my-house-model") as client, pytest.raises(NoImageError):
            client.generate("A cat")


def test_options_a_model_does_not_take_are_refused_before_sending(fake_relay: FakeRelay) -> None:
    with client_for(RelayTarget(fake_relay.base_url, fake_relay.api_key), "dall-e-3") as client:
        with pytest.raises(InvalidRequestError, match="at most 1 image"):
            client.generate("A cat", n=2)
        with pytest.raises(InvalidRequestError, match="takes quality standard, hd"):
            client.generate("A cat", quality="high")
    assert fake_relay.requests == []


@both
async def test_the_tool_edits_a_saved_image_with_a_mask(
    fake_relay: FakeRelay, tmp_path: Path, asynchronous: bool
) -> None:
    tool = ImageGenerationTool(
        api_key=fake_relay.api_key,
        base_url=fake_relay.base_url,
        model=GPT_IMAGE,
        save_dir=tmp_path,
        allow_private_downloads=True,
    )
    first = await invoke(tool, asynchronous, prompt="A cat", background="transparent")
    assert first.status == "success"
    assert fake_relay.requests[-1].json["background"] == "transparent"
    saved = first.artifact.images[0].path
    mask = tmp_path / "mask.png"
    mask.write_bytes(PNG)
    edit = await invoke(tool, asynchronous, prompt="Give it a hat", image_urls=[str(saved)], mask=str(mask))
    assert edit.status == "success", edit.content
    form = fake_relay.requests[-1].form
    assert fake_relay.requests[-1].path == "/v1/images/edits"
    assert form is not None
    assert [part.name for part in form.files] == ["image[]", "mask"]
    assert form.files[0].data == saved.read_bytes()
    assert "Saved at" in str(edit.content)


async def invoke(tool: ImageGenerationTool, asynchronous: bool, **arguments: Any) -> ToolMessage:
    call = {"name": tool.name, "args": arguments, "id": "call_1", "type": "tool_call"}
    message = await tool.ainvoke(call) if asynchronous else await asyncio.to_thread(tool.invoke, call)
    assert isinstance(message, ToolMessage)
    return message


async def test_previews_reach_the_tools_progress_events(fake_relay: FakeRelay) -> None:
    tool = ImageGenerationTool(
        api_key=fake_relay.api_key,
        base_url=fake_relay.base_url,
        model=GPT_IMAGE,
        stream=True,
        partial_images=3,
    )
    call = {"name": tool.name, "args": {"prompt": "A cat"}, "id": "call_1", "type": "tool_call"}
    events = [event async for event in tool.astream_events(call, version="v2")]
    progress: list[dict[str, Any]] = [
        dict(event["data"]) for event in events if event["event"] == "on_custom_event"
    ]
    previews = [update["preview_b64"] for update in progress]
    assert len([preview for preview in previews if preview]) == 3
    await tool.client.aclose()


# --- The command line and the MCP server ---


def test_the_cli_shows_where_the_latest_preview_is(tmp_path: Path) -> None:
    display = ProgressDisplay(io.StringIO(), tmp_path)
    display.update(GenerationProgress(stage="generating", preview_b64=base64.b64encode(PNG).decode()))
    preview = tmp_path / "image-tool-preview.png"
    assert preview.read_bytes() == PNG
    assert f"preview: {preview}" in display._state
    display.update(
        GenerationProgress(stage="generating", percent=40, preview_url="https://cdn.example/p.png")
    )
    assert display._state == "generating 40%  preview: https://cdn.example/p.png"


def test_the_cli_draws_with_any_model_and_prints_the_usage(
    fake_relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", fake_relay.api_key)
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", fake_relay.base_url)
    argv = ["generate", "A cat", "--model", GPT_IMAGE, "--quality", "high", "--save", str(tmp_path), "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["usage"]["output_tokens"] > 0
    assert Path(printed["images"][0]["path"]).suffix == ".png"
    assert fake_relay.requests[-1].path == "/v1/images/generations"
    assert main(["generate", "A cat", "--model", "dall-e-3", "--quality", "high"]) == 2
    assert "takes quality standard, hd" in capsys.readouterr().err


async def test_the_mcp_server_offers_the_models_options_and_returns_the_usage(
    fake_relay: FakeRelay, tmp_path: Path
) -> None:
    pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")
    from mcp import Client

    from image_tool.mcp_server import create_server

    tool = ImageGenerationTool(
        api_key=fake_relay.api_key, base_url=fake_relay.base_url, model=GPT_IMAGE, save_dir=tmp_path
    )
    async with Client(create_server(tool)) as client:
        listing = await client.list_tools()
        result = await client.call_tool("generate_image", {"prompt": "A cat", "quality": "low"})
    await tool.client.aclose()
    (listed,) = listing.tools
    assert listed.input_schema == tool.argument_model.model_json_schema()
    assert "background" in listed.input_schema["properties"]
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["usage"]["output_tokens"] > 0
    assert "b64_json" not in result.structured_content["images"][0]
    assert any(getattr(item, "mime_type", None) == "image/png" for item in result.content)


def test_images_api_failures_are_retried_and_typed_as_on_chat(
    fake_relay: FakeRelay, quick_backoff: None
) -> None:
    fake_relay.queue(Reply.rate_limited(0.01), Reply.content_policy())
    target = RelayTarget(fake_relay.base_url, fake_relay.api_key)
    with ImageClient(
        api_key=target.api_key, base_url=target.base_url, model=GPT_IMAGE, max_retries=2
    ) as client:
        with pytest.raises(ContentPolicyError):
            client.generate("A cat")  # the 429 was retried; the refusal is not
        assert [request.path for request in fake_relay.requests] == ["/v1/images/generations"] * 2
        result = client.generate("A cat")
    assert result.attempts == 1 and len(result.images) == 1


def test_images_shown_to_the_model_keep_their_own_type(fake_relay: FakeRelay) -> None:
    tool = ImageGenerationTool(
        api_key=fake_relay.api_key, base_url=fake_relay.base_url, model=GPT_IMAGE, show_images=True
    )
    call = {
        "name": tool.name,
        "args": {"prompt": "A cat", "output_format": "jpeg"},
        "id": "c",
        "type": "tool_call",
    }
    message = tool.invoke(call)
    tool.client.close()
    assert isinstance(message, ToolMessage) and isinstance(message.content, list)
    (block,) = [block for block in message.content if isinstance(block, dict) and block["type"] == "image"]
    assert block["mime_type"] == "image/jpeg"
    assert base64.b64decode(block["base64"]).startswith(b"\xff\xd8\xff")
