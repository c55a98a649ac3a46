"""image-tool: image generation through OpenAI-compatible chat relays, as a LangChain tool.

from image_tool import ImageGenerationTool
tool = ImageGenerationTool()   # reads IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL

Every public name is imported on first use (PEP 562): ``from image_tool import ImageClient``
loads httpx2 and pydantic but not LangChain, which only the tool and the message helpers need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._version import __version__

if TYPE_CHECKING:
    from .arguments import GenerateImageInput
    from .client import ImageClient
    from .errors import (
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        ConfigurationError,
        ContentPolicyError,
        ImageToolError,
        InvalidRequestError,
        MalformedResponseError,
        ModelNotFoundError,
        NoImageError,
        QuotaExceededError,
        RateLimitError,
        ReferenceImageError,
        SaveError,
        StreamWithoutImageError,
    )
    from .messages import move_images_to_user_message
    from .models import (
        GeneratedImage,
        GenerationProgress,
        ImageGenerationResult,
        ImageQuality,
        ImageSize,
        ImageStyle,
    )
    from .settings import ClientSettings, Fallback
    from .tool import PROGRESS_EVENT, ImageGenerationTool

__all__ = [
    "PROGRESS_EVENT",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ClientSettings",
    "ConfigurationError",
    "ContentPolicyError",
    "Fallback",
    "GenerateImageInput",
    "GeneratedImage",
    "GenerationProgress",
    "ImageClient",
    "ImageGenerationResult",
    "ImageGenerationTool",
    "ImageQuality",
    "ImageSize",
    "ImageStyle",
    "ImageToolError",
    "InvalidRequestError",
    "MalformedResponseError",
    "ModelNotFoundError",
    "NoImageError",
    "QuotaExceededError",
    "RateLimitError",
    "ReferenceImageError",
    "SaveError",
    "StreamWithoutImageError",
    "__version__",
    "move_images_to_user_message",
]

_HOMES = {
    "client": ("ImageClient",),
    "errors": (
        "APIConnectionError",
        "APIError",
        "APIStatusError",
        "APITimeoutError",
        "AuthenticationError",
        "ConfigurationError",
        "ContentPolicyError",
        "ImageToolError",
        "InvalidRequestError",
        "MalformedResponseError",
        "ModelNotFoundError",
        "NoImageError",
        "QuotaExceededError",
        "RateLimitError",
        "ReferenceImageError",
        "SaveError",
        "StreamWithoutImageError",
    ),
    "messages": ("move_images_to_user_message",),
    "models": (
        "GeneratedImage",
        "GenerationProgress",
        "ImageGenerationResult",
        "ImageQuality",
        "ImageSize",
        "ImageStyle",
    ),
    "settings": ("ClientSettings", "Fallback"),
    "arguments": ("GenerateImageInput",),
    "tool": ("PROGRESS_EVENT", "ImageGenerationTool"),
}
"""The module each public name lives in (tests/integration/test_imports.py checks it against
``__all__``)."""
__getattr__ = lazy_names(__name__, _HOMES)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
