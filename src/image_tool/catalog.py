"""The image models image-tool knows: which endpoint draws them and which options each takes.

A model is matched by its name (lower-cased, any ``provider/`` prefix kept); an unknown model is
drawn on the chat endpoint with only the options every relay takes (the prompt, ``n`` and the
images to edit). ``ImageClient(api=...)`` overrides the endpoint.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Literal, get_args

from .models import DEFAULT_QUALITY, DEFAULT_SIZE, DEFAULT_STYLE, AspectRatio

Api = Literal["chat", "images", "midjourney"]
"""``chat``: ``POST /chat/completions``; ``images``: ``POST /images/generations`` (and
``/images/edits``); ``midjourney``: a task submitted to ``/mj/submit/imagine`` at the relay's root,
then polled."""

OPTION_NAMES = (
    "size",
    "quality",
    "style",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "aspect_ratio",
)
"""Every drawing option a model may take, beside the prompt, ``n``, the images to edit and the mask."""

GATEWAY_ASPECT_RATIOS: tuple[str, ...] = get_args(AspectRatio)


@dataclass(frozen=True, eq=False)  # compared (and cached) by identity
class ModelFamily:
    """What one family of models takes. An empty tuple of choices: the option is not sent."""

    name: str
    api: Api
    sizes: tuple[str, ...] = ()
    qualities: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ()
    moderations: tuple[str, ...] = ()
    aspect_ratios: tuple[str, ...] = ()
    compression: bool = False
    """Takes ``output_compression`` (0-100, for JPEG and WebP)."""
    modalities: tuple[str, ...] = ()
    """Sent as ``modalities`` with a chat request: gateways draw only when asked so."""
    edits: bool = True
    """Takes images to edit or draw from."""
    mask: bool = False
    """Takes a mask: a PNG whose transparent pixels mark where to draw."""
    max_n: int = 4
    partial_images: bool = False
    """Streams partial images (previews) while drawing."""
    defaults: dict[str, str] = field(default_factory=dict)
    """Values sent when the caller gives none (the vendor's documented defaults)."""

    def choices(self, option: str) -> tuple[str, ...]:
        """The values ``option`` may take; empty when the family does not take it."""
        return {
            "size": self.sizes,
            "quality": self.qualities,
            "style": self.styles,
            "background": self.backgrounds,
            "output_format": self.output_formats,
            "moderation": self.moderations,
            "aspect_ratio": self.aspect_ratios,
        }.get(option, ())

    def takes(self, option: str) -> bool:
        return self.compression if option == "output_compression" else bool(self.choices(option))


DALL_E_3 = ModelFamily(
    "dall-e-3",
    "images",
    sizes=("1024x1024", "1792x1024", "1024x1792"),
    qualities=("standard", "hd"),
    styles=("vivid", "natural"),
    edits=False,
    max_n=1,
)
CHAT_RELAY = dataclasses.replace(
    DALL_E_3,  # the vendor's document of gpt-4o-image on chat relays promises DALL-E 3's options
    name="gpt-4o-image on a chat relay",
    api="chat",
    edits=True,
    max_n=4,
    defaults={"size": DEFAULT_SIZE, "quality": DEFAULT_QUALITY, "style": DEFAULT_STYLE},
)
GPT_IMAGE = ModelFamily(
    "gpt-image",
    "images",
    sizes=("1024x1024", "1536x1024", "1024x1536", "auto"),
    qualities=("low", "medium", "high", "auto"),
    backgrounds=("transparent", "opaque", "auto"),
    output_formats=("png", "jpeg", "webp"),
    moderations=("low", "auto"),
    compression=True,
    mask=True,
    max_n=10,
    partial_images=True,
)
GEMINI_IMAGE = ModelFamily(
    "Gemini image models on a chat gateway",
    "chat",
    aspect_ratios=GATEWAY_ASPECT_RATIOS,
    modalities=("image", "text"),
)
IMAGE_ONLY_GATEWAY = ModelFamily(
    "image-only models on a chat gateway (FLUX, Seedream, Sourceful)",
    "chat",
    aspect_ratios=GATEWAY_ASPECT_RATIOS,
    modalities=("image",),
)
MIDJOURNEY = ModelFamily(
    "Midjourney through a relay's /mj routes (new-api, midjourney-proxy)",
    "midjourney",
    max_n=1,  # one task draws a grid of four: one image
)
UNKNOWN = ModelFamily("an unknown model (the options every relay takes)", "chat")

_MATCHES: tuple[tuple[tuple[str, ...], ModelFamily], ...] = (
    (("gpt-image",), GPT_IMAGE),
    (("dall-e-3",), DALL_E_3),
    (("gpt-4o-image", "sora_image", "sora-image"), CHAT_RELAY),
    (("gemini-2.5-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-image", "nano-banana"), GEMINI_IMAGE),
    (("flux", "seedream", "sourceful", "riverflow"), IMAGE_ONLY_GATEWAY),
    (("mj_", "midjourney", "niji"), MIDJOURNEY),  # new-api's model names: mj_imagine, mj_upscale...
)


@functools.lru_cache(maxsize=256)  # asked on every request
def family_of(model: str, api: Api | None = None) -> ModelFamily:
    """The family ``model`` belongs to, drawn on ``api`` when one is given."""
    name = model.lower()
    family = next((family for parts, family in _MATCHES if any(part in name for part in parts)), UNKNOWN)
    if api is None or api == family.api:
        return family
    return ModelFamily(f"{family.name}, on the {api} endpoint", api, edits=family.edits, max_n=family.max_n)
