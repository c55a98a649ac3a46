"""What a generation returns, and the vendor's values for its options."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

ImageSize = Literal[
    "1024x1024",
    "1024x1792",
    "1792x1024",
    "1536x1024",
    "1024x1536",
    "auto",
    "2048x2048",
    "2048x1152",
    "1152x2048",
    "3840x2160",
    "2160x3840",
]
"""In pixels. DALL-E 3 and chat relays: the first three; the gpt-image models: square, the next
two and ``auto``; gpt-image-2 also the last five, and any ``WxH`` that keeps its rule
(``image_tool.catalog.CUSTOM_SIZE_RULE``; ``image_tool.catalog`` says which model takes which)."""
ImageQuality = Literal["standard", "hd", "low", "medium", "high", "auto"]
"""DALL-E 3 and chat relays: ``standard``, ``hd``; the gpt-image models: the others."""
ImageStyle = Literal["vivid", "natural"]
Background = Literal["transparent", "opaque", "auto"]
OutputFormat = Literal["png", "jpeg", "webp"]
Moderation = Literal["low", "auto"]
AspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
"""The shape chat gateways draw (``image_config.aspect_ratio``)."""
ImageResolution = Literal["1K", "2K", "4K"]
"""The resolution Gemini 3 image models draw at (``image_config.image_size``)."""
OPTION_VALUES: dict[str, object] = {
    "size": ImageSize,
    "quality": ImageQuality,
    "style": ImageStyle,
    "background": Background,
    "output_format": OutputFormat,
    "moderation": Moderation,
    "aspect_ratio": AspectRatio,
    "image_size": ImageResolution,
}
"""Each drawing option with a set of values, and the ``Literal`` of those values."""

DEFAULT_MODEL = "gpt-4o-image"
# The vendor's documented defaults for gpt-4o-image on chat relays (image_tool.catalog.CHAT_RELAY).
DEFAULT_N = 1
DEFAULT_SIZE: Final = "1024x1024"
DEFAULT_QUALITY: Final = "standard"
DEFAULT_STYLE: Final = "vivid"
MAX_PROMPT_LENGTH = 4000
MAX_IMAGES = 4
"""The most images one call asks for."""
MAX_IMAGES_READ = 1000
"""The most images read from one answer: the client keeps only the ``n`` asked for, and an answer
of a million links must not become a million objects."""


class GeneratedImage(BaseModel):
    """One image of a generation: where to fetch it, or the image itself."""

    model_config = ConfigDict(defer_build=True)  # built by the first instance, not the import

    url: str | None = None
    """Where the relay serves the image. Such links expire: save the image in time."""
    b64_json: str | None = Field(default=None, repr=False)
    """The image itself, base64-encoded, when the relay sends it inline."""
    revised_prompt: str | None = None
    """The prompt the relay actually drew, when it rewrote the one it was given."""
    path: Path | None = None
    """Where a copy of the image was saved on disk (with ``save_dir`` set)."""
    save_error: str | None = None
    """Why the image could not be saved, when it could not; its ``url`` is still here."""


class Usage(BaseModel):
    """What the relay says the generation used, when it says: tokens, and images where counted."""

    model_config = ConfigDict(defer_build=True)

    input_tokens: int | None = None
    """Tokens of the prompt (and of the images to edit); a chat answer's ``prompt_tokens``."""
    output_tokens: int | None = None
    """Tokens of the answer, images included; a chat answer's ``completion_tokens``."""
    total_tokens: int | None = None
    input_image_tokens: int | None = None
    """Of ``input_tokens``, those of the images to edit."""
    output_image_tokens: int | None = None
    """Of ``output_tokens``, those of the images drawn."""
    images: int | None = None
    """Images billed, when the relay counts them."""


class ImageGenerationResult(BaseModel):
    """Every image of one generation request, in the order the relay listed them."""

    model_config = ConfigDict(defer_build=True)  # built by the first instance, not the import

    created: int | None = None
    """Unix time at which the relay created the images, when it says."""
    model: str
    """The model that answered (a relay may answer with another model than the one asked)."""
    images: list[GeneratedImage]
    attempts: int = 1
    """How many requests it took (more than one when failures were retried)."""
    dropped_images: int = 0
    """Images the relay sent beyond the ``n`` asked for: left out of ``images``, never saved."""
    usage: Usage | None = None
    """Tokens (and images) the relay says it used, when it says."""
    target: str | None = None
    """Which relay answered, by its name, when the client has several (``fallbacks``)."""
    cost: float | None = None
    """What the generation cost, from the answering relay's prices, when they are set."""
    task_id: str | None = None
    """The relay's task, for a model drawn as one (Midjourney): what an action on it names."""
    actions: list[str] = Field(default_factory=list)
    """What may be done with the images next (``ImageClient.run_action``): ``U1``-``U4`` upscale
    one image of a Midjourney grid, ``V1``-``V4`` draw variations of one, ``reroll`` draws again."""

    @property
    def urls(self) -> list[str]:
        """The URLs of the images that have one."""
        return [image.url for image in self.images if image.url]


ProgressStage = Literal["queued", "generating", "done", "saving"]
"""The relay's stages, then ``saving`` while image-tool downloads the images (with ``save_dir``)."""


class GenerationProgress(BaseModel):
    """How far a streamed generation has come, as the relay reports it."""

    model_config = ConfigDict(defer_build=True)  # built by the first instance, not the import

    stage: ProgressStage
    percent: int | None = None
    """0 to 100, when the relay gives a figure."""
    text: str = ""
    """The relay's own progress line, e.g. ``🏃 进度 57``."""
    preview_url: str | None = None
    """A link to the image as drawn so far, when the relay's progress line gives one."""
    preview_b64: str | None = Field(default=None, repr=False)
    """The image as drawn so far, base64-encoded (the Images API's partial images)."""
