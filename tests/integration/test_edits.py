"""Edits and references (image_urls), and showing the images to a vision model."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from image_tool import ImageGenerationTool, ReferenceImageError
from image_tool._io.references import reference_urls
from image_tool.testing import FakeRelay, png_image

from ..helpers import tool_call


def invoke(tool: ImageGenerationTool, **args: Any) -> ToolMessage:
    message = tool.invoke(tool_call(**args))
    assert isinstance(message, ToolMessage)
    return message


def sent_content(relay: FakeRelay) -> Any:
    generations = [request for request in relay.requests if request.method == "POST"]
    return generations[-1].json["messages"][0]["content"]


@pytest.fixture
def tool(fake_relay: FakeRelay, tmp_path: Path) -> Any:
    tool = ImageGenerationTool(
        api_key=fake_relay.api_key,
        base_url=fake_relay.base_url,
        save_dir=tmp_path / "saved",
        allow_private_downloads=True,
        max_retries=0,
    )
    yield tool
    tool.client.close()


def test_an_edit_sends_the_earlier_image_as_multi_part_content(
    tool: ImageGenerationTool, fake_relay: FakeRelay
) -> None:
    first = invoke(tool, prompt="A cat on a sofa")
    url = first.artifact.images[0].url
    edited = invoke(tool, prompt="Make the cat wear a red hat", image_urls=[url])
    assert edited.status == "success"
    assert sent_content(fake_relay) == [
        {"type": "text", "text": "Make the cat wear a red hat"},
        {"type": "image_url", "image_url": {"url": url}},
    ]


def test_a_saved_file_travels_as_a_data_url(tool: ImageGenerationTool, fake_relay: FakeRelay) -> None:
    saved = invoke(tool, prompt="A cat on a sofa").artifact.images[0].path
    assert invoke(tool, prompt="Now in the snow", image_urls=[str(saved)]).status == "success"
    (_, reference) = sent_content(fake_relay)
    prefix, data = reference["image_url"]["url"].split(",", 1)
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(data) == saved.read_bytes()


def test_files_outside_the_allowed_directories_are_refused(
    tool: ImageGenerationTool, fake_relay: FakeRelay, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere.png"
    secret.write_bytes(png_image(4, 4, "x"))
    for value in [str(secret), "/etc/passwd", "file:///etc/hostname"]:
        message = invoke(tool, prompt="Edit it", image_urls=[value])
        assert message.status == "error"
        assert "Invalid image_urls" in message.content
        assert "not an http(s) link, nor a file in a directory this application allows" in message.content
    assert fake_relay.requests == []  # nothing was sent


def test_reference_files_are_checked(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "big.png").write_bytes(png_image(64, 64, "big"))
    with pytest.raises(ReferenceImageError, match="not a PNG, JPEG, WebP or GIF"):
        reference_urls([str(tmp_path / "notes.png")], [tmp_path])
    with pytest.raises(ReferenceImageError, match="larger than 10 bytes"):
        reference_urls([str(tmp_path / "big.png")], [tmp_path], max_bytes=10)
    with pytest.raises(ReferenceImageError, match="no such file"):
        reference_urls([str(tmp_path / "missing.png")], [tmp_path])
    links = ["https://cdn.example/a.png", "data:image/png;base64,iVBOR"]
    assert reference_urls(links, []) == links


def test_at_most_four_references(tool: ImageGenerationTool) -> None:
    message = invoke(tool, prompt="Edit", image_urls=["https://cdn.example/a.png"] * 5)
    assert message.status == "error"
    assert "image_urls: List should have at most 4 items" in message.content


def test_show_images_returns_image_blocks(fake_relay: FakeRelay, tmp_path: Path) -> None:
    saving = ImageGenerationTool(
        api_key=fake_relay.api_key,
        base_url=fake_relay.base_url,
        save_dir=tmp_path,
        allow_private_downloads=True,
        show_images=True,
    )
    content = invoke(saving, prompt="A cat").content
    assert isinstance(content, list)
    text, block = content
    assert isinstance(text, dict)
    assert text["type"] == "text"
    assert "Saved at" in text["text"]
    assert isinstance(block, dict)
    assert block["type"] == "image"
    assert block["mime_type"] == "image/png"
    assert base64.b64decode(block["base64"]).startswith(b"\x89PNG")
    linking = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url, show_images=True)
    message = invoke(linking, prompt="A cat")
    assert message.content[1] == {"type": "image", "url": message.artifact.images[0].url}
    saving.client.close()
    linking.client.close()


def test_images_are_not_shown_by_default(tool: ImageGenerationTool) -> None:
    assert isinstance(invoke(tool, prompt="A cat").content, str)
