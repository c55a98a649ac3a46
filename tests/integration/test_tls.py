"""TLS: a relay and an image host behind a private CA (as behind a corporate proxy).

httpx2 verifies against the operating system's trust store, not certifi. The tests trust their own
CA (trustme) the two ways the docs give: an ``ssl.SSLContext`` passed explicitly, and
``SSL_CERT_FILE`` for image-tool's own clients, downloads included.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import trustme

from image_tool import APIConnectionError, APITimeoutError, ImageClient, ImageGenerationResult
from image_tool._io import pooling
from image_tool.testing import FakeRelay, Reply

IMAGE_PATH = "/images/64x64/0123456789abcdef.png"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay() as relay:
        yield relay


@pytest.fixture
def tls_origin(ca: trustme.CA, relay: FakeRelay) -> Iterator[str]:
    """``https://localhost:PORT``: TLS with a certificate of ``ca``, in front of ``relay``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    upstream = ("127.0.0.1", int(relay.origin.rsplit(":", 1)[1]))
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve, args=(listener, context, upstream), daemon=True).start()
    yield f"https://localhost:{listener.getsockname()[1]}"
    listener.close()


def _serve(listener: socket.socket, context: ssl.SSLContext, upstream: tuple[str, int]) -> None:
    with contextlib.suppress(OSError):
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=_forward, args=(connection, context, upstream), daemon=True).start()


def _forward(connection: socket.socket, context: ssl.SSLContext, upstream: tuple[str, int]) -> None:
    with (
        contextlib.suppress(OSError),
        context.wrap_socket(connection, server_side=True) as secure,
        socket.create_connection(upstream) as plain,
    ):
        threading.Thread(target=_pump, args=(plain, secure), daemon=True).start()
        _pump(secure, plain)


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_an_explicit_ssl_context_reaches_a_relay_behind_a_private_ca(ca: trustme.CA, tls_origin: str) -> None:
    verify = trusting(ca)
    with (
        httpx2.Client(verify=verify) as http,
        ImageClient(api_key="fake-relay-key", base_url=f"{tls_origin}/v1", http_client=http) as client,
    ):
        assert client.generate("A cat").images

    async def agenerate() -> int:
        async with (
            httpx2.AsyncClient(verify=verify) as http,
            ImageClient(
                api_key="fake-relay-key", base_url=f"{tls_origin}/v1", http_async_client=http
            ) as client,
        ):
            return len((await client.agenerate("A cat")).images)

    assert asyncio.run(agenerate()) == 1


def test_a_relay_whose_ca_is_not_trusted_is_refused(tls_origin: str, relay: FakeRelay) -> None:
    with (
        ImageClient(api_key="fake-relay-key", base_url=f"{tls_origin}/v1", max_retries=0) as client,
        pytest.raises(APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.generate("A cat")
    assert relay.requests == []


@pytest.fixture
def trusted_through_the_environment(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    bundle = tmp_path / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    pooling.shared_ssl_context.cache_clear()  # image-tool reads the trust store once a process
    yield
    pooling.shared_ssl_context.cache_clear()


@pytest.mark.usefixtures("trusted_through_the_environment")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_ssl_cert_file_is_trusted_by_image_tool_s_own_clients_and_downloads(
    tls_origin: str, relay: FakeRelay, tmp_path: Path, mode: str
) -> None:
    relay.queue(Reply.completion(f"![image]({tls_origin}{IMAGE_PATH})"))
    client = ImageClient(
        api_key="fake-relay-key",
        base_url=f"{tls_origin}/v1",
        save_dir=tmp_path / "images",
        allow_private_downloads=True,
    )
    if mode == "sync":
        with client:
            result = client.generate("A cat")
    else:

        async def agenerate() -> ImageGenerationResult:
            async with client:
                return await client.agenerate("A cat")

        result = asyncio.run(agenerate())
    (image,) = result.images
    assert image.save_error is None
    assert image.path is not None and image.path.read_bytes().startswith(b"\x89PNG")


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word: every TLS handshake stalls."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for connection in held:
            connection.close()


@pytest.mark.usefixtures("quick_backoff")
@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_stalled_tls_handshake_is_a_timeout_on_both_paths(path: str) -> None:
    """One kind for one failure: the connect timeout names itself, the request never left (so it
    was retried), and nothing says it may have been generated."""
    with silent_server() as port:
        client = ImageClient(
            api_key="sk-tls-0123456789abcdef",
            base_url=f"https://127.0.0.1:{port}/v1",
            timeout=httpx2.Timeout(5, connect=0.3),
            max_retries=1,
        )
        generate = client.generate if path == "sync" else lambda prompt: asyncio.run(client.agenerate(prompt))
        with pytest.raises(APITimeoutError, match=r"connect timeout of 0\.3 s") as caught:
            generate("A cat")
    assert not caught.value.sent_unanswered
    assert "may have been generated" not in str(caught.value)
