"""Durable batch runs: every prompt once, results in order, a crash or Ctrl-C resumed without
sending any prompt twice, bad lines reported, failover and spend inside a run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from image_tool import ConfigurationError, Fallback, ImageClient
from image_tool._io.journal import Journal
from image_tool.batch import BatchProgress, run_batch
from image_tool.cli import main
from image_tool.testing import FakeRelay, Reply

from ..helpers import ctrl_c_enabled, wait_until


def write_prompts(path: Path, count: int, **options: Any) -> Path:
    lines = [
        json.dumps({"id": f"p{index}", "prompt": f"A cat number {index}", **options})
        for index in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def results_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def sent_prompts(relay: FakeRelay) -> Counter[str]:
    """The prompts the relay received whole (a request cut off mid-body, by a stopped run, asked
    for nothing)."""
    prompts: Counter[str] = Counter()
    for request in relay.requests:
        if request.path.endswith("/completions"):
            with contextlib.suppress(ValueError, TypeError):
                prompts[request.json["messages"][-1]["content"]] += 1
    return prompts


def settings(relay: FakeRelay, **extra: Any) -> dict[str, Any]:
    return {"api_key": relay.api_key, "base_url": relay.base_url, "allow_private_downloads": True, **extra}


def test_every_prompt_is_generated_once_and_reported_in_order(fake_relay: FakeRelay, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", 30, size="1792x1024")
    updates: list[BatchProgress] = []
    summary = run_batch(
        prompts,
        tmp_path / "out",
        concurrency=8,
        on_progress=updates.append,
        price_per_image=0.04,
        **settings(fake_relay),
    )
    results = results_of(tmp_path / "out")
    assert [line["id"] for line in results] == [f"p{index}" for index in range(30)]
    assert all(line["status"] == "ok" and Path(line["paths"][0]).is_file() for line in results)
    assert all(Path(line["paths"][0]).parent == tmp_path / "out" / "images" for line in results)
    assert (summary.ok, summary.failed, summary.lost) == (30, 0, 0)
    assert summary.cost == pytest.approx(1.2)
    assert max(sent_prompts(fake_relay).values()) == 1 and len(sent_prompts(fake_relay)) == 30
    assert all(
        request.json["size"] == "1792x1024" for request in fake_relay.requests if request.method == "POST"
    )
    assert fake_relay.max_in_flight <= 8
    assert updates[-1].done == 30 and updates[-1].cost == pytest.approx(1.2)


def test_bad_lines_and_failures_are_reported_not_sent(fake_relay: FakeRelay, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(
            [
                json.dumps({"id": "good", "prompt": "A cat"}),
                "not json",
                json.dumps({"id": "empty", "prompt": "  "}),
                json.dumps({"id": "odd", "prompt": "A dog", "colour": "red"}),
                json.dumps({"id": "good", "prompt": "A cat again"}),
                json.dumps({"id": "refused", "prompt": "Something refused"}),
            ]
        )
    )
    fake_relay.queue(Reply.success(), Reply.content_policy())
    summary = run_batch(prompts, tmp_path / "out", concurrency=1, **settings(fake_relay))
    by_id = {line["id"]: line for line in results_of(tmp_path / "out")}
    assert by_id["good"]["status"] == "ok"
    assert "is not JSON" in by_id["line-2"]["error"]["message"]
    assert "has no prompt" in by_id["empty"]["error"]["message"]
    assert "colour" in by_id["odd"]["error"]["message"]
    assert "repeats the id 'good'" in by_id["good@line-5"]["error"]["message"]
    assert by_id["refused"]["error"]["kind"] == "ContentPolicyError"
    assert (summary.ok, summary.failed) == (1, 5)
    assert sorted(sent_prompts(fake_relay)) == ["A cat", "Something refused"]


def test_a_run_resumes_and_reports_what_was_lost(fake_relay: FakeRelay, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", 6)
    out = tmp_path / "out"
    out.mkdir()
    # What a crash leaves: p0 ended, p1 sent with no end (and a line cut in the middle).
    ended = {"id": "p0", "prompt": "A cat number 0", "status": "ok", "paths": [], "urls": ["u"]}
    (out / "journal.jsonl").write_text(
        json.dumps({"id": "p0", "sent": 1.0})
        + "\n"
        + json.dumps(ended)
        + "\n"
        + json.dumps({"id": "p1", "sent": 2.0})
        + "\n"
        + '{"id": "p2", "se'
    )
    summary = run_batch(prompts, out, **settings(fake_relay))
    by_id = {line["id"]: line for line in results_of(out)}
    assert by_id["p0"] == ended
    assert by_id["p1"]["status"] == "lost" and "not sent again" in by_id["p1"]["error"]["message"]
    assert sorted(sent_prompts(fake_relay)) == [f"A cat number {index}" for index in range(2, 6)]
    assert (summary.ok, summary.lost) == (5, 1)
    run_batch(prompts, out, **settings(fake_relay))  # nothing left: nothing sent
    assert sum(sent_prompts(fake_relay).values()) == 4


def test_failover_inside_a_run(tmp_path: Path) -> None:
    with FakeRelay() as first, FakeRelay() as second:
        first.queue(*[Reply.quota_exhausted()] * 3)
        fallback = Fallback(base_url=second.base_url, api_key=second.api_key, name="second")
        run_batch(
            write_prompts(tmp_path / "prompts.jsonl", 10),
            tmp_path / "out",
            concurrency=1,
            fallbacks=[fallback],
            cooldown=0,
            max_retries=0,
            name="first",
            **settings(first),
        )
        answered = Counter(line["target"] for line in results_of(tmp_path / "out"))
        refused_then_moved = sent_prompts(second)
    assert answered == {"first": 7, "second": 3}  # each prompt generated once
    assert sorted(refused_then_moved) == [f"A cat number {index}" for index in range(3)]


def batch_command(relay: FakeRelay, prompts: Path, out: Path) -> tuple[list[str], dict[str, str]]:
    environment = {**os.environ, "IMAGE_TOOL_API_KEY": relay.api_key, "IMAGE_TOOL_BASE_URL": relay.base_url}
    command = [sys.executable, "-m", "image_tool.cli", "batch", str(prompts), "--out", str(out)]
    return [*command, "--concurrency", "4", "--allow-private-downloads"], environment


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 2], ids=["drained", "abandoned"])
def test_ctrl_c_then_the_same_command_sends_every_prompt_once(tmp_path: Path, presses: int) -> None:
    """One Ctrl-C lets the prompts in flight finish: none is lost, and the same command sends the
    rest, each once. A second abandons those in flight: they are lost, never sent again."""
    prompts = write_prompts(tmp_path / "prompts.jsonl", 40)
    out = tmp_path / "out"
    # Generations of 1.5 s: the second Ctrl-C, 0.1 s after the first, finds requests in flight.
    with FakeRelay(default_reply=Reply.success(delay=1.5)) as relay:
        command, environment = batch_command(relay, prompts, out)
        with ctrl_c_enabled():
            process = subprocess.Popen(  # noqa: S603  # our own command line, no shell
                command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        wait_until(lambda: len(relay.requests) >= 4, "the batch never got going")
        for _ in range(presses):
            process.send_signal(signal.SIGINT)
            time.sleep(0.1)
        _, interrupted = process.communicate(timeout=30)
        assert process.returncode == 130, interrupted
        assert b"Traceback" not in interrupted and b"Stopping" in interrupted
        assert len(results_of(out)) < 40  # stopped part way
        first_sent = sent_prompts(relay)
        relay.default_reply = Reply.success(delay=0.05)  # the rest, quickly
        finished = subprocess.run(  # noqa: S603  # our own command line, no shell
            command, env=environment, capture_output=True, text=True, timeout=60
        )
        every_sent = sent_prompts(relay)
    results = results_of(out)
    assert [line["id"] for line in results] == [f"p{index}" for index in range(40)]
    assert max(every_sent.values()) == 1  # no prompt was ever sent twice
    lost = [line["id"] for line in results if line["status"] == "lost"]
    assert (lost == []) is (presses == 1), lost
    assert all(f"A cat number {name[1:]}" in first_sent for name in lost)  # lost ones went out first
    assert len(lost) + sum(line["status"] == "ok" for line in results) == 40
    assert finished.returncode == (1 if lost else 0)
    assert f"{40 - len(lost)} ok, 0 failed, {len(lost)} lost" in finished.stdout


def test_two_runs_on_one_out_and_a_changed_prompts_file_are_refused(
    fake_relay: FakeRelay, tmp_path: Path
) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", 2)
    out = tmp_path / "out"
    out.mkdir()
    holder = Journal(out)  # another run holds the directory
    try:
        with pytest.raises(ConfigurationError, match=rf"in use by another batch run \(PID {os.getpid()}\)"):
            run_batch(prompts, out, **settings(fake_relay))
    finally:
        holder.close()
    run_batch(prompts, out, **settings(fake_relay))
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"id": "p1", "prompt": "A different dog"}) + "\n")
    with pytest.raises(ConfigurationError, match="under the ids p1: the prompts file changed"):
        run_batch(prompts, out, **settings(fake_relay))
    assert sum(sent_prompts(fake_relay).values()) == 2


def test_lost_prompts_are_sent_again_only_when_asked(fake_relay: FakeRelay, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "journal.jsonl").write_text(json.dumps({"id": "p0", "sent": 1.0}) + "\n")
    assert run_batch(prompts, out, **settings(fake_relay)).lost == 1
    summary = run_batch(prompts, out, resend_lost=True, **settings(fake_relay))
    assert (summary.ok, summary.lost) == (2, 0)
    assert sent_prompts(fake_relay) == Counter({"A cat number 0": 1, "A cat number 1": 1})


def test_a_prompt_the_relay_had_but_never_answered_is_lost_not_resent(tmp_path: Path) -> None:
    """The connection ended after the request went out (the relay drew it): reported lost with
    the reason, never sent again by a plain resume, sent again with --resend-lost."""
    prompts = write_prompts(tmp_path / "prompts.jsonl", 3)
    out = tmp_path / "out"
    with FakeRelay() as relay:
        relay.queue(Reply.transport_fault("drop_unanswered"))
        updates: list[BatchProgress] = []
        summary = run_batch(prompts, out, concurrency=1, on_progress=updates.append, **settings(relay))
        assert (summary.ok, summary.failed, summary.lost) == (2, 0, 1)
        assert updates[-1].lost == 1
        lost = [json.loads(line) for line in summary.results.read_text().splitlines() if '"lost"' in line]
        assert lost[0]["error"]["kind"] == "APIConnectionError"
        assert "may have been generated" in lost[0]["error"]["message"]
        assert run_batch(prompts, out, **settings(relay)).lost == 1
        assert sum(request.method == "POST" for request in relay.requests) == 3  # the resume sent nothing
        summary = run_batch(prompts, out, resend_lost=True, **settings(relay))
        assert (summary.ok, summary.lost) == (3, 0)
        assert relay.generated == 4  # the lost prompt was drawn twice: what --resend-lost allows


def test_the_batch_command_shows_progress_without_rich(
    fake_relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", fake_relay.api_key)
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", fake_relay.base_url)
    monkeypatch.setitem(sys.modules, "rich.progress", None)  # as if rich were not installed
    prompts = write_prompts(tmp_path / "prompts.jsonl", 5)
    assert main(["batch", str(prompts), "--out", str(tmp_path / "out"), "--allow-private-downloads"]) == 0
    out, err = capsys.readouterr()
    assert "5 ok, 0 failed, 0 lost" in out
    assert "5/5 done, 0 failed, 0 lost" in err
    assert main(["batch", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")]) == 2


@pytest.mark.parametrize(
    ("rate", "seconds", "count"),
    [(20, 0.1, 40), (5, 0.6, 15)],
    ids=["fast-generations", "slow-generations-strict-rate"],
)
def test_a_rate_limited_relay_slows_the_run_instead_of_failing_it(
    tmp_path: Path, rate: float, seconds: float, count: int
) -> None:
    with FakeRelay(rate_limit=rate, default_reply=Reply.success(delay=seconds)) as relay:
        started = time.monotonic()
        summary = run_batch(
            write_prompts(tmp_path / "prompts.jsonl", count),
            tmp_path / "out",
            concurrency=32,
            **settings(relay),
        )
        elapsed = time.monotonic() - started
        generated = relay.generated_prompts
        refused = len([request for request in relay.requests if request.method == "POST"]) - len(generated)
    # Counted, not timed: how fast the run went depends on the machine, what the relay saw does not.
    assert (summary.ok, summary.failed) == (count, 0)
    assert sorted(generated) == sorted(f"A cat number {index}" for index in range(count))  # each once
    assert refused < count / 2  # the limit backs off: at most one 429 for two prompts (3 to 10 seen)
    assert elapsed < count / rate * 10  # a guard only: no back-off far beyond the relay's pace


def test_a_torn_last_line_is_cut_never_glued_to(fake_relay: FakeRelay, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", 3)
    out = tmp_path / "out"
    out.mkdir()
    # The run stopped while writing p1's sending: it never went out.
    (out / "journal.jsonl").write_text(json.dumps({"id": "p0", "sent": 1.0}) + '\n{"id": "p1", "se')
    summary = run_batch(prompts, out, **settings(fake_relay))
    journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]  # all whole
    assert journal[0] == {"id": "p0", "sent": 1.0}
    assert (summary.ok, summary.lost) == (2, 1)
    assert sorted(sent_prompts(fake_relay)) == ["A cat number 1", "A cat number 2"]


def test_an_unreadable_line_before_the_last_is_an_error_naming_it(
    fake_relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "journal.jsonl").write_text('{"id": "p0", "sent": 1.0}\nnot json\n{"id": "p1", "sent": 2.0}\n')
    with pytest.raises(ConfigurationError, match=r"line 2, cannot be read"):
        run_batch(prompts, out, **settings(fake_relay))
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", fake_relay.api_key)
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", fake_relay.base_url)
    assert main(["batch", str(prompts), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 2, cannot be read" in err and "Traceback" not in err
    assert sent_prompts(fake_relay) == Counter()


async def test_a_prompt_is_recorded_as_sent_only_when_its_bytes_go(fake_relay: FakeRelay) -> None:
    """A call waiting for a slot is not yet sending: the hook runs once the wait is over."""
    fake_relay.default_reply = Reply.success(delay=0.1)
    received_at_sending: list[int] = []

    async def sending() -> None:
        received_at_sending.append(len(fake_relay.requests))

    async with ImageClient(**settings(fake_relay), max_concurrency=1) as client:
        await asyncio.gather(*(client.agenerate(f"Cat {index}", on_sending=sending) for index in range(3)))
    assert received_at_sending == [0, 1, 2]  # each once the one before it had been answered


def test_the_batch_command_says_each_failure_in_a_line(
    fake_relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", fake_relay.api_key)
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", fake_relay.base_url)
    prompts = write_prompts(tmp_path / "prompts.jsonl", 2)
    # An output directory that cannot be written: one line, nothing sent.
    unwritable = tmp_path / "a-file"
    unwritable.write_text("")
    assert main(["batch", str(prompts), "--out", str(unwritable / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write to --out" in err, err
    assert sent_prompts(fake_relay) == Counter()
    # Images that were generated but not saved (private addresses, not allowed): exit 12, and why.
    with prompts.open("a") as lines:
        lines.write("not json\n")
    assert main(["batch", str(prompts), "--out", str(tmp_path / "out")]) == 12
    out, err = capsys.readouterr()
    assert "2 ok, 1 failed, 0 lost" in out
    assert "2 image(s) were not saved" in err and "--allow-private-downloads" in err, err
    assert "1 prompt line(s) could not be used: line 3 is not JSON" in err
    assert "Traceback" not in err


def test_a_rate_limit_past_the_retries_requeues_the_prompt(tmp_path: Path) -> None:
    """With no retries left, a prompt the relay refuses for load waits its Retry-After and goes
    again: none fails, none is generated twice."""
    with FakeRelay(rate_limit=4, default_reply=Reply.success(delay=0.05)) as relay:
        summary = run_batch(
            write_prompts(tmp_path / "prompts.jsonl", 12),
            tmp_path / "out",
            concurrency=12,
            **settings(relay, max_retries=0, adaptive_concurrency=False),
        )
        refused = sum(request.path.endswith("/completions") for request in relay.requests) - 12
        generated = relay.generated_prompts
    assert (summary.ok, summary.failed) == (12, 0)
    assert refused > 0  # the relay did refuse some: they were requeued, not failed
    assert sorted(generated) == sorted(f"A cat number {index}" for index in range(12))


def test_a_rate_limit_spends_none_of_a_prompts_retries(tmp_path: Path) -> None:
    """Refused for load three times, then a 502, with one retry: the refusals were requeued, so
    the retry is still there for the 502."""
    with FakeRelay() as relay:
        relay.queue(*[Reply.rate_limited(retry_after=0.01)] * 3, Reply.bad_gateway())
        summary = run_batch(
            write_prompts(tmp_path / "prompts.jsonl", 1), tmp_path / "out", **settings(relay, max_retries=1)
        )
        posts = sum(request.path.endswith("/completions") for request in relay.requests)
    assert (summary.ok, summary.failed, posts) == (1, 0, 5)
    assert relay.generated_prompts == ["A cat number 0"]


@pytest.mark.slow
def test_kill_9_at_random_points_never_sends_a_prompt_twice(tmp_path: Path) -> None:
    """The real command, killed (SIGKILL: no clean-up at all) three times at random points, then
    run to its end: no prompt was sent twice, and each is ok or reported lost."""
    prompts = write_prompts(tmp_path / "prompts.jsonl", 30)
    out = tmp_path / "out"
    chance = random.Random(2026)  # noqa: S311 - when to kill, not a secret
    with FakeRelay(default_reply=Reply.success(delay=0.2)) as relay:
        command, environment = batch_command(relay, prompts, out)
        for _ in range(3):
            process = subprocess.Popen(  # noqa: S603  # our own command line, no shell
                command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            before = len(relay.requests)
            wait_until(lambda: len(relay.requests) > before, "the batch never got going")  # noqa: B023
            time.sleep(chance.uniform(0.0, 0.6))
            process.kill()
            process.wait(timeout=30)
        finished = subprocess.run(  # noqa: S603  # our own command line, no shell
            command, env=environment, capture_output=True, text=True, timeout=120
        )
        every_sent = sent_prompts(relay)
    results = results_of(out)
    assert [line["id"] for line in results] == [f"p{index}" for index in range(30)], finished.stderr
    assert max(every_sent.values()) == 1
    assert {line["status"] for line in results} <= {"ok", "lost"}
    assert len(every_sent) == 30 - sum(
        line["status"] == "lost" and line["prompt"] not in every_sent for line in results
    )


@pytest.mark.slow
def test_a_second_process_on_the_same_out_is_refused(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl", 8)
    out = tmp_path / "out"
    with FakeRelay(default_reply=Reply.success(delay=1.0)) as relay:
        command, environment = batch_command(relay, prompts, out)
        first = subprocess.Popen(  # noqa: S603  # our own command line, no shell
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(lambda: len(relay.requests) >= 1, "the first run never got going")
            second = subprocess.run(  # noqa: S603  # our own command line, no shell
                command, env=environment, capture_output=True, text=True, timeout=60
            )
        finally:
            first.wait(timeout=60)
        every_sent = sent_prompts(relay)
    assert second.returncode == 2
    assert f"in use by another batch run (PID {first.pid})" in second.stderr
    assert first.returncode == 0 and max(every_sent.values()) == 1 and len(every_sent) == 8


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_next_run_sends_nothing_twice(tmp_path: Path) -> None:
    """Files may not grow past 3 KB (as on a full disk, writes fail): the run stops with one line,
    and the same command, with room again, finishes without sending a prompt twice."""
    prompts = write_prompts(tmp_path / "prompts.jsonl", 20)
    out = tmp_path / "out"

    # The limit is set in the child itself (a preexec_fn is unsafe in a process with threads).
    small_files = (
        "import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000)); sys.argv = sys.argv[1:]; "
        "runpy.run_module('image_tool.cli', run_name='__main__')"
    )
    with FakeRelay() as relay:
        command, environment = batch_command(relay, prompts, out)
        limited = [sys.executable, "-c", small_files, "image-tool", *command[3:]]
        full = subprocess.run(  # noqa: S603  # our own command line, no shell
            limited, env=environment, capture_output=True, text=True, timeout=60
        )
        finished = subprocess.run(  # noqa: S603  # our own command line, no shell
            command, env=environment, capture_output=True, text=True, timeout=60
        )
        every_sent = sent_prompts(relay)
    assert full.returncode == 2, full.stderr
    assert "could not write to --out" in full.stderr and "Traceback" not in full.stderr
    assert finished.returncode in (0, 1, 12), finished.stderr  # 12: images the full disk kept out
    assert max(every_sent.values()) == 1
    assert [line["id"] for line in results_of(out)] == [f"p{index}" for index in range(20)]
