"""Requests per model family: the endpoint, the body, and options refused before anything is sent."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from image_tool._wire.request import build_request
from image_tool.catalog import (
    CHAT_RELAY,
    DALL_E_3,
    GEMINI_2_5_IMAGE,
    GEMINI_3_IMAGE,
    GPT_IMAGE,
    IMAGE_ONLY_GATEWAY,
    UNKNOWN,
    ModelFamily,
    family_of,
)
from image_tool.errors import InvalidRequestError
from image_tool.testing import png_image

NO_OPTIONS: dict[str, Any] = {}
PNG = png_image(8, 8, "0123456789abcdef")
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
JPEG_URL = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(32)).decode()


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-image", CHAT_RELAY),
        ("gpt-4o-image-vip", CHAT_RELAY),
        ("sora_image", CHAT_RELAY),
        ("gpt-image-1", GPT_IMAGE),
        ("openai/gpt-image-1-mini", GPT_IMAGE),
        ("gpt-image-1.5", GPT_IMAGE),
        ("dall-e-3", DALL_E_3),
        ("google/gemini-2.5-flash-image", GEMINI_2_5_IMAGE),
        ("google/gemini-3-pro-image-preview", GEMINI_3_IMAGE),
        ("black-forest-labs/flux.2-pro", IMAGE_ONLY_GATEWAY),
        ("bytedance-seed/seedream-4.5", IMAGE_ONLY_GATEWAY),
        ("my-house-model", UNKNOWN),
    ],
)
def test_each_model_has_its_family(model: str, family: ModelFamily) -> None:
    assert family_of(model) is family


def test_the_endpoint_can_be_overridden_keeping_only_the_common_options() -> None:
    family = family_of("gpt-image-1", "chat")
    assert family.api == "chat"
    assert not family.takes("quality")
    assert family_of("gpt-image-1", "images") is GPT_IMAGE


def test_chat_relay_keeps_the_vendor_body_and_defaults() -> None:
    request = build_request("gpt-4o-image", CHAT_RELAY, "A cat", n=2, options={"style": "natural"}, user="u1")
    assert request.path == "/chat/completions"
    assert request.json == {
        "model": "gpt-4o-image",
        "messages": [{"role": "user", "content": "A cat"}],
        "n": 2,
        "size": "1024x1024",
        "quality": "standard",
        "style": "natural",
        "user": "u1",
    }


def test_gateways_ask_for_images_and_the_aspect_ratio() -> None:
    request = build_request(
        "google/gemini-2.5-flash-image",
        GEMINI_2_5_IMAGE,
        "A cat",
        n=1,
        options={"aspect_ratio": "16:9"},
        stream=True,
    )
    assert request.json is not None
    assert request.json["modalities"] == ["image", "text"]
    assert request.json["image_config"] == {"aspect_ratio": "16:9"}
    assert request.json["stream"] is True
    assert "size" not in request.json and "aspect_ratio" not in request.json
    flux = build_request("black-forest-labs/flux.2-pro", IMAGE_ONLY_GATEWAY, "A cat", n=1, options=NO_OPTIONS)
    assert flux.json is not None and flux.json["modalities"] == ["image"]
    assert "image_config" not in flux.json


def test_unknown_models_get_only_the_common_fields() -> None:
    request = build_request("my-house-model", UNKNOWN, "A cat", n=1, options=NO_OPTIONS, image_urls=[PNG_URL])
    assert request.json is not None
    assert set(request.json) == {"model", "messages", "n"}
    assert request.json["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": PNG_URL}}


def test_images_api_generation_is_json_with_the_options_given() -> None:
    options = {"size": "1536x1024", "quality": "high", "background": "transparent", "output_format": "webp"}
    request = build_request(
        "gpt-image-1",
        GPT_IMAGE,
        "A cat",
        n=2,
        options={**options, "output_compression": 80, "style": None},
        stream=True,
        partial_images=3,
    )
    assert request.path == "/images/generations"
    assert request.json == {
        "model": "gpt-image-1",
        "prompt": "A cat",
        "n": 2,
        **options,
        "output_compression": 80,
        "stream": True,
        "partial_images": 3,
    }
    assert request.body() == {"json": request.json}


def test_images_api_edit_is_multipart_with_each_image_and_the_mask() -> None:
    request = build_request(
        "gpt-image-1",
        GPT_IMAGE,
        "Add a hat",
        n=1,
        options={"quality": "low"},
        image_urls=[PNG_URL, JPEG_URL],
        mask=PNG_URL,
        stream=True,
        partial_images=1,
    )
    assert request.path == "/images/edits"
    assert request.json is None
    assert request.fields == {
        "model": "gpt-image-1",
        "prompt": "Add a hat",
        "n": "1",
        "quality": "low",
        "stream": "true",
        "partial_images": "1",
    }
    assert [(name, file[0], file[2]) for name, file in request.files] == [
        ("image[]", "image-1.png", "image/png"),
        ("image[]", "image-2.jpg", "image/jpeg"),
        ("mask", "mask.png", "image/png"),
    ]
    assert request.files[0][1][1] == PNG
    assert set(request.body()) == {"data", "files"}


@pytest.mark.parametrize(
    ("model", "family", "arguments", "says"),
    [
        ("gpt-image-1", GPT_IMAGE, {"options": {"size": "1792x1024"}}, "takes size 1024x1024, 1536x1024"),
        ("gpt-image-1", GPT_IMAGE, {"options": {"style": "vivid"}}, "does not take style"),
        ("gpt-image-1", GPT_IMAGE, {"options": {"output_compression": 101}}, "0 to 100"),
        ("dall-e-3", DALL_E_3, {"n": 2}, "at most 1 image"),
        ("dall-e-3", DALL_E_3, {"image_urls": [PNG_URL]}, "cannot edit images"),
        ("dall-e-3", DALL_E_3, {"options": {"quality": "high"}}, "takes quality standard, hd"),
        ("gpt-4o-image", CHAT_RELAY, {"mask": PNG_URL, "image_urls": [PNG_URL]}, "takes no mask"),
        ("gpt-4o-image", CHAT_RELAY, {"options": {"aspect_ratio": "16:9"}}, "does not take aspect_ratio"),
        ("gpt-image-1", GPT_IMAGE, {"mask": PNG_URL}, "needs the image it applies to"),
        ("gpt-image-1", GPT_IMAGE, {"image_urls": [PNG_URL], "mask": JPEG_URL}, "mask must be a PNG"),
        ("gpt-image-1", GPT_IMAGE, {"image_urls": ["https://host.example/a.png"]}, "not a link"),
        ("gpt-image-1", GPT_IMAGE, {"image_urls": ["data:image/png;base64,@@@"]}, "not a base64 PNG"),
        ("gpt-image-1", GPT_IMAGE, {"image_urls": [PNG_URL] * 17}, "at most 16 images"),
        ("my-house-model", UNKNOWN, {"options": {"size": "1024x1024"}}, "does not take size"),
        ("gpt-image-1", GPT_IMAGE, {"prompt": "  "}, "The prompt is empty"),
        ("gpt-image-1", GPT_IMAGE, {"n": 0}, "1 or more"),
    ],
)
def test_what_a_model_cannot_take_is_refused_with_what_it_can(
    model: str, family: ModelFamily, arguments: dict[str, Any], says: str
) -> None:
    call: dict[str, Any] = {"prompt": "A cat", "n": 1, "options": NO_OPTIONS, **arguments}
    prompt = call.pop("prompt")
    with pytest.raises(InvalidRequestError, match=says):
        build_request(model, family, prompt, **call)
