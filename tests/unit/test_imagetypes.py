"""Image kinds told from the bytes, for file names and the MIME types shown to models."""

from __future__ import annotations

import base64

import pytest

from image_tool._wire.imagetypes import base64_mime_type, image_extension, mime_type

HEADS = [
    (b"\x89PNG\r\n\x1a\n\x00\x00", ".png", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", ".jpg", "image/jpeg"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", ".webp", "image/webp"),
    (b"GIF89a\x01\x00", ".gif", "image/gif"),
    (b"GIF87a\x01\x00", ".gif", "image/gif"),
]


@pytest.mark.parametrize(("head", "extension", "mime"), HEADS)
def test_the_kind_comes_from_the_bytes(head: bytes, extension: str, mime: str) -> None:
    assert image_extension(head) == extension
    assert mime_type(head) == mime
    assert base64_mime_type(base64.b64encode(head + bytes(64)).decode()) == mime


@pytest.mark.parametrize("head", [b"<html><body>", b"", b"RIFF\x24\x00\x00\x00WAVEfmt "])
def test_unknown_bytes_have_no_extension_and_the_default_type(head: bytes) -> None:
    assert image_extension(head) is None
    assert mime_type(head) == "image/png"
    assert mime_type(head, default="application/octet-stream") == "application/octet-stream"


@pytest.mark.parametrize("text", ["", "!!!!", "not base64 at all ~~~", "/9j"])
def test_broken_base64_falls_back_to_the_default(text: str) -> None:
    assert base64_mime_type(text) == "image/png"
