"""A loopback emulator of an image relay, for image-tool's tests and for yours.

from image_tool import ImageClient
from image_tool.testing import FakeRelay, Reply

with FakeRelay() as relay:
    client = ImageClient(api_key=relay.api_key, base_url=relay.base_url)
    relay.queue(Reply.content_policy(), Reply.success("markdown", locale="en"))
    ...
"""

from ._chat import ScriptedChatModel, Turn, calls_tool
from ._png import png_image, png_size
from ._profiles import RelayProfile
from ._relay import FakeRelay, RecordedRequest
from ._replies import ImageFormat, Locale, Reply, Shape, StreamFault, TransportFault

__all__ = [
    "FakeRelay",
    "ImageFormat",
    "Locale",
    "RecordedRequest",
    "RelayProfile",
    "Reply",
    "ScriptedChatModel",
    "Shape",
    "StreamFault",
    "TransportFault",
    "Turn",
    "calls_tool",
    "png_image",
    "png_size",
]
