"""What a generation returns, and the vendor's values for its options."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ImageSize = Literal["1024x1024", "1024x1792", "1792x1024"]
"""Square, portrait or landscape, in pixels."""
ImageQuality = Literal["standard", "hd"]
ImageStyle = Literal["vivid", "natural"]

DEFAULT_MODEL = "gpt-4o-image"
DEFAULT_N = 1
DEFAULT_SIZE: ImageSize = "1024x1024"
DEFAULT_QUALITY: ImageQuality = "standard"
DEFAULT_STYLE: ImageStyle = "vivid"
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
