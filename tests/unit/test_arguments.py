"""The arguments the model sees follow the model: its sizes, qualities and options, no others."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from pydantic import SecretStr

from image_tool import GenerateImageInput, ImageGenerationTool


def tool_for(model: str, **settings: Any) -> ImageGenerationTool:
    return ImageGenerationTool(api_key="k", base_url="http://127.0.0.1:9/v1", model=model, **settings)


def schema(model: str, **settings: Any) -> dict[str, Any]:
    return tool_for(model, **settings).tool_call_schema.model_json_schema()  # type: ignore[union-attr]


def enum(properties: dict[str, Any], name: str) -> list[str]:
    field = properties[name]
    return next(option["enum"] for option in field["anyOf"] if "enum" in option)


def test_gpt_4o_image_keeps_the_vendor_schema_and_defaults() -> None:
    tool = tool_for("gpt-4o-image")
    assert tool.args_schema is GenerateImageInput
    properties = schema("gpt-4o-image")["properties"]
    assert properties["size"]["enum"] == ["1024x1024", "1024x1792", "1792x1024"]
    assert properties["size"]["default"] == "1024x1024"
    assert properties["quality"]["enum"] == ["standard", "hd"]


def test_gpt_image_offers_its_sizes_qualities_background_format_and_a_mask() -> None:
    properties = schema("gpt-image-1")["properties"]
    assert set(properties) == {
        "prompt",
        "n",
        "size",
        "quality",
        "background",
        "output_format",
        "image_urls",
        "mask",
    }
    assert enum(properties, "size") == ["1024x1024", "1536x1024", "1024x1536", "auto"]
    assert enum(properties, "quality") == ["low", "medium", "high", "auto"]
    assert enum(properties, "background") == ["transparent", "opaque", "auto"]
    assert "transparent" in properties["background"]["description"]
    assert "'1536x1024' landscape" in properties["size"]["description"]
    assert properties["n"]["maximum"] == 4


def test_dall_e_3_offers_one_image_and_no_edits() -> None:
    properties = schema("dall-e-3")["properties"]
    assert set(properties) == {"prompt", "size", "quality", "style"}
    assert enum(properties, "size") == ["1024x1024", "1792x1024", "1024x1792"]


def test_gateway_models_offer_the_aspect_ratio() -> None:
    properties = schema("google/gemini-2.5-flash-image")["properties"]
    assert set(properties) == {"prompt", "n", "aspect_ratio", "image_urls"}
    assert "16:9" in enum(properties, "aspect_ratio")


def test_gpt_image_2_offers_its_named_sizes_and_no_transparent_background() -> None:
    properties = schema("gpt-image-2")["properties"]
    assert set(properties) == {
        "prompt",
        "n",
        "size",
        "quality",
        "background",
        "output_format",
        "image_urls",
        "mask",
    }
    sizes = enum(properties, "size")
    assert sizes[0] == "auto" and {"2048x1152", "3840x2160", "2160x3840"} <= set(sizes)
    assert all(size in properties["size"]["description"] for size in sizes)
    assert enum(properties, "quality") == ["low", "medium", "high", "auto"]
    assert enum(properties, "background") == ["opaque", "auto"]
    assert "no transparent" in properties["background"]["description"]


def test_gemini_3_offers_the_image_size_and_gemini_2_5_does_not() -> None:
    properties = schema("google/gemini-3-pro-image-preview")["properties"]
    assert set(properties) == {"prompt", "n", "aspect_ratio", "image_size", "image_urls"}
    assert enum(properties, "image_size") == ["1K", "2K", "4K"]
    assert "'4K'" in properties["image_size"]["description"]
    assert "image_size" not in schema("nano-banana")["properties"]
    assert "image_size" in schema("nano-banana-pro")["properties"]


def test_flux_offers_a_seed_and_midjourney_a_seed_and_a_negative_prompt() -> None:
    flux = schema("black-forest-labs/flux.2-pro")["properties"]
    assert set(flux) == {"prompt", "n", "aspect_ratio", "seed", "image_urls"}
    seed = next(option for option in flux["seed"]["anyOf"] if option.get("type") == "integer")
    assert (seed["minimum"], seed["maximum"]) == (0, 2**31 - 1)
    assert "repeatable" in flux["seed"]["description"]
    midjourney = schema("mj_imagine")["properties"]
    assert {"seed", "negative_prompt"} <= set(midjourney)
    text = next(option for option in midjourney["negative_prompt"]["anyOf"] if option.get("type") == "string")
    assert (text["minLength"], text["maxLength"]) == (1, 1000)
    assert "seed" not in schema("gpt-image-2")["properties"]


def test_an_unknown_model_gets_the_common_subset() -> None:
    assert set(schema("my-house-model")["properties"]) == {"prompt", "n", "image_urls"}
    assert set(schema("gpt-image-1", api="chat")["properties"]) == {"prompt", "n", "image_urls"}


@pytest.mark.parametrize(
    "model", ["gpt-4o-image", "gpt-image-1", "dall-e-3", "google/gemini-2.5-flash-image", "my-house-model"]
)
def test_a_chat_model_binding_the_tool_offers_the_prompt(model: str) -> None:
    """What a chat model sends the provider, on every langchain-core the bounds allow (before 1.6,
    langchain-core read a schema built lazily as one without fields)."""
    from langchain_openai import ChatOpenAI

    bound = ChatOpenAI(api_key=SecretStr("k"), base_url="http://127.0.0.1:9/v1").bind_tools([tool_for(model)])
    (function,) = [tool["function"] for tool in bound.kwargs["tools"]]  # type: ignore[attr-defined]
    assert function["name"] == "generate_image"
    assert function["parameters"]["required"] == ["prompt"]
    assert function["parameters"]["properties"]["prompt"]["maxLength"] == 4000


def test_a_schema_given_by_the_developer_is_kept() -> None:
    assert tool_for("gpt-image-1", args_schema=GenerateImageInput).args_schema is GenerateImageInput


@pytest.mark.parametrize(
    ("model", "arguments", "says"),
    [
        ("gpt-image-1", {"prompt": "A cat", "size": "1792x1024"}, "size: Input should be '1024x1024'"),
        ("gpt-image-1", {"prompt": "A cat", "style": "vivid"}, "style: Extra inputs"),
        ("dall-e-3", {"prompt": "A cat", "mask": "m.png"}, "mask: Extra inputs"),
        ("gpt-image-2", {"prompt": "A cat", "background": "transparent"}, "background: Input should be"),
        ("black-forest-labs/flux.2-pro", {"prompt": "A cat", "seed": -1}, "seed: Input should be greater"),
        (
            "google/gemini-2.5-flash-image",
            {"prompt": "A cat", "image_size": "2K"},
            "image_size: Extra inputs",
        ),
    ],
)
def test_arguments_the_model_does_not_take_come_back_as_advice(
    model: str, arguments: dict[str, Any], says: str
) -> None:
    tool = tool_for(model)
    message = tool.invoke({"name": tool.name, "args": arguments, "id": "call_1", "type": "tool_call"})
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert says in str(message.content)
