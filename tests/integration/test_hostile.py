"""Hostile relays, hosts and inputs: nothing escapes, nothing explodes, nothing leaks.

Each test is a case an adversary tried: FakeRelay scripted to misbehave, or a raw loopback server
(``tests/hostile_server.py``) that writes exactly the bytes the test chooses. The promises: the
client raises only ``image_tool.errors``; the tool and the MCP server answer every failure with
advice; a generated image is never lost to a later failure; time and memory stay within the
documented limits; the key never shows.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import pkgutil
import signal
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpcore2
import httpx2
import pytest
from langchain_core.messages import AIMessage, ToolMessage

import image_tool
import image_tool.errors
from image_tool import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    ImageClient,
    ImageGenerationResult,
    ImageGenerationTool,
    ImageToolError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
)
from image_tool._async import saving as async_saving
from image_tool._io import pooling, storage as storage_module
from image_tool.cli import main as cli_main
from image_tool.mcp_server import create_server
from image_tool.testing import FakeRelay, Reply

from ..helpers import (
    DEPRECATED_MODULES,
    calls_generate_image,
    ctrl_c_enabled,
    scripted,
    tool_call,
    tool_node_graph,
)
from ..hostile_server import Answer, HostileServer

KEY = "sk-hostile-suite-0123456789abcdef"
IMAGE_PATH = "/images/64x64/0123456789abcdef.png"
PNG_HEAD = b"\x89PNG\r\n\x1a\n"

Mode = str  # "sync" | "async"
MODES = ["sync", "async"]


pytestmark = pytest.mark.usefixtures("quick_backoff")


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay(api_key=KEY) as relay:
        yield relay


@pytest.fixture
def host() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def client_for(base_url: str, **settings: Any) -> ImageClient:
    settings.setdefault("max_retries", 0)
    return ImageClient(api_key=KEY, base_url=base_url, **settings)


def generate(
    client: ImageClient, mode: Mode, prompt: str = "A cat", **arguments: Any
) -> ImageGenerationResult:
    """One call, sync or async, with the client closed afterwards."""
    if mode == "sync":
        with client:
            return client.generate(prompt, **arguments)

    async def run() -> ImageGenerationResult:
        async with client:
            return await client.agenerate(prompt, **arguments)

    return asyncio.run(run())


def invoke(tool: ImageGenerationTool, mode: Mode, **arguments: Any) -> ToolMessage:
    call = tool_call(**arguments)
    message = tool.invoke(call) if mode == "sync" else asyncio.run(tool.ainvoke(call))
    assert isinstance(message, ToolMessage)
    return message


def posts(relay: FakeRelay) -> int:
    return sum(1 for request in relay.requests if request.method == "POST")


def gets(relay: FakeRelay) -> int:
    return sum(1 for request in relay.requests if request.method == "GET")


def leftovers(directory: Path) -> list[str]:
    """Temporary (partial) files left in a save directory."""
    return [path.name for path in directory.rglob("*") if path.name.endswith(".part")]


def image_link(origin: str) -> str:
    return f"![image]({origin}{IMAGE_PATH})"


def event_stream(*events: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    return head + b"".join(events)


# --- 1. Nothing escapes ---------------------------------------------------------------------------


# Exceptions that subclass the tree but never leave the package, each turned into a public one.
INTERNAL_EXCEPTIONS = {
    "UnreadableBodyError": "reading.py: the client raises MalformedResponseError, saving a save_error",
    "BudgetExceededError": "budget.py: the tool turns it into advice for the model",
    "LimitReachedError": "_mcp/limits.py: the MCP server answers it as an error result, advice for the model",
}


def test_every_exception_class_of_the_package_is_in_the_error_tree() -> None:
    """What a caller can catch is the tree of ``image_tool.errors``, each class named in its
    docstring. FakeRelay's own exceptions (in ``image_tool.testing``, not on its face) are the
    emulator's own control flow, inside its server threads: they never reach a client."""
    found = []
    for module_info in pkgutil.walk_packages(image_tool.__path__, "image_tool."):
        if module_info.name == "image_tool.mcp_server" or module_info.name in DEPRECATED_MODULES:
            continue  # mcp_server imports the optional mcp extra lazily; shims define nothing
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("image_tool"):
                found.append(value)
    emulator_own = [
        kind
        for kind in found
        if kind.__module__.startswith("image_tool.testing")
        and kind.__name__ not in image_tool.testing.__all__
    ]
    library = {kind for kind in found if kind not in emulator_own}
    assert {"SaveError", "ReferenceImageError", "InvalidRequestError"} <= {kind.__name__ for kind in library}
    assert [kind for kind in library if not issubclass(kind, ImageToolError)] == []
    public = set(image_tool._HOMES["errors"])
    assert {kind.__name__ for kind in library} == public | set(INTERNAL_EXCEPTIONS)
    tree = image_tool.errors.__doc__ or ""
    assert [name for name in public if name not in tree.split()] == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "arguments",
    [{"prompt": "   "}, {"n": 0}, {"n": -3}, {"n": True}],
    ids=["blank", "n_0", "n_negative", "n_bool"],
)
def test_arguments_no_relay_could_use_are_refused_before_sending(
    relay: FakeRelay, mode: Mode, arguments: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRequestError):
        generate(client_for(relay.base_url), mode, **{"prompt": "A cat", **arguments})
    assert posts(relay) == 0


def symlink_loop(tmp_path: Path) -> str:
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    return str(loop)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "reference",
    [lambda _: "a\x00b", lambda _: "x" * 5000, symlink_loop, lambda tmp: str(tmp / ("y" * 300) / "z.png")],
    ids=["null_byte", "5000_characters", "symlink_loop", "name_too_long"],
)
def test_unreadable_reference_paths_are_advice_for_the_model(
    relay: FakeRelay, tmp_path: Path, mode: Mode, reference: Callable[[Path], str]
) -> None:
    tool = ImageGenerationTool(client=client_for(relay.base_url, save_dir=tmp_path))
    message = invoke(tool, mode, prompt="Make it blue", image_urls=[reference(tmp_path)])
    assert message.status == "error"
    assert message.text.startswith("Invalid image_urls:")
    assert "an image URL or a saved path" in message.text
    assert len(message.text) < 600
    assert posts(relay) == 0


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-inf", "1e309", "-5", "99999999", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
def test_senseless_retry_after_values_are_ignored(relay: FakeRelay, value: str) -> None:
    relay.queue(Reply.error(429, "slow down", headers={"Retry-After": value}))
    with pytest.raises(RateLimitError) as caught:
        generate(client_for(relay.base_url), "sync")
    assert caught.value.retry_after is None or 0 <= caught.value.retry_after <= 86_400
    relay.queue(Reply.error(429, "slow down", headers={"Retry-After": value}))
    message = invoke(ImageGenerationTool(client=client_for(relay.base_url)), "sync", prompt="A cat")
    assert message.status == "error"
    assert "nan" not in message.text
    assert "inf" not in message.text
    # With retries, the odd value falls back to backoff and the call goes on.
    relay.queue(Reply.error(429, "slow down", headers={"Retry-After": value}))
    assert generate(client_for(relay.base_url, max_retries=1), "sync").attempts == 2


class FullDisk:
    """A file on a disk that fills after ``room`` bytes: writes fail, and so does the last flush."""

    def __init__(self, file: Any, room: int) -> None:
        self._file, self._room = file, room

    def write(self, data: bytes) -> int:
        self._room -= len(data)
        if self._room < 0:
            raise OSError(28, "No space left on device")
        return int(self._file.write(data))

    def close(self) -> None:
        self._file.close()
        if self._room < 0:
            raise OSError(28, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def full_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: FullDisk(real_fdopen(*a, **k), 100))
    return tmp_path / "images"


def under_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    (tmp_path / "file.txt").write_text("not a directory")
    return tmp_path / "file.txt" / "images"


def read_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permissions; /proc refuses new files even to root
        return Path("/proc/self")
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    return directory


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("place", [under_a_file, read_only], ids=["under_a_file", "read_only"])
def test_a_folder_that_cannot_be_written_is_refused_before_anything_is_sent(
    relay: FakeRelay,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: Mode,
    place: Callable[[pytest.MonkeyPatch, Path], Path],
) -> None:
    settings = {"save_dir": place(monkeypatch, tmp_path), "allow_private_downloads": True}
    with pytest.raises(ConfigurationError, match="nothing was sent"):
        generate(client_for(relay.base_url, **settings), mode, n=2)
    assert relay.requests == []
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("place", [full_disk], ids=["full_disk"])
def test_a_save_that_fails_keeps_the_generated_image(
    relay: FakeRelay,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: Mode,
    place: Callable[[pytest.MonkeyPatch, Path], Path],
) -> None:
    save_dir = place(monkeypatch, tmp_path)
    settings = {"save_dir": save_dir, "allow_private_downloads": True}
    result = generate(client_for(relay.base_url, **settings), mode, n=2)
    assert len(result.images) == 2
    for image in result.images:
        assert image.url is not None
        assert image.path is None
        assert image.save_error is not None
        assert "could not write to" in image.save_error
    assert leftovers(tmp_path) == []
    # Through the tool the model still gets the links, and why they were not saved.
    tool = ImageGenerationTool(client=client_for(relay.base_url, **settings))
    message = invoke(tool, mode, prompt="A cat")
    assert message.status == "success"
    assert "Not saved: could not write to" in message.text
    assert relay.origin in message.text


@pytest.mark.parametrize("mode", MODES)
def test_an_unforeseen_failure_is_an_api_error_and_advice(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, mode: Mode
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError(f"an unforeseen failure holding {KEY}")

    monkeypatch.setattr("image_tool._wire.answer.parse_result", broken)
    with pytest.raises(APIError, match="failed unexpectedly: KeyError") as caught:
        generate(client_for(relay.base_url), mode)
    assert KEY not in str(caught.value)
    assert isinstance(caught.value.__cause__, KeyError)
    # In an agent's graph it is a tool message, and the graph goes on.
    tool = ImageGenerationTool(client=client_for(relay.base_url))
    model = scripted(calls_generate_image(prompt="A cat"), AIMessage("Image generation failed, sorry."))
    state = tool_node_graph(tool, model).invoke({"messages": [("user", "Draw a cat")]})
    (message,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert message.status == "error"
    assert "failed" in message.text
    assert state["messages"][-1].text == "Image generation failed, sorry."


def test_a_failing_progress_callback_costs_nothing(relay: FakeRelay) -> None:
    def broken(update: object) -> None:
        raise RuntimeError("the display fell over")

    relay.queue(Reply.success("markdown"))
    result = generate(client_for(relay.base_url, stream=True), "sync", on_progress=broken)
    assert len(result.images) == 1


async def test_the_mcp_server_answers_every_failure_with_advice(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")
    from mcp import Client
    from mcp.types import TextContent

    tool = ImageGenerationTool(client=client_for(relay.base_url))
    async with Client(create_server(tool)) as client:
        bad_path = await client.call_tool("generate_image", {"prompt": "A cat", "image_urls": ["a\x00b"]})

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug inside the tool")

        monkeypatch.setattr(ImageGenerationTool, "ainvoke", broken)
        bug = await client.call_tool("generate_image", {"prompt": "A cat"})
    texts = [
        "\n".join(item.text for item in r.content if isinstance(item, TextContent)) for r in (bad_path, bug)
    ]
    assert bad_path.is_error
    assert texts[0].startswith("Invalid image_urls:")
    assert bug.is_error
    assert "failed unexpectedly (RuntimeError)" in texts[1]
    assert "Internal server error" not in texts[1]


# --- 2. Never retried once an answer began -------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_cut_after_it_began_is_not_retried(relay: FakeRelay, mode: Mode) -> None:
    relay.queue(Reply.streamed_fault("cut_before_done"), Reply.streamed_fault("cut_before_done"))
    with pytest.raises(APIConnectionError) as caught:
        generate(client_for(relay.base_url, stream=True, max_retries=2), mode)
    assert caught.value.answer_started
    assert posts(relay) == 1


# --- 3. Downloads connect only to checked addresses ----------------------------------------------

PUBLIC = "93.184.216.34"


@pytest.fixture
def rebinding_resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``rebind.test`` resolves to a public address once, then to 127.0.0.1; the public address is
    unreachable here. Returns the hosts the sockets were asked to connect to."""
    real_getaddrinfo = socket.getaddrinfo
    answers = iter([PUBLIC])

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("rebind.test", b"rebind.test"):
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    connected: list[str] = []
    real_connect, real_aconnect = httpcore2.SyncBackend.connect_tcp, httpcore2.AnyIOBackend.connect_tcp

    def connect(self: Any, host: str, *args: Any, **kwargs: Any) -> Any:
        connected.append(host)
        if host == PUBLIC:
            raise httpcore2.ConnectError("no route to the internet from the tests")
        return real_connect(self, host, *args, **kwargs)

    async def aconnect(self: Any, host: str, *args: Any, **kwargs: Any) -> Any:
        connected.append(host)
        if host == PUBLIC:
            raise httpcore2.ConnectError("no route to the internet from the tests")
        return await real_aconnect(self, host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(httpcore2.SyncBackend, "connect_tcp", connect)
    monkeypatch.setattr(httpcore2.AnyIOBackend, "connect_tcp", aconnect)
    return connected


@pytest.mark.parametrize("mode", MODES)
def test_dns_rebinding_cannot_reach_loopback(
    relay: FakeRelay, tmp_path: Path, rebinding_resolver: list[str], mode: Mode
) -> None:
    port = relay.origin.rsplit(":", 1)[1]
    relay.queue(Reply.completion(image_link(f"http://rebind.test:{port}")))
    result = generate(client_for(relay.base_url, save_dir=tmp_path), mode)
    (image,) = result.images
    assert image.path is None
    assert image.save_error is not None
    assert gets(relay) == 0  # nothing was fetched from loopback
    assert PUBLIC in rebinding_resolver  # the socket went to the address that was checked
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "2002:7f00:1::", "::7f00:1", "::ffff:127.0.0.1"])
def test_ipv6_forms_of_private_addresses_are_refused(
    relay: FakeRelay, tmp_path: Path, rebinding_resolver: list[str], mode: Mode, address: str
) -> None:
    relay.queue(Reply.completion(f"![image](http://[{address}]:80{IMAGE_PATH})"))
    (image,) = generate(client_for(relay.base_url, save_dir=tmp_path), mode).images
    assert image.save_error is not None
    assert "refused to download" in image.save_error
    assert address not in rebinding_resolver  # refused before any connection


def without_network_backends(pool_class: type) -> Callable[..., Any]:
    """httpcore2's pool as it would be if it no longer took a network backend."""

    def pool(*args: Any, **kwargs: Any) -> Any:
        if "network_backend" in kwargs:
            raise TypeError("__init__() got an unexpected keyword argument 'network_backend'")
        return pool_class(*args, **kwargs)

    return pool


@pytest.mark.parametrize("mode", MODES)
def test_without_its_guards_nothing_is_downloaded_and_the_image_is_kept(
    relay: FakeRelay, tmp_path: Path, mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay.queue(Reply.completion(image_link(relay.origin)))
    for name in ("ConnectionPool", "AsyncConnectionPool"):
        monkeypatch.setattr(httpcore2, name, without_network_backends(getattr(httpcore2, name)))
    (image,) = generate(client_for(relay.base_url, save_dir=tmp_path), mode).images
    assert image.url is not None and image.path is None  # generated and kept, not saved
    assert image.save_error is not None
    assert "cannot put its guarded sockets under httpcore2" in image.save_error
    assert gets(relay) == 0
    assert list(tmp_path.iterdir()) == []


# --- 4. Memory: caps hold on one line, and on inflated bytes as they are produced ----------------

CAP = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """gzip data that inflates to 256 MiB of zeros (about 250 KB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    return b"".join(compressor.compress(zeros) for _ in range(256)) + compressor.flush()


def peak_memory(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
    except ImageToolError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("mode", MODES)
def test_an_endless_stream_line_is_refused_at_the_cap(
    host: HostileServer, monkeypatch: pytest.MonkeyPatch, mode: Mode
) -> None:
    monkeypatch.setattr("image_tool._wire.answer.MAX_ANSWER_BYTES", CAP)
    host.play(Answer((event_stream(b"data: "),), hold=5.0, drip=b"A" * (1024 * 1024)))
    client = client_for(host.base_url, stream=True)
    with pytest.raises(MalformedResponseError, match="larger than 8 MiB"):
        generate(client, mode)
    assert peak_memory(lambda: generate(client_for(host.base_url, stream=True), mode)) < 3 * CAP


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_a_compressed_bomb_is_refused_at_the_cap(
    host: HostileServer, monkeypatch: pytest.MonkeyPatch, gzip_bomb: bytes, mode: Mode, streamed: bool
) -> None:
    monkeypatch.setattr("image_tool._wire.answer.MAX_ANSWER_BYTES", CAP)
    kind = b"text/event-stream" if streamed else b"application/json"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    host.play(Answer((head % (kind, len(gzip_bomb)) + gzip_bomb,)))
    with pytest.raises(MalformedResponseError, match="larger than 8 MiB"):
        generate(client_for(host.base_url, stream=streamed), mode)
    assert peak_memory(lambda: generate(client_for(host.base_url, stream=streamed), mode)) < 3 * CAP


@pytest.mark.parametrize("mode", MODES)
def test_a_compressed_image_bomb_is_not_saved(
    relay: FakeRelay, host: HostileServer, tmp_path: Path, gzip_bomb: bytes, mode: Mode
) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    )
    host.play(Answer((head % len(gzip_bomb) + gzip_bomb,)))
    relay.queue(Reply.completion(image_link(host.base_url.removesuffix("/v1"))))
    settings = {"save_dir": tmp_path, "allow_private_downloads": True, "max_image_bytes": CAP}
    (image,) = generate(client_for(relay.base_url, **settings), mode).images
    assert image.save_error == "the download is larger than 8 MiB"
    assert list(tmp_path.iterdir()) == []


# --- 6. Secrets ------------------------------------------------------------------------------------


def test_a_key_echoed_in_an_error_code_is_never_shown(
    relay: FakeRelay,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger="image_tool")
    relay.queue(Reply.error(503, f"busy: {KEY}", code=KEY), Reply.error(400, "bad", code=KEY, error_type=KEY))
    with pytest.raises(APIError) as caught:
        generate(client_for(relay.base_url, max_retries=1), "sync")
    assert "Attempt 1 failed" in caplog.text  # the retry was logged...
    shown = [str(caught.value), repr(caught.value), caught.value.code, caught.value.error_type, caplog.text]
    assert not [text for text in shown if KEY in str(text)]  # ...without the key
    # The command line's stderr.
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", KEY)
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
    relay.queue(Reply.error(400, f"bad key {KEY}", code=KEY))
    assert cli_main(["generate", "A cat", "--max-retries", "0"]) == 10
    output = capsys.readouterr()
    assert "[redacted]" in output.err
    assert KEY not in output.err + output.out


@pytest.mark.parametrize("mode", MODES)
def test_a_key_echoed_in_a_streamed_error_is_never_shown(host: HostileServer, mode: Mode) -> None:
    error = {
        "error": {"message": f"upstream said {KEY}", "code": KEY, "type": "sk-upstream-abcdefghijklmnop"}
    }
    host.play(Answer((event_stream(b"data: " + json.dumps(error).encode() + b"\n\n"),)))
    with pytest.raises(APIError) as caught:
        generate(client_for(host.base_url, stream=True), mode)
    assert KEY not in f"{caught.value} {caught.value!r} {caught.value.code} {caught.value.error_type}"
    assert "sk-upstream" not in str(caught.value.error_type)


def test_a_key_echoed_in_a_result_is_never_shown(relay: FakeRelay) -> None:
    prompt = f"a cat, drawn with {KEY} and sk-upstream-0123456789abcdef"
    relay.queue(Reply.completion(f'```json\n{{"prompt": "{prompt}"}}\n```\n\n{image_link(relay.origin)}'))
    message = invoke(ImageGenerationTool(client=client_for(relay.base_url)), "sync", prompt="A cat")
    assert isinstance(message.artifact, ImageGenerationResult)
    shown = message.text + message.artifact.model_dump_json()
    assert KEY not in shown
    assert "sk-upstream" not in shown
    assert "a cat, drawn with [redacted]" in shown


# --- 7. Time: the total covers the request, the stream and every download --------------------------

CUT_BY_THE_TOTAL = 1.0 + 3.0
"""Seconds a call with a total timeout of 1 s may take: the total, and room for a loaded machine.
Still well short of the 6 s the host holds its connection, which a call without a total would wait."""


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_without_line_ends_is_bounded_by_the_total(host: HostileServer, mode: Mode) -> None:
    host.play(Answer((event_stream(b"data: {"),), pause=0.1, hold=6.0, drip=b"a"))
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="total timeout of 1 s"):
        generate(client_for(host.base_url, stream=True, total_timeout=1.0), mode)
    assert time.monotonic() - started < CUT_BY_THE_TOTAL


@pytest.mark.parametrize("mode", MODES)
def test_an_image_host_sending_a_byte_at_a_time_is_bounded_by_the_total(
    relay: FakeRelay, host: HostileServer, tmp_path: Path, mode: Mode
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    host.play(Answer((head + PNG_HEAD,), pause=0.1, hold=6.0, drip=b"\0"))
    relay.queue(Reply.completion(image_link(host.base_url.removesuffix("/v1"))))
    settings = {"save_dir": tmp_path, "allow_private_downloads": True, "total_timeout": 1.0}
    started = time.monotonic()
    (image,) = generate(client_for(relay.base_url, **settings), mode).images
    assert time.monotonic() - started < CUT_BY_THE_TOTAL
    assert image.url is not None  # the generation is kept...
    assert image.save_error == "the call's total timeout of 1 s ran out during the download"
    assert leftovers(tmp_path) == []


# --- 8. Volume -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_thousand_links_for_one_image_keep_what_the_budget_allows(
    relay: FakeRelay, tmp_path: Path, mode: Mode
) -> None:
    """A relay may draw more than asked (and bill it): four times n are kept, at most what the
    tool's budget has left (2 here); the rest are counted, never downloaded."""
    links = "\n".join(f"![image]({relay.origin}/images/64x64/{index:016x}.png)" for index in range(1000))
    relay.queue(Reply.completion(links), Reply.completion(links))
    settings = {"save_dir": tmp_path, "allow_private_downloads": True}
    tool = ImageGenerationTool(client=client_for(relay.base_url, **settings), max_images=2)
    message = invoke(tool, mode, prompt="A cat")
    assert isinstance(message.artifact, ImageGenerationResult)
    assert len(message.artifact.images) == 2
    assert message.artifact.dropped_images == 998
    assert "998 more image(s) than could be kept" in message.text
    assert len(message.text) < 1000
    assert gets(relay) == 2  # only the kept images were downloaded
    # The budget counted the two images kept: it is spent.
    assert "budget is spent" in invoke(tool, mode, prompt="A dog").text
    with ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=0) as client:
        assert len(client.generate("A cat").images) == 4  # no budget: four times n


def test_a_huge_revised_prompt_is_clipped_for_the_model(relay: FakeRelay) -> None:
    prompt = "a very long prompt " * 50_000
    relay.queue(Reply.completion(f'```json\n{{"prompt": "{prompt}"}}\n```\n\n{image_link(relay.origin)}'))
    message = invoke(ImageGenerationTool(client=client_for(relay.base_url)), "sync", prompt="A cat")
    assert len(message.text) < 1500
    assert isinstance(message.artifact, ImageGenerationResult)
    assert message.artifact.images[0].revised_prompt == prompt.strip()


async def test_downloads_in_flight_are_capped_per_client(
    relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_flight, most = 0, 0
    real_download = async_saving.download

    async def counted(*args: Any) -> Path:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.05)
            path: Path = await real_download(*args)
            return path
        finally:
            in_flight -= 1

    monkeypatch.setattr(async_saving, "download", counted)
    async with client_for(relay.base_url, save_dir=tmp_path, allow_private_downloads=True) as client:
        results = await asyncio.gather(*(client.agenerate(f"Cat {index}", n=2) for index in range(20)))
    assert all(image.path for result in results for image in result.images)
    assert most == pooling.MAX_DOWNLOADS


@pytest.mark.parametrize(
    "error",
    [httpx2.ReadError(""), httpx2.RemoteProtocolError(""), OSError(), ValueError(), RuntimeError("")],
    ids=lambda error: type(error).__name__,
)
def test_every_save_failure_has_a_reason(tmp_path: Path, error: Exception) -> None:
    reason = storage_module.reason(error, storage_module.SaveOptions(tmp_path, 10))
    assert reason.strip()
    assert not reason.rstrip().endswith(":")
    assert type(error).__name__ in reason or "could not write" in reason


# --- 9. Files: no partial file ever remains; an interrupt stops promptly ---------------------------


def test_ctrl_c_during_a_sync_save_stops_promptly_and_leaves_nothing(
    relay: FakeRelay, host: HostileServer, tmp_path: Path
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n"
    host.play(Answer((head + PNG_HEAD,), pause=0.05, hold=6.0, drip=b"\0" * 1000))
    relay.queue(Reply.completion(image_link(host.base_url.removesuffix("/v1"))))
    client = client_for(relay.base_url, save_dir=tmp_path, allow_private_downloads=True)
    # A real SIGINT to the main thread, as Ctrl-C sends (it interrupts a blocking wait).
    main_thread = threading.main_thread().ident
    assert main_thread is not None
    interrupt = threading.Timer(0.5, signal.pthread_kill, (main_thread, signal.SIGINT))
    with ctrl_c_enabled():
        interrupt.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            generate(client, "sync")
        interrupt.join()
    # Interrupted at 0.5 s; 4 s leaves room for a loaded machine, short of the host's 6 s hold.
    assert time.monotonic() - started < 4
    assert list(tmp_path.iterdir()) == []


async def test_a_cancelled_async_save_leaves_nothing(
    relay: FakeRelay, host: HostileServer, tmp_path: Path
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n"
    host.play(Answer((head + PNG_HEAD,), pause=0.05, hold=6.0, drip=b"\0" * 1000))
    relay.queue(Reply.completion(image_link(host.base_url.removesuffix("/v1"))))
    async with client_for(relay.base_url, save_dir=tmp_path, allow_private_downloads=True) as client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.agenerate("A cat"), 0.5)
    assert os.listdir(tmp_path) == []
