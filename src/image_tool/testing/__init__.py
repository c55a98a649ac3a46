"""A loopback emulator of an image relay, for image-tool's tests and for yours.

from image_tool import ImageClient
from image_tool.testing import FakeRelay, Reply

with FakeRelay() as relay:
    client = ImageClient(api_key=relay.api_key, base_url=relay.base_url)
    relay.queue(Reply.content_policy(), Reply.success("markdown", locale="en"))
    ...

Names are imported on first use (PEP 562): the emulator does not load LangChain, which only
``ScriptedChatModel`` needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from ._chat import ScriptedChatModel, Turn, calls_tool
    from ._formats import JPEG_IMAGE, WEBP_IMAGE, OutputFormat, image_format
    from ._gateway import ASPECT_RATIOS
    from ._multipart import FormFile, MultipartForm
    from ._png import png_image, png_size
    from ._relay import FakeRelay, RecordedRequest
    from ._replies import ImageFormat, Locale, RelayProfile, Reply, Shape, StreamFault, TransportFault

__all__ = [
    "ASPECT_RATIOS",
    "JPEG_IMAGE",
    "WEBP_IMAGE",
    "FakeRelay",
    "FormFile",
    "ImageFormat",
    "Locale",
    "MultipartForm",
    "OutputFormat",
    "RecordedRequest",
    "RelayProfile",
    "Reply",
    "ScriptedChatModel",
    "Shape",
    "StreamFault",
    "TransportFault",
    "Turn",
    "calls_tool",
    "image_format",
    "png_image",
    "png_size",
]

_HOMES = {
    "_chat": ("ScriptedChatModel", "Turn", "calls_tool"),
    "_formats": ("JPEG_IMAGE", "WEBP_IMAGE", "OutputFormat", "image_format"),
    "_gateway": ("ASPECT_RATIOS",),
    "_multipart": ("FormFile", "MultipartForm"),
    "_png": ("png_image", "png_size"),
    "_relay": ("FakeRelay", "RecordedRequest"),
    "_replies": ("ImageFormat", "Locale", "RelayProfile", "Reply", "Shape", "StreamFault", "TransportFault"),
}
__getattr__ = lazy_names(__name__, _HOMES)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
