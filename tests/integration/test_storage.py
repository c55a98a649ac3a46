"""Saving images: types from bytes, content names, atomic files, and which addresses are fetched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest

from image_tool import (
    ConfigurationError,
    GeneratedImage,
    ImageClient,
    ImageGenerationResult,
    ImageGenerationTool,
)
from image_tool._io.network import is_public_address
from image_tool._io.storage import SaveOptions
from image_tool._sync.saving import save_images
from image_tool.testing import FakeRelay, png_image

from ..helpers import tool_call


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "172.16.4.4",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
        # IPv6 forms that embed a private IPv4 address:
        "64:ff9b::7f00:1",  # NAT64
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:7f00:1::",  # 6to4
        "::7f00:1",  # IPv4-compatible
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "not an address",
    ],
)
def test_private_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "2002:808:808::", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)


def options(tmp_path: Path) -> SaveOptions:
    return SaveOptions(tmp_path / "images", 10_000_000)


def redirecting(hops: int, target: bytes = b"") -> httpx2.MockTransport:
    def answer(request: httpx2.Request) -> httpx2.Response:
        step = int(request.url.path.strip("/") or 0)
        if step < hops:
            return httpx2.Response(302, headers={"Location": f"/{step + 1}"})
        return httpx2.Response(200, content=target)

    return httpx2.MockTransport(answer)


def result_with(*images: GeneratedImage) -> ImageGenerationResult:
    return ImageGenerationResult(model="m", images=list(images))


def test_redirects_are_followed_but_bounded(tmp_path: Path) -> None:
    png = png_image(4, 4, "r")
    image = GeneratedImage(url="https://images.example/0")
    with httpx2.Client(transport=redirecting(3, png)) as http:
        (saved,) = save_images(result_with(image), options(tmp_path), lambda: http).images
    assert saved.path is not None
    assert saved.path.read_bytes() == png
    with httpx2.Client(transport=redirecting(4, png)) as http:
        (refused,) = save_images(result_with(image), options(tmp_path), lambda: http).images
    assert refused.save_error == "more than 3 redirects"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://images.example/a.png", "gopher://x/"])
def test_only_http_and_https_are_downloaded(tmp_path: Path, url: str) -> None:
    with httpx2.Client(transport=redirecting(0)) as http:
        (image,) = save_images(result_with(GeneratedImage(url=url)), options(tmp_path), lambda: http).images
    assert image.save_error is not None
    assert "only http and https" in image.save_error


def test_invalid_base64_is_reported(tmp_path: Path) -> None:
    with httpx2.Client(transport=redirecting(0)) as http:
        (image,) = save_images(
            result_with(GeneratedImage(b64_json="not base64!")), options(tmp_path), lambda: http
        ).images
    assert image.save_error == "the inline image is not valid base64"
    assert not (tmp_path / "images").exists()  # nothing written, not even a half file


def test_a_failed_download_leaves_no_part_file(tmp_path: Path) -> None:
    def broken(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadError("connection reset", request=request)

    with httpx2.Client(transport=httpx2.MockTransport(broken)) as http:
        (image,) = save_images(
            result_with(GeneratedImage(url="https://x.example/a.png")), options(tmp_path), lambda: http
        ).images
    assert image.save_error is not None
    assert "download failed" in image.save_error
    assert not (tmp_path / "images").exists() or list((tmp_path / "images").iterdir()) == []


@pytest.mark.parametrize("path", ["sync", "async", "tool"])
def test_a_folder_that_cannot_be_written_fails_before_anything_is_sent(tmp_path: Path, path: str) -> None:
    """Its parent is a file (so even root cannot make it): nothing is generated, so nothing is
    paid for and lost; the error names the folder and the setting."""
    (tmp_path / "a-file").write_text("not a folder")
    save_dir = tmp_path / "a-file" / "images"
    with FakeRelay() as relay:
        client = ImageClient(api_key=relay.api_key, base_url=relay.base_url, save_dir=save_dir)
        if path == "tool":
            message = ImageGenerationTool(client=client).invoke(tool_call(prompt="A cat"))
            assert message.status == "error"
            assert "save_dir" in message.content
        else:
            generate = (
                client.generate if path == "sync" else lambda prompt: asyncio.run(client.agenerate(prompt))
            )
            with pytest.raises(ConfigurationError, match=r"cannot be saved in .*images.*save_dir="):
                generate("A cat")
        assert relay.requests == []


def test_a_missing_folder_is_made_before_sending(tmp_path: Path) -> None:
    with FakeRelay() as relay:
        client = ImageClient(
            api_key=relay.api_key,
            base_url=relay.base_url,
            save_dir=tmp_path / "new",
            allow_private_downloads=True,
        )
        assert client.generate("A cat").images[0].path is not None
    assert [child.parent for child in (tmp_path / "new").iterdir()] == [tmp_path / "new"]
