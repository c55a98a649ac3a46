"""The benchmark runs (tiny counts, so it never rots); its timings are not asserted here."""

from __future__ import annotations

import pytest

from benchmarks import run

pytestmark = pytest.mark.slow


def test_the_quick_benchmark_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--quick"]) == 0
    output = capsys.readouterr().out
    for heading in (
        "Per-call overhead",
        "Concurrent calls",
        "Big answers",
        "Bulk runs",
        "Rate-limited relays",
        "Per call: memory",
        "Import time",
    ):
        assert heading in output
    for contender in (
        "raw httpx2: Client.post",
        "ImageClient.generate",
        "tool.invoke(ToolCall)",
        "OpenAI SDK",
        "raw httpx2: AsyncClient.post",
        "ImageClient.agenerate",
        "tool.ainvoke(ToolCall)",
        "sync-only tool, ainvoke",
        "download and save 4 images",
        "from image_tool import ImageGenerationTool",
        "fixed concurrency 100",
        "quota out half way, one fallback",
        "ImageClient.agenerate",
    ):
        assert contender in output
