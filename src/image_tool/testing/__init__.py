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

from .._lazy import lazy_face

_HOMES = {
    "_relay": ("FakeRelay",),
    "_handler": ("RecordedRequest",),
    "_replies": ("ImageFormat", "Locale", "RelayProfile", "Reply", "Shape", "StreamFault", "TransportFault"),
    "_chat": ("ScriptedChatModel", "Turn", "calls_tool"),
    "_formats": ("JPEG_IMAGE", "WEBP_IMAGE", "OutputFormat", "image_format"),
    "_gateway": ("ASPECT_RATIOS",),
    "_multipart": ("FormFile", "MultipartForm"),
    "_png": ("png_image", "png_size"),
}
"""The one table of the public names (see ``image_tool._HOMES``)."""
__all__, __getattr__, __dir__ = lazy_face(__name__, _HOMES)

if TYPE_CHECKING:
    from ._chat import ScriptedChatModel as ScriptedChatModel, Turn as Turn, calls_tool as calls_tool
    from ._formats import (
        JPEG_IMAGE as JPEG_IMAGE,
        WEBP_IMAGE as WEBP_IMAGE,
        OutputFormat as OutputFormat,
        image_format as image_format,
    )
    from ._gateway import ASPECT_RATIOS as ASPECT_RATIOS
    from ._handler import RecordedRequest as RecordedRequest
    from ._multipart import FormFile as FormFile, MultipartForm as MultipartForm
    from ._png import png_image as png_image, png_size as png_size
    from ._relay import FakeRelay as FakeRelay
    from ._replies import (
        ImageFormat as ImageFormat,
        Locale as Locale,
        RelayProfile as RelayProfile,
        Reply as Reply,
        Shape as Shape,
        StreamFault as StreamFault,
        TransportFault as TransportFault,
    )
