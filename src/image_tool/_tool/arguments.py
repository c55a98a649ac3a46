"""The arguments the model sees: the vendor's ``GenerateImageInput`` for chat relays, and for
every other family of models a schema built from what it takes (``image_tool.catalog``)."""

# No `from __future__ import annotations`: the schemas' annotations stay plain, as LangChain walks
# them on every call.
import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..catalog import CHAT_RELAY, MAX_NEGATIVE_PROMPT, ModelFamily
from ..models import (
    DEFAULT_N,
    DEFAULT_QUALITY,
    DEFAULT_SIZE,
    DEFAULT_STYLE,
    MAX_IMAGES,
    MAX_PROMPT_LENGTH,
    ImageStyle,
)

MAX_REFERENCES = 4
"""The most earlier images one call draws from."""
VendorSize = Literal["1024x1024", "1024x1792", "1792x1024"]
VendorQuality = Literal["standard", "hd"]


class GenerateImageInput(BaseModel):
    """Arguments of ``generate_image``."""

    # Plain annotations: LangChain walks them on every call.
    # extra="forbid": an argument the model invents (a style gpt-image does not take) comes back
    # to it as an error it can act on, rather than being dropped unseen. Built when defined, not
    # deferred: langchain-core before 1.6 reads a deferred schema as one without fields.
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_LENGTH,
        description=(
            "A detailed description of the image to draw: subject, setting, composition, style, "
            "lighting and colours, in plain sentences. Include any text that must appear in the "
            f"image in quotes. 1 to {MAX_PROMPT_LENGTH} characters."
        ),
    )
    n: int = Field(
        default=DEFAULT_N,
        ge=1,
        le=MAX_IMAGES,
        description=(
            f"How many images to generate, 1 to {MAX_IMAGES}. Use 1 unless the user asks for "
            "several variations to choose from."
        ),
    )
    size: VendorSize = Field(
        default=DEFAULT_SIZE,
        description=(
            "Image size in pixels: '1024x1024' square (default); '1024x1792' portrait, for tall "
            "subjects, posters and phone wallpapers; '1792x1024' landscape, for scenery and banners."
        ),
    )
    quality: VendorQuality = Field(
        default=DEFAULT_QUALITY,
        description=(
            "'standard' (default, faster) or 'hd' (finer detail, slower). Choose 'hd' only when "
            "the user asks for high quality or fine detail."
        ),
    )
    style: ImageStyle = Field(
        default=DEFAULT_STYLE,
        description=(
            "'vivid' (default: dramatic, hyper-real colours) or 'natural' (subdued, realistic, "
            "photographic). Choose 'natural' for photos and realistic scenes."
        ),
    )
    image_urls: list[str] | None = Field(
        default=None,
        max_length=MAX_REFERENCES,
        description=(
            "Earlier images to edit or draw from: the ids this tool gave them (such as 'img_1'), "
            "else their URLs or the 'Saved at' paths it reported. Use it when the user asks to "
            "change, extend or restyle an image from earlier in the conversation, and describe the "
            "change in the prompt. Leave it out for a new image."
        ),
    )


_DESCRIPTIONS: dict[str, dict[str, str | None]] = {
    "size": {
        "2048x2048": (
            "Image size in pixels: '1024x1024' square, '1536x1024' landscape, '1024x1536' portrait, "
            "'2048x2048', '2048x1152' (16:9) or '1152x2048' (9:16) for more detail, '3840x2160' or "
            "'2160x3840' for 4K (slow and dear), or 'auto' (default: the model picks). Choose a "
            "large size only when the user asks for high resolution or print."
        ),
        "1536x1024": (
            "Image size in pixels: '1024x1024' square, '1536x1024' landscape (scenery, banners), "
            "'1024x1536' portrait (posters, tall subjects), or 'auto' (default: the model picks)."
        ),
        "1792x1024": GenerateImageInput.model_fields["size"].description,
    },
    "quality": {
        "low": (
            "'low' (quick drafts), 'medium', 'high' (fine detail and legible text, slower and "
            "dearer) or 'auto' (default). Choose 'high' only when the user asks for detail."
        ),
        "hd": GenerateImageInput.model_fields["quality"].description,
    },
    "style": {"vivid": GenerateImageInput.model_fields["style"].description},
    "background": {
        "transparent": (
            "'transparent' for a cut-out with no background (logos, icons, stickers; png or webp "
            "only), 'opaque', or 'auto' (default)."
        ),
        "opaque": "'opaque' or 'auto' (default). This model draws no transparent backgrounds.",
    },
    "output_format": {
        "png": (
            "'png' (default, lossless), 'jpeg' (smaller, for photos) or 'webp' (smaller, keeps transparency)."
        )
    },
    "aspect_ratio": {
        "1:1": (
            "The image's shape: '1:1' square (default); '16:9' or '21:9' wide (scenery, banners); "
            "'9:16' tall (phone wallpapers, stories); '4:3', '3:2', '5:4' landscape; '3:4', '2:3', "
            "'4:5' portrait."
        )
    },
    "image_size": {
        "1K": (
            "The resolution: '1K' (default, about 1024 pixels a side), '2K', or '4K' (sharpest, "
            "slower and dearer). Choose '2K' or '4K' only when the user asks for high resolution or print."
        )
    },
}
"""What each option means for the model, by option and by one value that tells the family."""
SEED = (
    "A whole number that makes the drawing repeatable: the same prompt and seed draw much the same "
    "image. Leave it out unless the user gives a seed or asks to redraw one with a small change."
)
NEGATIVE_PROMPT = (
    "What must not appear in the image, as a few words or a list (e.g. 'text, watermark, people'). "
    "Leave it out unless the user says what to avoid."
)


MIDJOURNEY_ACTIONS = ("U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "reroll")
_TASK_ACTION_FIELDS: dict[str, Any] = {
    "task_id": (
        str | None,
        Field(
            default=None,
            description=(
                "With action: the grid to act on, by the Midjourney task id or the image id (such as "
                "'img_1') this tool reported."
            ),
        ),
    ),
    "action": (
        Literal[MIDJOURNEY_ACTIONS] | None,
        Field(
            default=None,
            description=(
                "To act on a grid of four this tool drew (with its task_id) instead of drawing a new one: "
                "'U1' to 'U4' upscale one image (numbered left to right, top to bottom), 'V1' to 'V4' "
                "draw variations of one, 'reroll' draws the grid again. Leave it out for a new image."
            ),
        ),
    ),
}


@functools.lru_cache(maxsize=32)
def arguments_for(family: ModelFamily) -> type[BaseModel]:
    """The argument schema of ``generate_image`` for a model of ``family``."""
    if family is CHAT_RELAY:
        return GenerateImageInput
    fields: dict[str, Any] = {"prompt": (str, GenerateImageInput.model_fields["prompt"])}
    if family.max_n > 1:
        most = min(family.max_n, MAX_IMAGES)
        description = f"How many images to generate, 1 to {most}. Use 1 unless the user asks for variations."
        fields["n"] = (int, Field(default=DEFAULT_N, ge=1, le=most, description=description))
    for option, by_value in _DESCRIPTIONS.items():
        choices = family.choices(option)
        if choices:
            meaning = next(text for value, text in by_value.items() if value in choices)
            fields[option] = (Literal[choices] | None, Field(default=None, description=meaning))
    if family.max_seed is not None:
        fields["seed"] = (int | None, Field(default=None, ge=0, le=family.max_seed, description=SEED))
    if family.negative_prompt:
        text = Field(default=None, min_length=1, max_length=MAX_NEGATIVE_PROMPT, description=NEGATIVE_PROMPT)
        fields["negative_prompt"] = (str | None, text)
    if family.edits:
        fields["image_urls"] = (list[str] | None, GenerateImageInput.model_fields["image_urls"])
    if family.mask:
        description = (
            "Only with image_urls: a PNG mask for the first image (its id, URL or 'Saved at' path), of "
            "the same size, transparent where the image should change. Leave it out to let the model choose."
        )
        fields["mask"] = (str | None, Field(default=None, description=description))
    if family.api == "midjourney":
        fields |= _TASK_ACTION_FIELDS
    config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    return create_model("GenerateImageInput", __config__=config, __doc__=GenerateImageInput.__doc__, **fields)
