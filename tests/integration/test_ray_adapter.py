"""ImageGenerationBatches (image_tool.ray_adapter): called directly, and run by Ray Data on a local
cluster against FakeRelay.

The Ray tests need the ``ray`` dependency group: ``scripts/check.sh`` runs this module with
``.venv-ray``'s interpreter; where Ray is not installed they are skipped, saying so. The cluster's
workers are processes of their own: they reach the FakeRelay of this process over loopback.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from image_tool import ConfigurationError
from image_tool.ray_adapter import OPTION_COLUMNS, RESULT_COLUMNS, ImageGenerationBatches
from image_tool.testing import FakeRelay, Reply

# Ray's own warnings, from the lowest release the ray extra allows up: Ray Data 2.60 warns that
# settings are deprecated whenever it makes its context with their defaults; before 2.60 ray.init
# leaves files and processes open, and 2.50-2.59 announce a change of default.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:Tip. In future versions of Ray:FutureWarning"),
]
ROWS = 40
PNG = b"\x89PNG\r\n\x1a\n"
NO_RAY = (
    "Ray is not installed in this environment: scripts/check.sh runs this module with .venv-ray "
    "(the `ray` dependency group of pyproject.toml)"
)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local cluster of two CPUs for this module's tests, its logs in a temporary directory,
    talking to nothing but loopback."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Every process of the cluster on 127.0.0.1, not on this machine's network address (found
        # by "connecting" to 8.8.8.8): Ray's mode for single machines, off by default on Linux.
        environment.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray's head process asks the clouds' metadata addresses (169.254.169.254,
        # metadata.google.internal) which cloud it runs on, usage stats or not (ray 2.60,
        # usage_stats_head.py): through a proxy address that refuses, those stay on loopback.
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            environment.setenv(name, "http://127.0.0.1:9")
        for name in ("no_proxy", "NO_PROXY"):
            environment.setenv(name, "127.0.0.1,localhost")
        environment.setenv("RAY_DATA_DISABLE_PROGRESS_BARS", "1")  # read when ray.data is imported
        ray = pytest.importorskip("ray", reason=NO_RAY)
        pytest.importorskip("ray.data", reason=NO_RAY)
        # Ray's socket paths must stay short (107 bytes): a directory of its own under /tmp.
        logs = tempfile.mkdtemp(prefix="ray-", dir=tmp_path_factory.getbasetemp())
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=100 * 1024 * 1024,
            log_to_driver=False,
            _temp_dir=logs,
        )
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay() as relay:
        yield relay


def settings_of(relay: FakeRelay, **more: Any) -> dict[str, Any]:
    return {"api_key": relay.api_key, "base_url": relay.base_url, "allow_private_downloads": True, **more}


def posts(relay: FakeRelay) -> int:
    return len([request for request in relay.requests if request.method == "POST"])


@pytest.mark.slow
@pytest.mark.ray
def test_map_batches_generates_every_row_once_and_keeps_a_failed_rows_error(
    ray_cluster: Any, relay: FakeRelay, tmp_path: Path
) -> None:
    relay.queue(Reply.content_policy())  # the first request to arrive, whichever row it is
    prompts = {index: f"A cat number {index}" for index in range(ROWS)}
    results = (
        ray_cluster.data.from_items([{"id": index, "prompt": prompt} for index, prompt in prompts.items()])
        .map_batches(
            ImageGenerationBatches,
            fn_constructor_kwargs=settings_of(relay, save_dir=str(tmp_path), max_retries=0),
            compute=ray_cluster.data.ActorPoolStrategy(size=2),  # two workers
            num_cpus=0.5,  # they wait on the network: leave CPUs to Ray Data's own tasks
            batch_size=8,
        )
        .take_all()
    )

    assert sorted(row["id"] for row in results) == list(prompts)
    assert all(row["prompt"] == prompts[row["id"]] for row in results)
    assert set(results[0]) == set(RESULT_COLUMNS)
    assert posts(relay) == ROWS  # one request a row: none lost, none repeated
    failed = [row for row in results if row["error"] is not None]
    assert len(failed) == 1
    assert failed[0]["error"].startswith("ContentPolicyError: ")
    assert list(failed[0]["urls"]) == list(failed[0]["paths"]) == []
    succeeded = [row for row in results if row["error"] is None]
    # The failed row is the one the relay refused: every other prompt was answered, once.
    assert sorted(relay.generated_prompts) == sorted(row["prompt"] for row in succeeded)
    for row in succeeded:
        assert len(row["urls"]) == len(row["paths"]) == 1
        assert row["urls"][0].startswith(relay.origin)
        assert row["target"] == "127.0.0.1"
        path = Path(row["paths"][0])
        assert path.parent == tmp_path
        assert path.read_bytes().startswith(PNG)
    assert len({row["paths"][0] for row in succeeded}) == ROWS - 1


@pytest.mark.slow
@pytest.mark.ray
def test_option_columns_reach_the_relay_and_missing_values_keep_the_default(
    ray_cluster: Any, relay: FakeRelay
) -> None:
    # Columns with gaps: pandas gives NA there (numpy, None or NaN), which leaves the option out.
    items = [{"prompt": f"A dog number {index}", "n": 2 if index % 2 else None} for index in range(6)]
    items[0]["size"] = "1792x1024"
    results = (
        ray_cluster.data.from_items(items)
        .map_batches(
            ImageGenerationBatches,
            fn_constructor_kwargs=settings_of(relay),
            compute=ray_cluster.data.ActorPoolStrategy(size=1),
            num_cpus=0.5,
            batch_size=3,
            batch_format="pandas",
        )
        .take_all()
    )

    by_prompt = {row["prompt"]: row for row in results}
    assert [len(by_prompt[item["prompt"]]["urls"]) for item in items] == [1, 2, 1, 2, 1, 2]
    assert "/images/1792x1024/" in by_prompt[items[0]["prompt"]]["urls"][0]
    sent = [request.json for request in relay.requests if request.method == "POST"]
    assert sorted(body.get("n", 1) for body in sent) == [1, 1, 1, 2, 2, 2]
    # Without an id column, each row gets an id of its own.
    assert len({row["id"] for row in results}) == len(items)
    assert all(row["error"] is None for row in results)


def test_rows_without_ray_each_rows_failure_its_own(relay: FakeRelay) -> None:
    relay.queue(Reply.rate_limited())
    batch = {
        "id": ["a", "b", "c"],
        "prompt": ["A fox", "A hare", ""],
        "user": ["u1", None, None],
        "n": [2.0, float("nan"), None],  # a numpy column of ints with a gap: floats and NaN
    }
    with ImageGenerationBatches(**settings_of(relay, max_retries=0)) as batches:
        rows = batches.rows(batch)
    assert [list(row) for row in rows] == [list(RESULT_COLUMNS)] * 3
    assert [row["id"] for row in rows] == ["a", "b", "c"]
    errors = [row["error"] for row in rows]
    # The blank prompt is refused before anything is sent; of the two others, the one that met
    # the queued 429 failed (retries are off) and the other succeeded.
    assert errors[2].startswith("InvalidRequestError: ")
    assert [error.split(":")[0] for error in errors[:2] if error] == ["RateLimitError"]
    assert posts(relay) == 2
    # Row a asks for 2 images, as an int; row b leaves n and user to their defaults.
    sent = [request.json for request in relay.requests if request.method == "POST"]
    assert {body.get("user"): body.get("n", 1) for body in sent} == {"u1": 2, None: 1}
    assert all(isinstance(body.get("n", 1), int) for body in sent)
    succeeded = [row for row in rows if row["error"] is None]
    assert [len(row["urls"]) for row in succeeded] == [{"a": 2, "b": 1}[row["id"]] for row in succeeded]
    assert {"n", "size", "user", "image_urls"} <= set(OPTION_COLUMNS)
    assert "on_progress" not in OPTION_COLUMNS


def test_the_table_has_fixed_column_types_even_without_a_failure(relay: FakeRelay) -> None:
    pyarrow = pytest.importorskip("pyarrow", reason="pyarrow comes with Ray Data (.venv-ray)")
    with ImageGenerationBatches(**settings_of(relay)) as batches:
        table = batches({"id": [1, 2], "prompt": ["A fox", "A hare"]})
        mixed = batches({"id": [1, "two"], "prompt": ["A fox", "A hare"]})
    assert table.column_names == list(RESULT_COLUMNS)
    assert table.schema.field("error").type == pyarrow.string()
    assert table.schema.field("cost").type == pyarrow.float64()
    assert table.schema.field("urls").type == pyarrow.list_(pyarrow.string())
    assert table.column("id").to_pylist() == [1, 2]
    assert table.column("error").to_pylist() == [None, None]
    # Ids of mixed types are written as text rather than losing the generated images.
    assert mixed.column("id").to_pylist() == ["1", "two"]
    assert mixed.column("error").to_pylist() == [None, None]


def test_without_pyarrow_a_call_is_refused_before_anything_is_sent(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # importing it raises ImportError
    with (
        ImageGenerationBatches(**settings_of(relay)) as batches,
        pytest.raises(ImportError, match=r"image-tool\[ray\]"),
    ):
        batches({"prompt": ["A fox"]})
    assert posts(relay) == 0


@pytest.mark.parametrize(("max_concurrency", "at_once"), [(512, 6), (2, 2)])
def test_the_rows_of_a_batch_are_sent_at_once_up_to_max_concurrency(
    max_concurrency: int, at_once: int
) -> None:
    with FakeRelay(default_reply=Reply.slow(1.0)) as relay:  # all arrive within it, even loaded
        settings = settings_of(relay, max_concurrency=max_concurrency)
        with ImageGenerationBatches(**settings) as batches:
            batches.rows({"prompt": [f"A slow cat number {index}" for index in range(6)]})
        assert relay.max_in_flight == at_once


def test_a_batch_without_the_prompt_column_is_refused(relay: FakeRelay) -> None:
    with (
        ImageGenerationBatches(**settings_of(relay), prompt_column="text") as batches,
        pytest.raises(ConfigurationError, match="no 'text' column"),
    ):
        batches.rows({"prompt": ["A fox"]})
    assert posts(relay) == 0


def test_a_closed_instance_refuses_batches_and_its_thread_is_gone(relay: FakeRelay) -> None:
    def loop_threads() -> int:
        return sum(thread.name == "image-tool-ray-loop" for thread in threading.enumerate())

    before = loop_threads()
    batches = ImageGenerationBatches(**settings_of(relay))
    batches.rows({"prompt": ["A fox"]})
    assert loop_threads() == before + 1
    batches.close()
    batches.close()  # twice is harmless
    assert loop_threads() == before
    with pytest.raises(RuntimeError, match="closed"):
        batches.rows({"prompt": ["A fox"]})
