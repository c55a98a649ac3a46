"""The MCP server end to end: launched on stdio by the MCP SDK's own client, against FakeRelay."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")

from mcp import Client, MCPError, StdioServerParameters
from mcp.types import CallToolResult, ImageContent, TextContent

from image_tool import ConfigurationError, GenerateImageInput, ImageGenerationTool
from image_tool.mcp_server import MCP_MISSING, create_server, main
from image_tool.testing import FakeRelay, Reply

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def server_params(relay: FakeRelay, *args: str) -> StdioServerParameters:
    """``python -m image_tool.mcp_server`` with the relay in its environment, as a client launches it."""
    env = {**os.environ, "IMAGE_TOOL_API_KEY": relay.api_key, "IMAGE_TOOL_BASE_URL": relay.base_url}
    return StdioServerParameters(command=sys.executable, args=["-m", "image_tool.mcp_server", *args], env=env)


def connect(relay: FakeRelay, *args: str) -> Client:
    return Client(server_params(relay, *args), read_timeout_seconds=30)


def text_of(result: CallToolResult) -> str:
    return "\n".join(item.text for item in result.content if isinstance(item, TextContent))


def images_of(result: CallToolResult) -> list[ImageContent]:
    return [item for item in result.content if isinstance(item, ImageContent)]


def saved_files(directory: Path) -> list[bytes]:
    return sorted(path.read_bytes() for path in directory.iterdir())


def assert_png(image: ImageContent) -> None:
    assert image.mime_type == "image/png"
    assert base64.b64decode(image.data, validate=True).startswith(PNG_SIGNATURE)


async def test_lists_and_calls_generate_image(tmp_path: Path) -> None:
    with FakeRelay() as relay:
        links = f"{relay.origin}/images/"
        async with connect(relay, "--save-dir", str(tmp_path), "--allow-private-downloads") as client:
            listing = await client.list_tools()
            result = await client.call_tool("generate_image", {"prompt": "A cat", "n": 2})

    (tool,) = listing.tools
    assert tool.name == "generate_image"
    assert tool.description == ImageGenerationTool.model_fields["description"].default
    assert tool.input_schema == GenerateImageInput.model_json_schema()
    assert tool.input_schema["required"] == ["prompt"]
    assert tool.input_schema["properties"]["size"]["enum"] == ["1024x1024", "1024x1792", "1792x1024"]

    assert not result.is_error
    text = text_of(result)
    assert text.count(links) == 2
    assert text.count("Revised prompt: A cat") == 2
    images = images_of(result)
    assert len(images) == 2
    for image in images:
        assert_png(image)
    assert sorted(base64.b64decode(image.data) for image in images) == saved_files(tmp_path)
    for answer in (listing, result):
        assert relay.api_key not in answer.model_dump_json()


async def test_refusal_is_an_error_result() -> None:
    with FakeRelay() as relay:
        relay.queue(Reply.content_policy())
        async with connect(relay) as client:
            refused = await client.call_tool("generate_image", {"prompt": "A cat"})
            invalid = await client.call_tool("generate_image", {"prompt": "A cat", "n": 9})

    assert refused.is_error
    assert "Rephrase" in text_of(refused)
    assert not images_of(refused)
    assert invalid.is_error
    assert "Invalid arguments for generate_image: n:" in text_of(invalid)
    for answer in (refused, invalid):
        assert relay.api_key not in answer.model_dump_json()


async def test_inline_image_without_save_dir() -> None:
    with FakeRelay() as relay:
        relay.queue(Reply.success(image_format="b64_json"))
        async with connect(relay) as client:
            result = await client.call_tool("generate_image", {"prompt": "A cat"})

    assert not result.is_error
    (image,) = images_of(result)
    assert_png(image)
    assert relay.api_key not in result.model_dump_json()


async def test_unknown_tool_is_a_protocol_error() -> None:
    tool = ImageGenerationTool(api_key="test-key", base_url="http://127.0.0.1:9/v1")
    async with Client(create_server(tool)) as client:  # in-process: nothing reaches the relay
        with pytest.raises(MCPError, match="Unknown tool: draw"):
            await client.call_tool("draw", {"prompt": "A cat"})


def test_main_without_relay_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("IMAGE_TOOL_API_KEY", "IMAGE_TOOL_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)

    assert main([]) == 2
    assert "IMAGE_TOOL_API_KEY" in capsys.readouterr().err


def test_main_without_mcp_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", "test-key")
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setitem(sys.modules, "mcp", None)  # what `import mcp` sees when it is not installed

    assert main([]) == 2
    assert capsys.readouterr().err.strip() == f"image-tool mcp: {MCP_MISSING}"


def test_create_server_without_mcp_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)
    tool = ImageGenerationTool(api_key="test-key", base_url="http://127.0.0.1:9/v1")

    with pytest.raises(ConfigurationError, match="needs the mcp extra"):
        create_server(tool)


async def test_extra_body_and_the_model_options_reach_the_relay() -> None:
    extra = '{"provider": {"order": ["black-forest-labs"]}, "output_quality": 90}'
    with FakeRelay() as relay:
        model = "black-forest-labs/flux.2-pro"
        async with connect(relay, "--model", model, "--extra-body", extra) as client:
            listing = await client.list_tools()
            result = await client.call_tool("generate_image", {"prompt": "A cat", "seed": 42})

    (tool,) = listing.tools
    assert "seed" in tool.input_schema["properties"]
    assert not result.is_error
    body = relay.requests[-1].json
    assert (body["model"], body["seed"], body["output_quality"]) == (model, 42, 90)
    assert body["provider"] == {"order": ["black-forest-labs"]}


@pytest.mark.parametrize(
    ("extra_body", "says"),
    [("{seed}", "argument --extra-body: not JSON"), ("[]", "argument --extra-body: a JSON object is needed")],
)
def test_main_refuses_extra_body_that_is_not_a_json_object(
    extra_body: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--extra-body", extra_body])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_main_refuses_extra_body_that_sets_what_image_tool_sets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", "test-key")
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(["--extra-body", '{"n": 2}']) == 2
    assert "extra_body may not set 'n'" in capsys.readouterr().err
