"""Where cassettes live, how they are scrubbed, and which relay a test records from.

Replay (the test command): ``--record-mode=none --block-network``. Every cassette test talks to
``https://relay.test/v1``; the cassette answers, and a missing cassette fails the test.

Record: ``--record-mode=rewrite`` (or ``once``). Tests record from a FakeRelay on loopback, or
from a real relay when ``IMAGE_TOOL_API_KEY`` and ``IMAGE_TOOL_BASE_URL`` are set (tests marked
``emulator_only`` script failures and always use FakeRelay). Either way the relay's address is
rewritten to ``https://relay.test`` and the key never reaches the cassette.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from image_tool import ImageClient, ImageGenerationTool
from image_tool._policy import retries
from image_tool.testing import FakeRelay, Reply
from image_tool.testing._replies import RelayProfile

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
REPLAY_ORIGIN = "https://relay.test"
REPLAY_KEY = "replay-key"
FAKE_RELAY_KEY = "fake-relay-key"  # the key cassettes are recorded with from FakeRelay
LITELLM_MASTER_KEY = "sk-litellm-chain-master"
"""The key clients send the LiteLLM proxy of the chain tests (tests/litellm_proxy.py)."""
# LiteLLM passes the relay's Retry-After on as llm_provider-retry-after.
KEPT_RESPONSE_HEADERS = {"content-type", "retry-after", "retry-after-ms", "llm_provider-retry-after"}

_LOOPBACK_ORIGIN = re.compile(r"http://127\.0\.0\.1:\d+")
_BOUNDARY = re.compile(r"boundary=([^;\s]+)")


def _real_relay() -> tuple[str, str] | None:
    key, url = os.environ.get("IMAGE_TOOL_API_KEY"), os.environ.get("IMAGE_TOOL_BASE_URL")
    return (key, url) if key and url else None


def _to_replay_origin(text: str) -> str:
    text = _LOOPBACK_ORIGIN.sub(REPLAY_ORIGIN, text)
    if real := _real_relay():
        key, url = real
        origin = re.match(r"https?://[^/]+", url.strip())
        if origin:
            text = text.replace(origin.group(0), REPLAY_ORIGIN)
        text = text.replace(key, "[redacted]")
    return text.replace(FAKE_RELAY_KEY, "[redacted]").replace(LITELLM_MASTER_KEY, "[redacted]")


def _scrub_request(request: Any) -> Any:
    """Applied to requests as they are recorded and as they are matched in replay."""
    request.uri = _to_replay_origin(request.uri)
    # A multipart body's boundary is random: one fixed boundary lets a replay match it.
    boundary = _BOUNDARY.search(request.headers.get("Content-Type") or "")  # headers ignore case
    if boundary and isinstance(request.body, bytes):
        request.body = request.body.replace(boundary[1].encode(), b"boundary-of-the-recording")
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {
        name: value for name, value in response["headers"].items() if name.lower() in KEPT_RESPONSE_HEADERS
    }
    body = response["body"].get("string")
    if isinstance(body, bytes):
        with contextlib.suppress(UnicodeDecodeError):  # binary (an image): nothing to rewrite
            response["body"]["string"] = _to_replay_origin(body.decode()).encode()
    return response


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    return {
        "filter_headers": ["authorization", "host"],
        "before_record_request": _scrub_request,
        "before_record_response": _scrub_response,
        # The request body is matched too: a replay proves the client sent the recorded request.
        "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
        "decode_compressed_response": True,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])


@dataclass
class RelayTarget:
    """The relay a test talks to: the replay address, FakeRelay, or a real relay."""

    base_url: str
    api_key: str
    fake: FakeRelay | None = None

    def queue(self, *replies: Reply) -> None:
        """Script FakeRelay's next answers (in replay, the cassette already holds them)."""
        if self.fake is not None:
            self.fake.queue(*replies)


@pytest.fixture
def relay(request: pytest.FixtureRequest, record_mode: str) -> Iterator[RelayTarget]:
    real = _real_relay()
    if record_mode == "none":
        yield RelayTarget(f"{REPLAY_ORIGIN}/v1", REPLAY_KEY)
    elif real and not request.node.get_closest_marker("emulator_only"):
        yield RelayTarget(base_url=real[1], api_key=real[0])
    else:
        marker = request.node.get_closest_marker("relay_profile")
        profile: RelayProfile = marker.args[0] if marker else "vendor"
        with FakeRelay(api_key=FAKE_RELAY_KEY, profile=profile) as fake:
            yield RelayTarget(fake.base_url, fake.api_key, fake)


@pytest.fixture
def client(relay: RelayTarget) -> Iterator[ImageClient]:
    """A client without retries: each cassette holds one answer per call (retries are tested on
    loopback, in test_faults.py)."""
    with ImageClient(api_key=relay.api_key, base_url=relay.base_url, max_retries=0) as client:
        yield client


@pytest.fixture
def tool(client: ImageClient) -> ImageGenerationTool:
    return ImageGenerationTool(client=client)


@pytest.fixture
def fake_relay() -> Iterator[FakeRelay]:
    """A live FakeRelay on loopback, for tests of timing, pooling and the emulator itself."""
    with FakeRelay() as relay:
        yield relay


@pytest.fixture
def live_client(fake_relay: FakeRelay) -> Iterator[ImageClient]:
    with ImageClient(api_key=fake_relay.api_key, base_url=fake_relay.base_url, max_retries=0) as client:
        yield client


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A relay's tasks (Midjourney) polled hundredths of a second apart: the same sequence, sooner."""
    from image_tool._async import tasks as async_tasks
    from image_tool._sync import tasks as sync_tasks

    for module in (async_tasks, sync_tasks):
        monkeypatch.setattr(module, "POLL_FIRST", 0.01)
        monkeypatch.setattr(module, "POLL_MAX", 0.05)


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff in hundredths of a second, so retrying suites stay fast; the policy is the same."""
    monkeypatch.setattr(retries, "BACKOFF_INITIAL", 0.01)
    monkeypatch.setattr(retries, "BACKOFF_MAX", 0.05)


@pytest.fixture(autouse=True)
def _no_relay_environment(monkeypatch: pytest.MonkeyPatch, record_mode: str) -> None:
    """Tests set the relay explicitly; the developer's own variables must not leak in (in replay)."""
    if record_mode == "none":
        for name in ("IMAGE_TOOL_API_KEY", "IMAGE_TOOL_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _tracer_provider_per_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The OpenTelemetry tracer provider a test (or a documentation snippet) sets records that
    test's spans alone (tests/tracing_provider.py); without OpenTelemetry (the Ray virtualenv), nothing."""
    try:
        from .tracing_provider import per_test
    except ImportError:
        yield
        return
    with per_test(monkeypatch):
        yield
