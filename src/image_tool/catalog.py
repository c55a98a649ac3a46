"""The image models image-tool knows: which endpoint draws them and which options each takes.

A model is matched by its name (lower-cased, any ``provider/`` prefix kept); an unknown model is
drawn on the chat endpoint with only the options every relay takes (the prompt, ``n`` and the
images to edit). ``ImageClient(api=...)`` overrides the endpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from .models import DEFAULT_QUALITY, DEFAULT_SIZE, DEFAULT_STYLE, AspectRatio, ImageResolution

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
    "image_size",
    "seed",
    "negative_prompt",
)
"""Every drawing option a model may take, beside the prompt, ``n``, the images to edit and the mask."""

GATEWAY_ASPECT_RATIOS: tuple[str, ...] = get_args(AspectRatio)
GEMINI_IMAGE_SIZES: tuple[str, ...] = get_args(ImageResolution)
MAX_NEGATIVE_PROMPT = 1000
"""The longest ``negative_prompt`` taken, in characters."""


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
    image_sizes: tuple[str, ...] = ()
    """``image_size``: the resolution Gemini 3 image models draw at (``image_config.image_size``)."""
    custom_sizes: bool = False
    """Takes any ``WxH`` ``custom_size_problem`` finds nothing wrong with, beside ``sizes``."""
    compression: bool = False
    """Takes ``output_compression`` (0-100, for JPEG and WebP)."""
    max_seed: int | None = None
    """Takes ``seed``, a whole number from 0 to this."""
    negative_prompt: bool = False
    """Takes ``negative_prompt``: what must not be drawn."""
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
            "image_size": self.image_sizes,
        }.get(option, ())

    def takes(self, option: str) -> bool:
        flags = {
            "output_compression": self.compression,
            "seed": self.max_seed is not None,
            "negative_prompt": self.negative_prompt,
        }
        return flags.get(option, bool(self.choices(option)))


CUSTOM_SIZE_RULE = (
    "both edges multiples of 16, the longest at most 3840, long:short at most 3:1, "
    "655,360 to 8,294,400 pixels"
)
"""gpt-image-2's rule for a size of its own (the relays' documents of the model, below)."""


def custom_size_problem(size: str) -> str | None:
    """What breaks ``CUSTOM_SIZE_RULE`` in ``size`` (``"WxH"``); ``None`` when it keeps the rule."""
    match = re.fullmatch(r"([0-9]{1,6})x([0-9]{1,6})", size)
    if match is None:
        return "it is not WIDTHxHEIGHT in pixels"
    width, height = int(match[1]), int(match[2])
    long, short = max(width, height), min(width, height)
    if width % 16 or height % 16:
        return "an edge is not a multiple of 16"
    if long > 3840:
        return "the longest edge is over 3840"
    if long > 3 * short:
        return "it is longer than 3:1"
    if not 655_360 <= long * short <= 8_294_400:
        return f"it has {long * short:,} pixels"
    return None


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
# OpenAI's Images API reference lists gpt-image-2; the size rule is the relays' documents of it
# (docs.anyfast.ai "gpt-image-2", docs.fast-token.com "GptImage-2-Create"). It draws no transparent
# background: ComfyUI's GPT Image 2 node offers auto and opaque only.
GPT_IMAGE_2 = dataclasses.replace(
    GPT_IMAGE,
    name="gpt-image-2",
    sizes=(
        "auto",
        "1024x1024",
        "1536x1024",
        "1024x1536",
        "2048x2048",
        "2048x1152",
        "1152x2048",
        "3840x2160",
        "2160x3840",
    ),
    custom_sizes=True,
    backgrounds=("opaque", "auto"),
)
# OpenRouter's image_config (aspect_ratio, image_size), Google's imageConfig.imageSize: Gemini 3
# image models draw at 1K, 2K or 4K; Gemini 2.5 Flash Image at 1K only.
GEMINI_2_5_IMAGE = ModelFamily(
    "Gemini 2.5 image models on a chat gateway",
    "chat",
    aspect_ratios=GATEWAY_ASPECT_RATIOS,
    modalities=("image", "text"),
)
GEMINI_3_IMAGE = dataclasses.replace(
    GEMINI_2_5_IMAGE, name="Gemini 3 image models on a chat gateway", image_sizes=GEMINI_IMAGE_SIZES
)
IMAGE_ONLY_GATEWAY = ModelFamily(
    "image-only models on a chat gateway (FLUX, Seedream, Sourceful)",
    "chat",
    aspect_ratios=GATEWAY_ASPECT_RATIOS,
    modalities=("image",),
    max_seed=2**31 - 1,  # a top-level seed, as OpenRouter's chat request takes it
)
MIDJOURNEY = ModelFamily(
    "Midjourney through a relay's /mj routes (new-api, midjourney-proxy)",
    "midjourney",
    max_n=1,  # one task draws a grid of four: one image
    max_seed=2**32 - 1,  # Midjourney's --seed and --no, added to the prompt
    negative_prompt=True,
)
UNKNOWN = ModelFamily("an unknown model (the options every relay takes)", "chat")

_MATCHES: tuple[tuple[tuple[str, ...], ModelFamily], ...] = (
    (("gpt-image-2",), GPT_IMAGE_2),  # gpt-image-2.5... too; before gpt-image
    (("gpt-image",), GPT_IMAGE),
    (("dall-e-3",), DALL_E_3),
    (("gpt-4o-image", "sora_image", "sora-image"), CHAT_RELAY),
    # Before Gemini 2.5: "nano-banana-pro" and "nano-banana-2" are Gemini 3, "nano-banana" is 2.5.
    (("gemini-3-pro-image", "gemini-3.1-flash-image", "nano-banana-pro", "nano-banana-2"), GEMINI_3_IMAGE),
    (("gemini-2.5-flash-image", "nano-banana"), GEMINI_2_5_IMAGE),
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
