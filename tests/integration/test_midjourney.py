"""Midjourney through a relay's /mj routes, end to end against FakeRelay (new-api's shapes): the
client, the tool in an agent loop, the command line and the MCP server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from image_tool import (
    APIStatusError,
    APITimeoutError,
    ContentPolicyError,
    GenerationProgress,
    ImageClient,
    ImageGenerationResult,
    ImageGenerationTool,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitError,
)
from image_tool.batch import run_batch
from image_tool.cli import main
from image_tool.testing import FakeRelay, Reply, ScriptedChatModel

from ..helpers import calls_generate_image, tool_call, wait_until

pytestmark = pytest.mark.usefixtures("quick_polls")

GRID_ACTIONS = ["U1", "U2", "U3", "U4", "reroll", "V1", "V2", "V3", "V4"]


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay(profile="new-api") as relay:
        yield relay


def client_for(relay: FakeRelay, **settings: object) -> ImageClient:
    return ImageClient(api_key=relay.api_key, base_url=relay.base_url, model="mj_imagine", **settings)  # type: ignore[arg-type]


def posts(relay: FakeRelay) -> list[str]:
    return [request.path for request in relay.requests if request.method == "POST"]


def test_a_grid_then_an_upscale_through_the_client(relay: FakeRelay, tmp_path: Path) -> None:
    updates: list[GenerationProgress] = []
    client = client_for(relay, save_dir=tmp_path, allow_private_downloads=True)
    grid = client.generate("A lighthouse at dawn", on_progress=updates.append)
    assert len(grid.images) == 1 and grid.images[0].path is not None
    assert grid.task_id and grid.actions == GRID_ACTIONS
    # new-api's "" then SUBMITTED read alike: one update for both.
    assert [update.stage for update in updates] == ["queued", "generating", "done", "saving"]
    assert any(update.preview_url for update in updates)
    upscaled = client.run_action(grid.task_id, "U2")
    assert upscaled.task_id != grid.task_id and upscaled.images[0].path is not None
    assert posts(relay) == ["/mj/submit/imagine", "/mj/submit/action"]
    assert relay.generated_prompts == ["A lighthouse at dawn", "A lighthouse at dawn"]  # two paid jobs
    assert relay.api_key not in repr(grid) + repr(upscaled)


async def test_a_grid_then_a_variation_async(relay: FakeRelay) -> None:
    async with client_for(relay) as client:
        grid = await client.agenerate("A lighthouse at dawn")
        assert grid.task_id is not None
        variation = await client.arun_action(grid.task_id, "V3")
    assert variation.actions == GRID_ACTIONS  # a variation is a new grid
    assert relay.generated == 2


@pytest.mark.parametrize(
    ("reply", "kind", "says"),
    [
        (Reply.mj_banned("gore"), ContentPolicyError, "'gore'"),
        (Reply.mj_quota_not_enough(), QuotaExceededError, "quota_not_enough"),
        (Reply.mj_submit_refused(4, "prompt不能为空"), APIStatusError, "prompt不能为空"),
        (
            Reply.mj_failed("[Banned prompt detected] Sorry! Our AI moderator..."),
            ContentPolicyError,
            "Banned",
        ),
        (Reply.mj_failed("上游任务超时（超过1小时）"), APIStatusError, "超时"),
    ],
    ids=["banned-word", "quota", "invalid", "moderated-after-progress", "failed"],
)
def test_refusals_and_failures_are_their_kinds(relay: FakeRelay, reply: Reply, kind: type, says: str) -> None:
    relay.queue(reply)
    with pytest.raises(kind, match=says) as caught:
        client_for(relay, max_retries=0).generate("A lighthouse")
    assert type(caught.value) is kind
    assert relay.api_key not in str(caught.value)


def test_a_full_queue_is_retried(relay: FakeRelay, quick_backoff: None) -> None:
    relay.queue(Reply.mj_queue_full())
    result = client_for(relay).generate("A lighthouse")
    assert result.attempts == 2 and posts(relay) == ["/mj/submit/imagine"] * 2
    relay.queue(Reply.mj_queue_full(), Reply.mj_queue_full())
    with pytest.raises(RateLimitError, match="队列已满"):
        client_for(relay, max_retries=1).generate("A lighthouse")


def test_a_task_that_outlasts_the_call_names_itself(relay: FakeRelay) -> None:
    """Submitted, so paid: the error says the task may still finish, under its id."""
    relay.queue(Reply.mj_task(polls=10_000))
    with pytest.raises(APITimeoutError, match=r"task \d+ was submitted and may still finish") as caught:
        client_for(relay, total_timeout=0.3).generate("A lighthouse")
    assert caught.value.sent_unanswered
    assert posts(relay) == ["/mj/submit/imagine"]


def test_an_action_the_task_does_not_offer_is_refused_before_sending(relay: FakeRelay) -> None:
    client = client_for(relay)
    grid = client.generate("A lighthouse")
    assert grid.task_id is not None
    with pytest.raises(InvalidRequestError, match="no action 'U9'; it offers: U1, U2"):
        client.run_action(grid.task_id, "U9")
    assert posts(relay) == ["/mj/submit/imagine"]


def test_the_key_may_go_as_new_api_takes_it_under_a_mode_prefix(relay: FakeRelay) -> None:
    client = ImageClient(
        api_key=relay.api_key, base_url=relay.base_url.replace("/v1", "/mj-fast/v1"), model="midjourney"
    )
    assert client.endpoint.endswith("/mj-fast/mj/submit/imagine")
    assert client.generate("A lighthouse").task_id
    assert posts(relay) == ["/mj-fast/mj/submit/imagine"]


def test_the_key_may_go_as_midjourney_proxy_takes_it(relay: FakeRelay) -> None:
    client = client_for(relay, key_header="mj-api-secret")
    assert client.generate("A lighthouse").task_id
    (submit,) = [request for request in relay.requests if request.method == "POST"]
    assert submit.headers["mj-api-secret"] == relay.api_key
    assert "Authorization" not in submit.headers
    assert relay.api_key not in repr(client)


def test_the_tool_in_an_agent_loop_upscales_the_grid_it_was_shown(relay: FakeRelay) -> None:
    """The model reads the task id and the actions from the tool's message, and names them."""

    def upscale_the_second(messages: Sequence[BaseMessage]) -> AIMessage:
        shown = str(messages[-1].content)
        task_id = re.search(r"task_id='(\d+)'", shown)
        assert task_id and "U1, U2, U3, U4" in shown, shown
        return calls_generate_image(prompt="Upscale the second image", task_id=task_id[1], action="U2")

    tool = ImageGenerationTool(client=client_for(relay), max_images=2)
    schema = tool.argument_model.model_json_schema()["properties"]
    assert "U2" in str(schema["action"]) and "task_id" in schema
    model = ScriptedChatModel(
        script=[calls_generate_image(prompt="A lighthouse at dawn"), upscale_the_second, AIMessage("Done.")]
    )
    state = create_agent(model, tools=[tool]).invoke({"messages": [HumanMessage("Draw a lighthouse")]})
    grid, upscaled = [message for message in state["messages"] if isinstance(message, ToolMessage)]
    assert grid.status == upscaled.status == "success"
    assert isinstance(upscaled.artifact, ImageGenerationResult)
    assert upscaled.artifact.images[0].url and "512x512" in upscaled.artifact.images[0].url
    assert posts(relay) == ["/mj/submit/imagine", "/mj/submit/action"]
    # Two paid jobs: the budget of two images is spent.
    assert "budget is spent" in tool.invoke(tool_call(prompt="Another")).content


def test_the_tool_asks_for_the_task_id_an_action_needs(relay: FakeRelay) -> None:
    message = ImageGenerationTool(client=client_for(relay)).invoke(tool_call(prompt="Upscale", action="U2"))
    assert message.status == "error" and "needs the task_id" in message.content
    assert posts(relay) == []


def test_the_command_line_draws_a_grid(
    relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
    command = ["generate", "--model", "mj_imagine", "A lighthouse", "--save", str(tmp_path)]
    assert main([*command, "--allow-private-downloads"]) == 0
    assert len(list(tmp_path.iterdir())) == 1
    assert posts(relay) == ["/mj/submit/imagine"]
    assert relay.api_key not in capsys.readouterr().out


async def test_the_mcp_server_draws_a_grid_and_an_upscale(relay: FakeRelay) -> None:
    pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")
    from mcp import Client, StdioServerParameters
    from mcp.types import TextContent

    relay.queue(
        Reply.mj_task(polls=0), Reply.mj_task(polls=0)
    )  # ends at the first poll: the server polls a second apart
    env = {**os.environ, "IMAGE_TOOL_API_KEY": relay.api_key, "IMAGE_TOOL_BASE_URL": relay.base_url}
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "image_tool.mcp_server", "--model", "mj_imagine"], env=env
    )
    async with Client(server, read_timeout_seconds=30) as client:
        grid = await client.call_tool("generate_image", {"prompt": "A lighthouse"})
        shown = "\n".join(item.text for item in grid.content if isinstance(item, TextContent))
        task_id = re.search(r"task_id='(\d+)'", shown)
        assert task_id, shown
        upscaled = await client.call_tool(
            "generate_image", {"prompt": "Upscale it", "task_id": task_id[1], "action": "U1"}
        )
    assert not grid.is_error and not upscaled.is_error
    assert posts(relay) == ["/mj/submit/imagine", "/mj/submit/action"]


def test_sync_and_async_runs_share_nothing_but_the_relay(relay: FakeRelay) -> None:
    client = client_for(relay)

    async def both() -> list[ImageGenerationResult]:
        return list(await asyncio.gather(*(client.agenerate(f"A lighthouse {n}") for n in range(3))))

    results = [client.generate("A lighthouse"), *asyncio.run(both())]
    assert len({result.task_id for result in results}) == 4
    assert relay.generated == 4


def journal_tasks(out: Path) -> dict[str, str]:
    lines = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    return {line["id"]: line["task"] for line in lines if "task" in line}


def test_a_batch_that_stopped_mid_poll_polls_again_and_never_resubmits(
    relay: FakeRelay, tmp_path: Path
) -> None:
    """The first run gives up polling (its total timeout): the tasks are journaled; the next run
    follows them to their images, submitting nothing."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(json.dumps({"id": f"p{n}", "prompt": f"A lighthouse {n}"}) for n in range(3))
    )
    relay.queue(*[Reply.mj_task(polls=40)] * 3)
    settings: dict[str, Any] = {"api_key": relay.api_key, "base_url": relay.base_url, "model": "mj_imagine"}
    out = tmp_path / "out"
    first = run_batch(prompts, out, total_timeout=0.3, allow_private_downloads=True, **settings)
    assert (first.ok, first.lost) == (0, 3)
    assert sorted(journal_tasks(out)) == ["p0", "p1", "p2"]
    second = run_batch(prompts, out, allow_private_downloads=True, **settings)
    assert (second.ok, second.failed, second.lost) == (3, 0, 0)
    assert posts(relay) == ["/mj/submit/imagine"] * 3
    assert len(list((out / "images").iterdir())) == 3


@pytest.mark.slow
def test_a_batch_killed_mid_poll_resumes_by_polling(relay: FakeRelay, tmp_path: Path) -> None:
    """The real command, killed (SIGKILL) while its tasks are drawn, then run again: each task is
    polled to its image, none is submitted twice."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(json.dumps({"id": f"p{n}", "prompt": f"A lighthouse {n}"}) for n in range(4))
    )
    relay.queue(*[Reply.mj_task(polls=4)] * 4)  # polled a second apart and slower: about 8 s each
    out = tmp_path / "out"
    environment = {**os.environ, "IMAGE_TOOL_API_KEY": relay.api_key, "IMAGE_TOOL_BASE_URL": relay.base_url}
    command = [sys.executable, "-m", "image_tool.cli", "batch", str(prompts), "--out", str(out)]
    command += ["--model", "mj_imagine", "--allow-private-downloads"]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        wait_until(
            lambda: len(journal_tasks(out)) == 4 if (out / "journal.jsonl").exists() else False, "no tasks"
        )
    finally:
        process.kill()
        process.wait(10)
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert finished.returncode == 0, finished.stderr
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [line["status"] for line in results] == ["ok"] * 4
    assert posts(relay) == ["/mj/submit/imagine"] * 4


# --- Asynchronous Images API jobs: the same transport --------------------------------------------


def test_an_image_job_is_submitted_once_and_polled_to_its_images(relay: FakeRelay, tmp_path: Path) -> None:
    updates: list[GenerationProgress] = []
    client = ImageClient(
        api_key=relay.api_key,
        base_url=relay.base_url,
        model="gpt-image-1",
        image_jobs=True,
        save_dir=tmp_path,
        allow_private_downloads=True,
    )
    result = client.generate("A lighthouse at dawn", n=2, size="1024x1536", on_progress=updates.append)
    assert len(result.images) == 2 and all(image.path for image in result.images)
    assert [(update.stage, update.percent) for update in updates] == [
        ("queued", 0),
        ("generating", 40),
        ("generating", 80),
        ("done", 100),
        ("saving", None),
    ]
    (submit,) = [request for request in relay.requests if request.method == "POST"]
    assert json.loads(submit.body)["async"] is True and submit.headers["Idempotency-Key"]
    assert relay.generated == 2


async def test_an_image_job_async_and_its_failure(relay: FakeRelay) -> None:
    relay.queue(Reply.image_job_failed("Your request was rejected by the safety system."))
    async with ImageClient(
        api_key=relay.api_key, base_url=relay.base_url, model="gpt-image-1", image_jobs=True
    ) as client:
        with pytest.raises(ContentPolicyError, match=r"image job \S+ failed"):
            await client.agenerate("A lighthouse")
        result = await client.agenerate("A lighthouse")
    assert len(result.images) == 1


def test_a_retried_image_job_submit_keeps_its_idempotency_key(relay: FakeRelay, quick_backoff: None) -> None:
    """A 502 then the submit again: the same key both times, so a relay that had the first draws once."""
    relay.queue(Reply.bad_gateway())
    client = ImageClient(api_key=relay.api_key, base_url=relay.base_url, model="gpt-image-1", image_jobs=True)
    assert client.generate("A lighthouse").attempts == 2
    keys = [request.headers["Idempotency-Key"] for request in relay.requests if request.method == "POST"]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_an_image_job_through_the_tool_and_the_command_line(
    relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = ImageGenerationTool(
        api_key=relay.api_key, base_url=relay.base_url, model="gpt-image-1", image_jobs=True, max_images=1
    )
    message = tool.invoke(tool_call(prompt="A lighthouse"))
    assert message.status == "success" and isinstance(message.artifact, ImageGenerationResult)
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
    command = ["generate", "--model", "gpt-image-1", "--image-jobs", "A lighthouse", "--save", str(tmp_path)]
    assert main([*command, "--allow-private-downloads"]) == 0
    assert len(list(tmp_path.iterdir())) == 1
    submits = [json.loads(request.body) for request in relay.requests if request.method == "POST"]
    assert [submit["async"] for submit in submits] == [True, True]


async def test_an_image_job_through_the_mcp_server(relay: FakeRelay) -> None:
    pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")
    from mcp import Client, StdioServerParameters

    relay.queue(Reply.image_job(polls=0))  # ends at the first poll: the server polls a second apart
    env = {**os.environ, "IMAGE_TOOL_API_KEY": relay.api_key, "IMAGE_TOOL_BASE_URL": relay.base_url}
    arguments = ["-m", "image_tool.mcp_server", "--model", "gpt-image-1", "--image-jobs"]
    server = StdioServerParameters(command=sys.executable, args=arguments, env=env)
    async with Client(server, read_timeout_seconds=30) as client:
        result = await client.call_tool("generate_image", {"prompt": "A lighthouse"})
    assert not result.is_error
    assert [json.loads(request.body)["async"] for request in relay.requests if request.method == "POST"] == [
        True
    ]


def test_the_command_line_upscales_a_grid_by_its_task_id(
    relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)
    assert main(["generate", "--model", "mj_imagine", "A lighthouse"]) == 0
    shown = capsys.readouterr().out
    task_id = re.search(r"image-tool action (\d+) ACTION \(U1, U2", shown)
    assert task_id, shown
    command = ["action", task_id[1], "U2", "--save", str(tmp_path), "--allow-private-downloads"]
    assert main(command) == 0
    assert len(list(tmp_path.iterdir())) == 1
    assert posts(relay) == ["/mj/submit/imagine", "/mj/submit/action"]
    assert main(["action", task_id[1], "U9"]) == 2  # EXIT_CODES: a request the model cannot take
    assert "no action 'U9'" in capsys.readouterr().err


def test_actions_belong_to_midjourney_models(relay: FakeRelay) -> None:
    client = ImageClient(api_key=relay.api_key, base_url=relay.base_url, model="gpt-image-1")
    with pytest.raises(InvalidRequestError, match="not a Midjourney model"):
        client.run_action("1712345", "U1")
    assert relay.requests == []
