"""image-tool: image generation through OpenAI-compatible chat relays, as a LangChain tool.

from image_tool import ImageGenerationTool
tool = ImageGenerationTool()   # reads IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL

Every public name is imported on first use (PEP 562): ``from image_tool import ImageClient``
loads httpx2 and pydantic but not LangChain, which only the tool and the message helpers need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_face
from ._version import __version__ as __version__

_HOMES = {
    "client": ("ImageClient",),
    "settings": ("ClientSettings", "Fallback"),
    "tool": ("PROGRESS_EVENT", "ImageGenerationTool"),
    "_tool.arguments": ("GenerateImageInput",),
    "messages": ("move_images_to_user_message",),
    "models": (
        "GeneratedImage",
        "GenerationProgress",
        "ImageGenerationResult",
        "ImageQuality",
        "ImageSize",
        "ImageStyle",
    ),
    "_policy.limits": ("AdaptiveLimit",),
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
}
"""The one table of the public names, by the module each lives in: a name is added here, and in
the imports below for type checkers (a test holds the two together)."""
__all__, __getattr__, __dir__ = lazy_face(__name__, _HOMES, "__version__")

if TYPE_CHECKING:
    from ._policy.limits import AdaptiveLimit as AdaptiveLimit
    from ._tool.arguments import GenerateImageInput as GenerateImageInput
    from .client import ImageClient as ImageClient
    from .errors import (
        APIConnectionError as APIConnectionError,
        APIError as APIError,
        APIStatusError as APIStatusError,
        APITimeoutError as APITimeoutError,
        AuthenticationError as AuthenticationError,
        ConfigurationError as ConfigurationError,
        ContentPolicyError as ContentPolicyError,
        ImageToolError as ImageToolError,
        InvalidRequestError as InvalidRequestError,
        MalformedResponseError as MalformedResponseError,
        ModelNotFoundError as ModelNotFoundError,
        NoImageError as NoImageError,
        QuotaExceededError as QuotaExceededError,
        RateLimitError as RateLimitError,
        ReferenceImageError as ReferenceImageError,
        SaveError as SaveError,
        StreamWithoutImageError as StreamWithoutImageError,
    )
    from .messages import move_images_to_user_message as move_images_to_user_message
    from .models import (
        GeneratedImage as GeneratedImage,
        GenerationProgress as GenerationProgress,
        ImageGenerationResult as ImageGenerationResult,
        ImageQuality as ImageQuality,
        ImageSize as ImageSize,
        ImageStyle as ImageStyle,
    )
    from .settings import ClientSettings as ClientSettings, Fallback as Fallback
    from .tool import PROGRESS_EVENT as PROGRESS_EVENT, ImageGenerationTool as ImageGenerationTool
