"""The LiteLLM proxy, real relay software, on loopback in front of FakeRelay.

A pytest plugin: a test module that needs the chain declares ``pytest_plugins =
["tests.litellm_proxy"]`` (and imports it no other way, so that pytest rewrites its asserts) and
takes the session-scoped ``litellm_proxy`` fixture. One proxy serves the whole session (it takes
seconds to start); tests queue replies on the FakeRelay behind it and call
``ImageClient(api_key=proxy.api_key, base_url=proxy.base_url)``.

The proxy runs from its own virtualenv, ``.venv-proxy`` (``scripts/check.sh`` installs the
``litellm-proxy`` dependency group there), or from the command named by ``IMAGE_TOOL_LITELLM``.
Without either, the tests that need it are skipped.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx2
import pytest

from image_tool.testing import FakeRelay

from .conftest import LITELLM_MASTER_KEY as MASTER_KEY

ROOT = Path(__file__).resolve().parent.parent
CONFIG_TEMPLATE = Path(__file__).with_name("litellm_config.yaml")
NOT_INSTALLED = (
    "LiteLLM proxy not installed: run scripts/check.sh, which installs the litellm-proxy group "
    "into .venv-proxy"
)
START_DEADLINE = 150.0
"""Seconds the proxy may take to answer its liveness probe: 5 to 15 s on a quiet machine, twice
that on a loaded one. Generous, as it costs time only when the proxy cannot start."""
STOP_GRACE = 10.0
_LOG_TAIL = 40
_started_in: list[float] = []


@dataclass(frozen=True)
class LiteLLMProxy:
    """A running proxy and the FakeRelay behind it."""

    base_url: str
    """The proxy's OpenAI-compatible base URL: ``http://127.0.0.1:PORT/v1``."""
    api_key: str
    relay: FakeRelay
    pid: int
    log: Path
    started_in: float
    """Seconds from launch to the first successful liveness probe."""


class ProxyStartError(RuntimeError):
    """The proxy exited or did not become ready in time; the message ends with its log."""


def litellm_executable() -> Path | str:
    """The ``litellm`` command (``IMAGE_TOOL_LITELLM``, else ``.venv-proxy/bin/litellm``), or why
    there is none."""
    configured = os.environ.get("IMAGE_TOOL_LITELLM")
    candidate = Path(configured) if configured else ROOT / ".venv-proxy" / "bin" / "litellm"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    return f"IMAGE_TOOL_LITELLM={configured} is not an executable file" if configured else NOT_INSTALLED


def proxy_environment(home: Path) -> dict[str, str]:
    """A minimal environment: nothing of the developer's (keys, a database URL, HTTP proxies)
    reaches the proxy, and it neither goes to the internet nor writes outside ``home``."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYTHONIOENCODING": "utf-8",
        # The model cost map ships with the package; by default it fetches a fresh one first.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # Its usage telemetry is off unless consented to; this vetoes it whatever is stored.
        "LITELLM_TELEMETRY_DISABLED": "true",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _log_tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL:])


def _wait_until_ready(process: subprocess.Popen[bytes], origin: str, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    with httpx2.Client(timeout=10.0, trust_env=False) as probe:  # a slow answer still counts
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ProxyStartError(
                    f"The LiteLLM proxy exited with code {process.returncode} before it was ready. "
                    f"The end of its log ({log}):\n{_log_tail(log)}"
                )
            with contextlib.suppress(httpx2.HTTPError):
                if probe.get(f"{origin}/health/liveliness").status_code == 200:
                    return
            time.sleep(0.1)
    raise ProxyStartError(
        f"The LiteLLM proxy did not answer {origin}/health/liveliness within {START_DEADLINE:.0f} s. "
        f"The end of its log ({log}):\n{_log_tail(log)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the proxy by its PID, and kill it if it does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_GRACE)


@contextlib.contextmanager
def running_proxy(executable: Path, workdir: Path) -> Iterator[LiteLLMProxy]:
    """FakeRelay, and the LiteLLM proxy in front of it, until the block ends."""
    with FakeRelay() as relay:
        port = _free_port()
        config = workdir / "litellm_config.yaml"
        config.write_text(
            Template(CONFIG_TEMPLATE.read_text(encoding="utf-8")).substitute(
                upstream_base_url=relay.base_url, upstream_api_key=relay.api_key, master_key=MASTER_KEY
            ),
            encoding="utf-8",
        )
        log = workdir / "litellm.log"
        command = [str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        started = time.monotonic()
        with log.open("wb") as sink:
            process = subprocess.Popen(  # noqa: S603  # our own command line, no shell
                command, stdout=sink, stderr=subprocess.STDOUT, env=proxy_environment(workdir), cwd=workdir
            )
        try:
            origin = f"http://127.0.0.1:{port}"
            _wait_until_ready(process, origin, log)
            yield LiteLLMProxy(
                base_url=f"{origin}/v1",
                api_key=MASTER_KEY,
                relay=relay,
                pid=process.pid,
                log=log,
                started_in=time.monotonic() - started,
            )
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def litellm_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    """One LiteLLM proxy for the session, in front of a FakeRelay (skipped when not installed)."""
    executable = litellm_executable()
    if isinstance(executable, str):
        pytest.skip(executable)
    with running_proxy(executable, tmp_path_factory.mktemp("litellm-proxy")) as proxy:
        _started_in.append(proxy.started_in)
        yield proxy


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How long the proxy took to start, when the session started one."""
    for seconds in _started_in:
        terminalreporter.write_line(f"LiteLLM proxy ready in {seconds:.1f} s")
