"""A loopback emulator of an image relay, for image-tool's tests and for yours.

from image_tool import ImageClient
from image_tool.testing import FakeRelay, Reply

with FakeRelay() as relay:
    client = ImageClient(api_key=relay.api_key, base_url=relay.base_url)
    relay.queue(Reply.content_policy())
    ...
"""

from ._png import png_image, png_size
from ._relay import FakeRelay, RecordedRequest, Reply

__all__ = ["FakeRelay", "RecordedRequest", "Reply", "png_image", "png_size"]
