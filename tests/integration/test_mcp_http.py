"""The MCP server over streamable HTTP for a team: the real command, real MCP SDK clients with
tokens of their own, FakeRelay behind it. Tokens, limits per client and per server, Host checks,
TLS and a stop that lets calls in flight finish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from image_tool.testing import FakeRelay, Reply

from ..helpers import wait_until

TOKENS = {"alice": "alice-" + "a" * 30, "bob": "bob-" + "b" * 30}


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process, self.url = process, url
        self.stderr: list[str] = []
        assert process.stderr is not None
        stream = process.stderr
        # Read on, so the server never blocks on a full pipe; the lines are there for a failing test.
        threading.Thread(target=lambda: self.stderr.extend(stream), daemon=True).start()

    @asynccontextmanager
    async def client(self, token: str, **httpx_options: Any) -> AsyncIterator[Client]:
        """An MCP SDK client that sends ``token`` (the SDK takes headers from an httpx2 client)."""
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30, **httpx_options) as http:
            transport = streamable_http_client(self.url, http_client=http)
            async with Client(transport, read_timeout_seconds=30) as client:
                yield client


@contextmanager
def serving(relay: FakeRelay, tmp_path: Path, *flags: str, scheme: str = "http") -> Iterator[Served]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    env = {**os.environ, "IMAGE_TOOL_API_KEY": relay.api_key, "IMAGE_TOOL_BASE_URL": relay.base_url}
    command = [sys.executable, "-m", "image_tool.mcp_server", "--transport", "http", "--port", "0"]
    command += ["--tokens", str(tokens), "--allow-private-downloads", *flags]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "serving" in first, first + process.stderr.read()
        url = first.split("serving ", 1)[1].split(" to ", 1)[0]
        assert url.startswith(f"{scheme}://127.0.0.1:") and url.endswith("/mcp")
        yield Served(process, url)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()


def text_of(result: CallToolResult) -> str:
    return "\n".join(item.text for item in result.content if isinstance(item, TextContent))


async def generate(served: Served, token: str, **arguments: Any) -> CallToolResult:
    async with served.client(token) as client:
        return await client.call_tool("generate_image", {"prompt": "A cat", **arguments})


def test_two_clients_share_one_server_each_with_its_own_token_ids_and_budget(
    fake_relay: FakeRelay, tmp_path: Path
) -> None:
    async def scenario(served: Served) -> None:
        alice, bob = await asyncio.gather(
            generate(served, TOKENS["alice"], n=2), generate(served, TOKENS["bob"])
        )
        assert not alice.is_error and not bob.is_error
        assert "img_2:" in text_of(alice) and "img_1:" in text_of(bob)
        assert "Left in this budget: 1 image(s)." in text_of(alice)  # 3 each, 2 drawn
        assert alice.structured_content and alice.structured_content["limits"]["client"] == "alice"
        # Bob's ids are his own: he has no img_2.
        borrowed = await generate(served, TOKENS["bob"], image_urls=["img_2"])
        assert borrowed.is_error and "img_2 is not an image of this conversation" in text_of(borrowed)
        spent = await generate(served, TOKENS["alice"], n=2)
        assert spent.is_error and "Only 1 more image(s)" in text_of(spent)
        for result in (alice, bob, borrowed, spent):
            assert fake_relay.api_key not in result.model_dump_json()

    with serving(
        fake_relay, tmp_path, "--client-max-images", "3", "--save-dir", str(tmp_path / "saved")
    ) as served:
        asyncio.run(scenario(served))
    users = sorted(request.json["user"] for request in fake_relay.requests if request.method == "POST")
    assert users == ["alice", "bob"]  # each client is the end user the relay is told of


def test_a_wrong_or_missing_token_is_refused_with_401_and_no_detail(
    fake_relay: FakeRelay, tmp_path: Path
) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    with serving(fake_relay, tmp_path) as served:
        for headers in (
            {},
            {"Authorization": "Bearer " + TOKENS["alice"][:-1]},
            {"Authorization": "Basic x"},
        ):
            answer = httpx2.post(served.url, json=initialize, headers=headers, timeout=10)
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"].startswith("Bearer ")
            assert "alice" not in answer.text and "bob" not in answer.text

        async def refused() -> None:
            async with served.client("not-a-token-" + "x" * 20) as client:
                await client.list_tools()

        with pytest.raises(Exception):  # noqa: B017, PT011  # the SDK's own error for a 401
            asyncio.run(refused())
    assert fake_relay.requests == []


def test_a_host_header_not_allowed_is_refused(fake_relay: FakeRelay, tmp_path: Path) -> None:
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    authorized = {
        "Authorization": f"Bearer {TOKENS['alice']}",
        "Accept": "application/json, text/event-stream",
    }
    with serving(fake_relay, tmp_path) as served:
        rebound = httpx2.post(
            served.url, json=listing, headers={**authorized, "Host": "evil.example"}, timeout=10
        )
        foreign = httpx2.post(
            served.url, json=listing, headers={**authorized, "Origin": "https://evil.example"}, timeout=10
        )
    assert rebound.status_code in (400, 403, 421)
    assert foreign.status_code in (400, 403)


def test_limits_per_client_and_for_the_server_are_refused_with_advice(
    fake_relay: FakeRelay, tmp_path: Path
) -> None:
    async def scenario(served: Served) -> None:
        fake_relay.queue(Reply.slow(1.5))
        slow = asyncio.ensure_future(generate(served, TOKENS["alice"]))
        await asyncio.sleep(0.7)
        second = await generate(served, TOKENS["alice"])
        assert second.is_error and "This client already has 1 generate_image call(s) running" in text_of(
            second
        )
        assert not (await slow).is_error
        fake_relay.queue(Reply.content_policy())
        refused = await generate(served, TOKENS["alice"])  # drew nothing: counts for nothing
        assert refused.is_error and "content policy" in text_of(refused)
        for _ in range(2):
            assert not (await generate(served, TOKENS["alice"])).is_error
        minute = await generate(served, TOKENS["alice"])  # alice's three a minute are drawn
        assert minute.is_error and "may draw 3 a minute. Wait" in text_of(minute)
        assert minute.structured_content and minute.structured_content["limits"]["images_last_minute"] == 3
        bob = await generate(served, TOKENS["bob"])  # the server's four a minute: bob draws one
        assert not bob.is_error
        server = await generate(served, TOKENS["bob"])
        assert server.is_error and "The server has drawn 4 image(s)" in text_of(server)

    limits = ["--client-calls-at-once", "1", "--client-images-per-minute", "3", "--images-per-minute", "4"]
    with serving(fake_relay, tmp_path, *limits) as served:
        asyncio.run(scenario(served))
    assert len([request for request in fake_relay.requests if request.method == "POST"]) == 5


def test_a_stop_lets_the_call_in_flight_finish(fake_relay: FakeRelay, tmp_path: Path) -> None:
    results: list[CallToolResult] = []

    async def call(served: Served) -> None:
        async with served.client(TOKENS["bob"]) as client:
            # Listed first, as clients do: the SDK checks a result against the listing it holds.
            await client.list_tools()
            results.append(await client.call_tool("generate_image", {"prompt": "A cat"}))

    async def scenario(served: Served) -> None:
        fake_relay.queue(Reply.slow(2))
        calling = asyncio.ensure_future(call(served))
        await asyncio.to_thread(
            wait_until, lambda: bool(fake_relay.requests), "the call never reached the relay"
        )
        served.process.send_signal(signal.SIGTERM)
        # The answer comes; what the client sends after it may find the server gone.
        await asyncio.gather(calling, return_exceptions=True)

    with serving(fake_relay, tmp_path) as served:
        asyncio.run(scenario(served))
        # uvicorn stops, then ends as the signal would have ended it.
        assert served.process.wait(timeout=30) in (0, -signal.SIGTERM)
    (result,) = results
    assert not result.is_error, text_of(result)
    assert "img_1:" in text_of(result)


def test_tls_from_a_certificate(fake_relay: FakeRelay, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def scenario(served: Served) -> CallToolResult:
        trusted = ssl.create_default_context(cafile=str(ca_file))
        async with served.client(TOKENS["alice"], verify=trusted) as client:
            return await client.call_tool("generate_image", {"prompt": "A cat"})

    with serving(
        fake_relay, tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https"
    ) as served:
        assert not asyncio.run(scenario(served)).is_error
        with pytest.raises(httpx2.ConnectError):
            httpx2.post(served.url, json={}, timeout=10)  # not trusted without the CA


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "needs client tokens"),
        (["--host", "0.0.0.0"], "--allowed-host"),  # noqa: S104  # refused before it binds
        (["--tls-cert", "cert.pem"], "both --tls-cert and --tls-key"),
    ],
)
def test_a_server_that_would_fail_open_does_not_start(
    tmp_path: Path,
    flags: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from image_tool.mcp_server import main

    monkeypatch.setenv("IMAGE_TOOL_API_KEY", "test-key")
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.chdir(tmp_path)
    if flags != []:
        monkeypatch.setenv("IMAGE_TOOL_MCP_TOKENS", json.dumps(TOKENS))
    assert main(["--transport", "http", "--port", "0", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and TOKENS["alice"] not in err


def test_plain_http_on_an_open_address_warns_that_tokens_travel_in_clear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from image_tool._mcp.http import HttpOptions, check

    check(HttpOptions(host="0.0.0.0", allowed_hosts=["images.example.com:*"]))  # noqa: S104  # checked, not bound
    # (Words without a k: the log filter hides every key the tests gave, "k" among them.)
    assert "travel in clear" in caplog.text
    caplog.clear()
    check(HttpOptions(host="127.0.0.1"))
    assert caplog.text == ""


def test_a_busy_port_names_the_flag(
    fake_relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from image_tool.mcp_server import main

    with serving(fake_relay, tmp_path) as served:
        monkeypatch.setenv("IMAGE_TOOL_API_KEY", fake_relay.api_key)
        monkeypatch.setenv("IMAGE_TOOL_BASE_URL", fake_relay.base_url)
        monkeypatch.setenv("IMAGE_TOOL_MCP_TOKENS", json.dumps(TOKENS))
        port = served.url.split(":")[2].split("/")[0]
        assert main(["--transport", "http", "--port", port]) == 2
    assert "choose another --port" in capsys.readouterr().err
