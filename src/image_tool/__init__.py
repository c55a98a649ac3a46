"""image-tool: image generation through OpenAI-compatible chat relays, as a LangChain tool.

from image_tool import ImageGenerationTool
tool = ImageGenerationTool()   # reads IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL
"""

from ._version import __version__
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
from .models import (
    GeneratedImage,
    GenerationProgress,
    ImageGenerationResult,
    ImageQuality,
    ImageSize,
    ImageStyle,
)
from .tool import PROGRESS_EVENT, GenerateImageInput, ImageGenerationTool

__all__ = [
    "PROGRESS_EVENT",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "ContentPolicyError",
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
]
