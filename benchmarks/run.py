"""What image-tool adds around a generation, measured beside raw httpx2 and the OpenAI SDK in one run.

    .venv/bin/python -m benchmarks.run            # the full run (a few minutes)
    .venv/bin/python -m benchmarks.run --quick    # small counts, seconds (the test suite runs it)
    .venv/bin/python -m benchmarks.run --only imports --python /tmp/rt-venv/bin/python
                                                  # import times in a virtualenv with only the
                                                  # runtime dependencies (pip install -e .)

FakeRelay runs in its own process, so it does not share this process's event loop or core.
Every figure is a median over repeats, and a ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx2
from langchain_core.tools import BaseTool
from openai import AsyncOpenAI, OpenAI

from image_tool import Fallback, GeneratedImage, ImageClient, ImageGenerationResult, ImageGenerationTool
from image_tool._async.saving import save_images as asave_images
from image_tool._io.pooling import CALLS_PER_SHARD
from image_tool._io.storage import SaveOptions
from image_tool._tool.advice import describe_result
from image_tool._wire.parsing import parse_result
from image_tool.batch import run_batch
from image_tool.testing import FakeRelay, Reply

PROMPT = "A lighthouse on a cliff at dawn"
CALL = {"name": "generate_image", "args": {"prompt": PROMPT}, "id": "call_1", "type": "tool_call"}
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
BODY = {"model": "gpt-4o-image", "messages": MESSAGES, "n": 1}


@dataclass(frozen=True)
class Plan:
    repeats: int
    calls: int  # sequential calls per repeat, for per-call overhead
    concurrency: tuple[int, ...]
    thread_bound_concurrency: tuple[int, ...]
    latency: float
    answer_megabytes: tuple[int, ...]
    download_megabytes: int
    imports: int
    bulk_prompts: int  # prompts of each bulk run
    bulk_rate: float  # requests a second the rate-limited relay allows
    in_flight: int  # calls held in flight for the memory and CPU figures
    crowd: int  # calls at once at a generation's latency
    crowd_latency: float
    crowd_rounds: int
    images_api_megabytes: int  # the inline images of one Images API answer, base64
    rates: tuple[
        tuple[float, float, int], ...
    ]  # relays' rates: (requests a second, seconds a generation, prompts)


FULL = Plan(
    *(
        5,
        200,
        (1, 10, 100, 500, 1000),
        (1, 10, 100),
        1.0,
        (2, 4, 8),
        32,
        41,
        300,
        20.0,
        500,
        1000,
        10.0,
        3,
        10,
    ),
    rates=((10.0, 0.2, 600), (3.0, 2.0, 180), (50.0, 1.0, 3000)),  # a minute each at the rate
)
QUICK = Plan(
    2, 5, (1, 5), (1, 5), 0.05, (1, 2), 2, 1, 12, 20.0, 10, 20, 0.05, 1, 1, rates=((20.0, 0.05, 12),)
)


@dataclass(frozen=True)
class Relay:
    base_url: str
    api_key: str

    @property
    def origin(self) -> str:
        return self.base_url.removesuffix("/v1")

    @property
    def headers(self) -> dict[str, str]:
        """What a raw request sends to be let in."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def settings(self, **more: Any) -> dict[str, Any]:
        """An ImageClient's settings for this relay, and ``more``."""
        return {"api_key": self.api_key, "base_url": self.base_url, **more}


@contextlib.contextmanager
def server_process(command: list[str]) -> Iterator[str]:
    """``command`` run as a server in its own process: yields the first line it prints, and stops
    it on leaving."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@contextlib.contextmanager
def relay_process(latency: float) -> Iterator[Relay]:
    """FakeRelay in its own process (markdown chat completions, as most relays answer)."""
    command = [sys.executable, "-m", "image_tool.cli", "fake-relay", "--port", "0", "--pace", "0"]
    with server_process([*command, "--latency", str(latency)]) as banner:
        yield Relay(banner.split("serving ", 1)[1].split(" ", 1)[0], "fake-relay-key")


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm up: connections, caches
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def table(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = [f"\n### {title}\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def per_call_overhead(plan: Plan) -> str:
    rows = []
    with relay_process(latency=0.0) as relay:
        headers, url = relay.headers, relay.chat_url
        settings = relay.settings()

        def sequential(call: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                for _ in range(plan.calls):
                    call()

            return run

        def asequential(call: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                for _ in range(plan.calls):
                    await call()

            return run

        with httpx2.Client() as http, ImageClient(**settings) as client:
            tool = ImageGenerationTool(client=client)
            openai = OpenAI(api_key=relay.api_key, base_url=relay.base_url, max_retries=0)
            sync: list[tuple[str, Callable[[], object]]] = [
                ("raw httpx2: Client.post + json", lambda: http.post(url, json=BODY, headers=headers).json()),
                ("ImageClient.generate", lambda: client.generate(PROMPT)),
                ("tool.invoke(ToolCall)", lambda: tool.invoke(CALL)),
                (
                    "OpenAI SDK: chat.completions.create",
                    lambda: openai.chat.completions.create(model="gpt-4o-image", messages=MESSAGES),
                ),
            ]
            baseline = 0.0
            for name, call in sync:
                seconds = median_seconds(sequential(call), plan.repeats) / plan.calls
                baseline = baseline or seconds
                rows.append((f"sync: {name}", f"{seconds * 1e6:.0f} µs", f"{seconds / baseline:.2f}x", ""))
            openai.close()

        async def async_rows() -> list[tuple[str, float]]:
            async with httpx2.AsyncClient() as ahttp, ImageClient(**settings) as aclient:
                atool = ImageGenerationTool(client=aclient)
                aopenai = AsyncOpenAI(api_key=relay.api_key, base_url=relay.base_url, max_retries=0)

                async def raw() -> object:
                    return (await ahttp.post(url, json=BODY, headers=headers)).json()

                bare = BareTool(call=raw, args_schema=atool.args_schema)
                contenders: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                    ("raw httpx2: AsyncClient.post + json", raw),
                    ("ImageClient.agenerate", lambda: aclient.agenerate(PROMPT)),
                    (
                        "bare BaseTool, same argument schema, raw call: ainvoke(ToolCall)",
                        lambda: bare.ainvoke(CALL),
                    ),
                    ("tool.ainvoke(ToolCall)", lambda: atool.ainvoke(CALL)),
                    (
                        "OpenAI SDK: chat.completions.create",
                        lambda: aopenai.chat.completions.create(model="gpt-4o-image", messages=MESSAGES),
                    ),
                ]
                measured = []
                for name, call in contenders:
                    run = asequential(call)
                    await run()
                    samples = []
                    for _ in range(plan.repeats):
                        started = time.perf_counter()
                        await run()
                        samples.append(time.perf_counter() - started)
                    measured.append((name, statistics.median(samples) / plan.calls))
                await aopenai.close()
                return measured

        measured = asyncio.run(async_rows())
        baseline, bare_tool = measured[0][1], measured[2][1]
        goals = {"ImageClient.agenerate": ratio_goal(measured[1][1], baseline, 1.2, "raw httpx2")}
        goals["tool.ainvoke(ToolCall)"] = ratio_goal(measured[3][1], bare_tool, 1.15, "the bare BaseTool")
        for name, seconds in measured:
            row = (
                f"async: {name}",
                f"{seconds * 1e6:.0f} µs",
                f"{seconds / baseline:.2f}x",
                goals.get(name, ""),
            )
            rows.append(row)
    return table(
        f"Per-call overhead at zero server latency ({plan.calls} sequential calls, median of {plan.repeats})",
        ("contender", "per call", "vs raw httpx2", "goal"),
        rows,
    )


def ratio_goal(measured: float, baseline: float, limit: float, of: str) -> str:
    ratio = measured / baseline
    return f"within {limit:g}x {of}: {'met' if ratio <= limit else 'missed'} ({ratio:.2f}x)"


class BareTool(BaseTool):
    """The least a LangChain tool with image-tool's arguments can be: ``_arun`` awaits the raw httpx2
    call. (LangChain validates the arguments and looks for injected ones on every call: that
    costs the same for any tool with an argument schema.)"""

    name: str = "generate_image"
    description: str = "Generate an image."
    call: Callable[[], Awaitable[object]]

    def _run(self, prompt: str, **arguments: object) -> str:
        raise NotImplementedError

    async def _arun(self, prompt: str, **arguments: object) -> str:
        return str(await self.call())


async def plain_socket_call(relay: Relay) -> bytes:
    """One request on its own connection with asyncio streams: what the relay can do, no client stack."""
    host, port = relay.origin.removeprefix("http://").split(":")
    body = json.dumps(BODY).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n"
        f"Authorization: Bearer {relay.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode() + body)
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


class ThreadBoundTool(BaseTool):
    """What most image tools are: only a sync ``_run``; LangChain runs ``ainvoke`` on a thread pool."""

    name: str = "generate_image"
    description: str = "Generate an image."
    client: ImageClient

    def _run(self, prompt: str) -> str:
        return describe_result(self.client.generate(prompt))


def concurrency(plan: Plan) -> str:
    """Wall time of N calls at once, each answered after ``plan.latency``. Plain sockets, the client
    and the tool take turns, round after round (medians), so a slow spell of the machine falls on
    all three alike; raw httpx2 and the sync-only tool, far slower at large counts, run apart."""
    rows = []
    with relay_process(latency=plan.latency) as relay:
        headers, url = relay.headers, relay.chat_url
        # A client that lets every call of the largest count run at once (the default is 512).
        settings = relay.settings(max_concurrency=max(plan.concurrency))

        async def wall_times(count: int) -> dict[str, float]:
            limits = httpx2.Limits(max_connections=None)
            async with (
                httpx2.AsyncClient(limits=limits, timeout=60) as http,
                ImageClient(**settings) as client,
            ):
                tool = ImageGenerationTool(client=client)

                async def raw() -> object:
                    return (await http.post(url, json=BODY, headers=headers)).json()

                async def wall(call: Callable[[], Awaitable[object]]) -> float:
                    started = time.perf_counter()
                    await asyncio.gather(*(call() for _ in range(count)))
                    return time.perf_counter() - started

                contenders: dict[str, Callable[[], Awaitable[object]]] = {
                    "sockets": lambda: plain_socket_call(relay),
                    "client": lambda: client.agenerate(PROMPT),
                    "tool": lambda: tool.ainvoke(CALL),
                }
                samples: dict[str, list[float]] = {name: [] for name in contenders}
                for call in contenders.values():
                    await wall(call)  # warm up: connections, caches
                for _ in range(plan.repeats):
                    for name, call in contenders.items():
                        samples[name].append(await wall(call))
                times = {name: statistics.median(values) for name, values in samples.items()}
                await wall(raw)
                times["raw"] = await wall(raw)
                if count in plan.thread_bound_concurrency:
                    with ImageClient(**settings) as sync_client:
                        bound = ThreadBoundTool(client=sync_client)
                        times["thread-bound"] = await wall(lambda: bound.ainvoke({"prompt": PROMPT}))
                return times

        workers = min(32, (os.cpu_count() or 1) + 4)
        for count in plan.concurrency:
            times = asyncio.run(wall_times(count))
            beside = {
                name: f"{seconds:.2f} s ({seconds / times['sockets']:.2f}x)"
                for name, seconds in times.items()
            }
            unbound = f"not run (≈ {count / workers * plan.latency:.0f} s on {workers} threads)"
            rows.append(
                (
                    str(count),
                    f"{times['sockets']:.2f} s",
                    beside["raw"],
                    beside["client"],
                    beside["tool"],
                    beside.get("thread-bound", unbound),
                )
            )
    return table(
        f"Concurrent calls, {plan.latency:g} s server latency: wall time (x plain sockets; "
        f"median of {plan.repeats} rounds taken in turns)",
        (
            "calls at once",
            "plain asyncio sockets (the relay's capacity)",
            "raw httpx2 (one AsyncClient)",
            "ImageClient.agenerate",
            "tool.ainvoke",
            "sync-only tool, ainvoke",
        ),
        rows,
    )


def crowd(plan: Plan) -> str:
    """``plan.crowd`` tool calls at once against a relay answering each after ``plan.crowd_latency``
    (a generation's time): wall time beside plain sockets, and ``agenerate`` beside raw httpx2 on as
    many AsyncClients as image-tool spreads the calls over (``pooling.CALLS_PER_SHARD`` each). The
    contenders take turns, round after round; CPU is this process's, per call."""
    count = plan.crowd
    shards = -(-count // CALLS_PER_SHARD)
    with relay_process(latency=plan.crowd_latency) as relay:
        headers, url = relay.headers, relay.chat_url
        settings = relay.settings(max_concurrency=count)

        async def rounds() -> dict[str, tuple[float, float]]:
            limits = httpx2.Limits(max_connections=None)
            clients = [httpx2.AsyncClient(limits=limits, timeout=60) for _ in range(shards)]
            async with contextlib.AsyncExitStack() as stack, ImageClient(**settings) as client:
                for http in clients:
                    await stack.enter_async_context(http)
                tool = ImageGenerationTool(client=client)

                async def raw(index: int) -> object:
                    return (await clients[index % shards].post(url, json=BODY, headers=headers)).json()

                contenders: dict[str, Callable[[int], Awaitable[object]]] = {
                    "sockets": lambda _: plain_socket_call(relay),
                    "raw": raw,
                    "client": lambda _: client.agenerate(PROMPT),
                    "tool": lambda _: tool.ainvoke(CALL),
                }

                async def wall(call: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
                    started, cpu = time.perf_counter(), time.process_time()
                    await asyncio.gather(*(call(index) for index in range(count)))
                    return time.perf_counter() - started, (time.process_time() - cpu) / count

                samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
                for call in contenders.values():
                    await wall(call)  # warm up: connections, caches
                for _ in range(plan.crowd_rounds):
                    for name, call in contenders.items():
                        samples[name].append(await wall(call))
                return {
                    name: (
                        statistics.median(seconds for seconds, _ in values),
                        statistics.median(cpu for _, cpu in values),
                    )
                    for name, values in samples.items()
                }

        times = asyncio.run(rounds())
    sockets, raw = times["sockets"][0], times["raw"][0]
    names = {
        "sockets": "plain asyncio sockets (the relay's capacity)",
        "raw": f"raw httpx2 on {shards} AsyncClients",
        "client": "ImageClient.agenerate",
        "tool": "tool.ainvoke(ToolCall)",
    }
    goals = {
        "client": ratio_goal(times["client"][0], raw, 1.05, "raw httpx2"),
        "tool": ratio_goal(times["tool"][0], sockets, 1.15, "plain sockets"),
    }
    rows = [
        (
            names[name],
            f"{seconds:.2f} s",
            f"{seconds / sockets:.3f}x",
            f"{cpu * 1000:.2f} ms",
            goals.get(name, ""),
        )
        for name, (seconds, cpu) in times.items()
    ]
    return table(
        f"{count} calls at once, {plan.crowd_latency:g} s server latency (median of {plan.crowd_rounds} "
        "rounds taken in turns)",
        ("contender", "wall time", "x plain sockets", "CPU per call", "goal"),
        rows,
    )


def big_answers(plan: Plan) -> str:
    rows = []
    for megabytes in plan.answer_megabytes:
        image = "iVBOR" + "A" * (megabytes * 1024 * 1024 // 4)
        content = "\n\n".join(
            f"![Generated Image](data:image/png;base64,{image}{index})" for index in range(4)
        )
        body = json.dumps(
            {"object": "chat.completion", "choices": [{"message": {"content": content}}]}
        ).encode()
        seconds = median_seconds(functools.partial(parse_result, body, requested_model="m"), plan.repeats)
        tracemalloc.start()
        parse_result(body, requested_model="m")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        size = len(body) / 1024 / 1024
        rows.append(
            (
                f"parse 4 inline images, {size:.1f} MiB answer",
                f"{seconds * 1000:.1f} ms ({seconds * 1000 / size:.1f} ms/MiB)",
                f"{peak / 1024 / 1024:.1f} MiB ({peak / len(body):.1f}x the answer)",
            )
        )
    with relay_process(latency=0.0) as relay, TemporaryDirectory() as directory:
        urls = [
            f"{relay.origin}/images/large/{plan.download_megabytes}mb/{index:016x}.png" for index in range(4)
        ]
        result = ImageGenerationResult(model="m", images=[GeneratedImage(url=url) for url in urls])
        options = SaveOptions(Path(directory), 1024 * 1024 * 1024)

        async def save() -> ImageGenerationResult:
            async with httpx2.AsyncClient() as http:
                return await asave_images(result, options, lambda: http)

        asyncio.run(save())  # warm up
        started = time.perf_counter()
        tracemalloc.start()
        saved = asyncio.run(save())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        seconds = time.perf_counter() - started
        assert all(image.path for image in saved.images), [image.save_error for image in saved.images]
        rows.append(
            (
                f"download and save 4 images of {plan.download_megabytes} MiB at once",
                f"{seconds * 1000:.0f} ms",
                f"{peak / 1024 / 1024:.2f} MiB (images: {4 * plan.download_megabytes} MiB)",
            )
        )
    return table("Big answers and downloads", ("work", "time", "peak memory (tracemalloc)"), rows)


FIXED_ANSWER_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

body = open(sys.argv[1], "rb").read()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        head = "HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
        self.wfile.write(f"{head}Content-Length: {len(body)}\\r\\n\\r\\n".encode() + body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def fixed_answer_process(body: bytes) -> Iterator[Relay]:
    """A server in its own process answering every POST with ``body``."""
    with TemporaryDirectory() as directory:
        path = Path(directory) / "answer.json"
        path.write_bytes(body)
        with server_process([sys.executable, "-c", FIXED_ANSWER_SERVER, str(path)]) as port:
            yield Relay(f"http://127.0.0.1:{port.strip()}/v1", "fake-relay-key")


def images_api_answer(plan: Plan) -> str:
    """An Images API answer of 4 inline images, saved: ImageClient beside raw httpx2 + ``json`` +
    ``b64decode`` + a file write (time: median of ``plan.repeats``; memory: tracemalloc's peak)."""
    size = plan.images_api_megabytes * 1024 * 1024 // 4 * 3 // 4  # bytes of each image
    images = [b"\x89PNG\r\n\x1a\n" + os.urandom(size) for _ in range(4)]
    answer = {"created": 1, "data": [{"b64_json": base64.b64encode(image).decode()} for image in images]}
    body = json.dumps(answer).encode()
    request = {"model": "gpt-image-1", "prompt": PROMPT, "n": 4}
    with fixed_answer_process(body) as relay, TemporaryDirectory() as directory:
        headers, settings = relay.headers, relay.settings(api="images")

        async def measure() -> dict[str, tuple[float, int]]:
            async with (
                httpx2.AsyncClient(timeout=60) as http,
                ImageClient(**settings, model="gpt-image-1", save_dir=Path(directory) / "tool") as client,
            ):

                async def raw() -> object:
                    data = (
                        await http.post(f"{relay.base_url}/images/generations", json=request, headers=headers)
                    ).json()
                    for index, item in enumerate(data["data"]):
                        (Path(directory) / f"raw-{index}.png").write_bytes(base64.b64decode(item["b64_json"]))
                    return data

                async def ours() -> object:
                    result = await client.agenerate(PROMPT, n=4)
                    assert all(image.path for image in result.images), result
                    return result

                measured = {}
                for name, call in (("raw", raw), ("client", ours)):
                    await call()  # warm up
                    samples = []
                    for _ in range(plan.repeats):
                        started = time.perf_counter()
                        await call()
                        samples.append(time.perf_counter() - started)
                    tracemalloc.start()
                    await call()
                    peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
                    measured[name] = (statistics.median(samples), peak)
                return measured

        measured = asyncio.run(measure())
    (raw_time, raw_peak), (time_, peak) = measured["raw"], measured["client"]
    mib = len(body) / 1024 / 1024
    return table(
        f"An Images API answer of 4 inline images ({mib:.1f} MiB of base64), saved "
        f"(time: median of {plan.repeats})",
        ("contender", "time", "peak memory (tracemalloc)", "goal"),
        [
            (
                "raw httpx2 + json + b64decode + write",
                f"{raw_time * 1000:.0f} ms",
                f"{raw_peak / 2**20:.1f} MiB",
                "",
            ),
            (
                "ImageClient(api='images').agenerate, saved",
                f"{time_ * 1000:.0f} ms",
                f"{peak / 2**20:.1f} MiB",
                f"time {ratio_goal(time_, raw_time, 1.25, 'raw')}; "
                f"memory {ratio_goal(peak, raw_peak, 1.4, 'raw')}",
            ),
        ],
    )


def import_times(plan: Plan, python: str = sys.executable) -> str:
    """The three import goals, each measured in fresh interpreters of ``python`` against its
    baseline in the same run: the two are run in turn, and the difference is the median of the
    pairs' differences (steadier than a difference of medians on a busy machine). Everything
    runs from compiled bytecode, as after a wheel install: it is cached in a temporary
    ``PYTHONPYCACHEPREFIX``, whatever ``PYTHONDONTWRITEBYTECODE`` says."""
    with TemporaryDirectory() as cache:
        environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        environment["PYTHONPYCACHEPREFIX"] = cache

        def run(command: list[str]) -> str:
            return subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout

        def importing(code: str) -> Callable[[], float]:
            probe = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
            return lambda: float(run([python, "-c", probe]))

        def whole_process(command: list[str]) -> Callable[[], float]:
            def measure() -> float:
                started = time.perf_counter()
                run(command)
                return time.perf_counter() - started

            return measure

        def paired(
            baseline: Callable[[], float], measured: Callable[[], float]
        ) -> tuple[float, float, float]:
            baseline(), measured()  # warm up: the bytecode compiled and cached
            pairs = [(baseline(), measured()) for _ in range(plan.imports)]
            return (
                statistics.median(base for base, _ in pairs),
                statistics.median(value for _, value in pairs),
                statistics.median(value - base for base, value in pairs),
            )

        script = Path(python).with_name("image-tool")
        cli = [str(script)] if script.exists() else [python, "-m", "image_tool.cli"]
        bare, help_, _ = paired(whole_process([python, "-c", "pass"]), whole_process([*cli, "--help"]))
        httpx_, client, client_added = paired(
            importing("import httpx2"), importing("from image_tool import ImageClient")
        )
        base, tool, tool_added = paired(
            importing("from langchain_core.tools import BaseTool"),
            importing("from image_tool import ImageGenerationTool"),
        )
        # httpx2 imports its own command line's dependencies whenever they are installed.
        extras = run(
            [python, "-c", "import importlib.util as u; print(*filter(u.find_spec, ['rich', 'click']))"]
        )

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms"

    def verdict(seconds: float, limit: float) -> str:
        return f"{ms(limit)}: met" if seconds <= limit else f"{ms(limit)}: missed by {ms(seconds - limit)}"

    installed = f"with {', '.join(extras.split())}" if extras.split() else "without rich or click"
    return table(
        f"Import time, each in a fresh interpreter (median of {plan.imports}, {installed})",
        ("import", "time", "baseline", "added", "goal"),
        [
            (
                "`image-tool --help`, the whole process",
                ms(help_),
                f"Python alone: {ms(bare)}",
                "",
                verdict(help_, 0.3),
            ),
            (
                "from image_tool import ImageClient",
                ms(client),
                f"import httpx2: {ms(httpx_)}",
                ms(client_added),
                "+" + verdict(client_added, 0.1),
            ),
            (
                "from image_tool import ImageGenerationTool",
                ms(tool),
                f"from langchain_core.tools import BaseTool: {ms(base)}",
                ms(tool_added),
                "+" + verdict(tool_added, 0.05),
            ),
        ],
    )


def bulk(plan: Plan) -> str:
    """Batch runs against a relay limited to ``bulk_rate`` requests a second (0.5 s a generation):
    the adaptive run beside a fixed concurrency of 100; then a run whose first relay's quota
    runs out half way, with a fallback."""
    rows = []
    slow = Reply.success(delay=0.5 if plan is FULL else 0.05)
    logger = logging.getLogger("image_tool")
    level = logger.level
    logger.setLevel(logging.ERROR)  # failovers and retries are counted here, not logged
    with contextlib.ExitStack() as restore, TemporaryDirectory() as directory:
        restore.callback(logger.setLevel, level)
        prompts = Path(directory) / "prompts.jsonl"
        lines = [
            json.dumps({"id": f"p{index}", "prompt": f"{PROMPT} {index}"})
            for index in range(plan.bulk_prompts)
        ]
        prompts.write_text("\n".join(lines))

        def run(name: str, relays: list[FakeRelay], **settings: Any) -> None:
            first = relays[0]
            started = time.perf_counter()
            summary = run_batch(
                prompts, Path(directory) / name, api_key=first.api_key, base_url=first.base_url, **settings
            )
            rate = summary.ok / (time.perf_counter() - started)
            generated = [prompt for relay in relays for prompt in relay.generated_prompts]
            posts = sum(
                len([request for request in relay.requests if request.method == "POST"]) for relay in relays
            )
            split = " + ".join(str(len(relay.generated_prompts)) for relay in relays)
            rows.append(
                (
                    name,
                    f"{summary.ok}/{plan.bulk_prompts}" + (f" ({split})" if len(relays) > 1 else ""),
                    str(summary.failed + summary.lost),
                    str(len(generated) - len(set(generated))),
                    str(posts - len(generated)),
                    f"{rate:.1f}/s"
                    + ("" if len(relays) > 1 else f" ({rate / plan.bulk_rate:.0%} of the rate)"),
                )
            )

        with FakeRelay(rate_limit=plan.bulk_rate, default_reply=slow) as relay:
            run("adaptive (the batch default)", [relay], concurrency=100)
        with FakeRelay(rate_limit=plan.bulk_rate, default_reply=slow) as relay:
            run("fixed concurrency 100", [relay], concurrency=100, adaptive_concurrency=False)
        with (
            FakeRelay(quota_images=plan.bulk_prompts // 2, default_reply=slow) as first,
            FakeRelay(default_reply=slow) as second,
        ):
            fallback = Fallback(base_url=second.base_url, api_key=second.api_key)
            run("quota out half way, one fallback", [first, second], concurrency=16, fallbacks=[fallback])
    return table(
        f"Bulk runs: {plan.bulk_prompts} prompts, a relay allowing {plan.bulk_rate:g} requests a second",
        ("run", "generated", "failed or lost", "generated twice", "requests refused", "throughput"),
        rows,
    )


def rates(plan: Plan) -> str:
    """Batch runs (the defaults, concurrency 100) against relays that allow a number of requests a
    second, each refusal a 429 with new-api's words and a Retry-After: the share of the rate the
    run drew, and what the relay saw (none failed, none generated twice)."""
    rows = []
    logger = logging.getLogger("image_tool")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the retries are counted here, not logged
    for rate, seconds, count in plan.rates:
        with (
            contextlib.ExitStack() as restore,
            TemporaryDirectory() as directory,
            FakeRelay(rate_limit=rate, default_reply=Reply.success(delay=seconds)) as relay,
        ):
            restore.callback(logger.setLevel, level)
            prompts = Path(directory) / "prompts.jsonl"
            prompts.write_text(
                "\n".join(json.dumps({"prompt": f"{PROMPT} {index}"}) for index in range(count))
            )
            started = time.perf_counter()
            summary = run_batch(
                prompts,
                Path(directory) / "out",
                concurrency=100,
                api_key=relay.api_key,
                base_url=relay.base_url,
            )
            elapsed = time.perf_counter() - started
            generated = relay.generated_prompts
            posts = len([request for request in relay.requests if request.method == "POST"])
            rows.append(
                (
                    f"{rate:g}/s, {seconds:g} s each",
                    f"{summary.ok}/{count}",
                    str(summary.failed + summary.lost),
                    str(len(generated) - len(set(generated))),
                    str(posts - len(generated)),
                    f"{elapsed:.1f} s",
                    f"{summary.ok / elapsed:.2f}/s ({summary.ok / elapsed / rate:.0%})",
                )
            )
    return table(
        "Rate-limited relays: a batch run's draw of the rate each allows (goal: 90%, none failed or twice)",
        ("relay", "generated", "failed or lost", "generated twice", "429s", "wall time", "prompts a second"),
        rows,
    )


def per_call_costs(plan: Plan) -> str:
    """Memory held per call in flight and CPU per call, the client beside raw httpx2."""
    rows = []
    with relay_process(latency=plan.latency) as relay:
        headers, url = relay.headers, relay.chat_url

        async def measure(make_call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
            await asyncio.gather(*(make_call() for _ in range(10)))  # warm the pool
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            cpu = time.process_time()
            tasks = [asyncio.ensure_future(make_call()) for _ in range(plan.in_flight)]
            await asyncio.sleep(plan.latency / 2)  # every call sent, none answered
            held = tracemalloc.get_traced_memory()[0] - before
            await asyncio.gather(*tasks)
            used = time.process_time() - cpu
            tracemalloc.stop()
            return held / plan.in_flight, used / plan.in_flight

        async def both() -> None:
            limits = httpx2.Limits(max_connections=None)
            async with (
                httpx2.AsyncClient(limits=limits, timeout=60) as http,
                ImageClient(**relay.settings()) as client,
            ):
                for name, call in (
                    ("raw httpx2 (one AsyncClient)", lambda: http.post(url, json=BODY, headers=headers)),
                    ("ImageClient.agenerate", lambda: client.agenerate(PROMPT)),
                ):
                    memory, cpu = await measure(call)
                    rows.append((name, f"{memory / 1024:.1f} KiB", f"{cpu * 1000:.2f} ms"))

        asyncio.run(both())
    return table(
        f"Per call: memory held while {plan.in_flight} calls are in flight, CPU per call (tracemalloc on)",
        ("client", "memory per call in flight", "CPU per call"),
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts: checks that it runs, not how fast"
    )
    parser.add_argument("--only", choices=list(SECTIONS), help="run one section")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter whose import times are measured (default: this one)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    print(f"## image-tool benchmarks ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    for name, section in SECTIONS.items():
        if args.only in (None, name):
            print(section(plan, args.python) if name == "imports" else section(plan), flush=True)
    return 0


SECTIONS: dict[str, Callable[..., str]] = {
    "overhead": per_call_overhead,
    "crowd": crowd,
    "concurrency": concurrency,
    "big": big_answers,
    "images-api": images_api_answer,
    "bulk": bulk,
    "rates": rates,
    "costs": per_call_costs,
    "imports": import_times,
}


if __name__ == "__main__":
    raise SystemExit(main())
