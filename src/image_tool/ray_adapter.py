"""Generation past one machine: a callable class for Ray Data's ``Dataset.map_batches``.

```python
results = ray.data.read_json("prompts.jsonl").map_batches(  # columns: id, prompt, generate()'s options
    ImageGenerationBatches,
    fn_constructor_kwargs={"model": "gpt-4o-image", "save_dir": "/mnt/shared/images"},
    compute=ray.data.ActorPoolStrategy(size=4),  # workers, each with its own client and limits
    num_cpus=0.25,                               # they wait on the network
    batch_size=64,                               # rows of a batch are generated at once
)
results.write_parquet("/mnt/shared/results")
```

Nothing here imports Ray: ``map_batches`` only calls the class. Its answer is a ``pyarrow.Table``
(Ray Data brings pyarrow: the ``ray`` extra); ``rows`` gives the same as plain dicts, without it.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import sys
import threading
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .client import ImageClient
from .errors import ConfigurationError, ImageToolError, InvalidRequestError
from .models import ImageGenerationResult

if TYPE_CHECKING:
    import pyarrow

_GENERATE = inspect.signature(ImageClient.agenerate).parameters
OPTION_COLUMNS: tuple[str, ...] = tuple(
    name
    for name, parameter in _GENERATE.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "on_progress"
)
"""The columns passed to ``ImageClient.agenerate`` as keywords, when a batch has them: every
keyword it takes (``n``, ``size``, ``quality``, ..., ``image_urls``, ``mask``) but the callback."""
_INTEGER_OPTIONS = frozenset(
    name for name in OPTION_COLUMNS if "int" in str(_GENERATE[name].annotation).split(" | ")
)
RESULT_COLUMNS = (
    "id",
    "prompt",
    "urls",
    "paths",
    "revised_prompt",
    "save_errors",
    "target",
    "cost",
    "usage_total_tokens",
    "error",
)
"""The columns of the answer, one row per row of the batch."""
_SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class _Row:
    id: Any
    prompt: Any
    options: dict[str, Any]


class ImageGenerationBatches:
    """Generates the images of a batch of prompts: a callable class for ``Dataset.map_batches``.

    Ray builds one instance per worker (an actor) with ``fn_constructor_kwargs``: the settings
    of ``ImageClient`` (``api_key``, ``base_url``, ``model``, ``save_dir``, ``max_concurrency``...)
    and which columns hold the prompt and the id. Each instance keeps one client, and one event
    loop on a thread of its own, for its whole life: its connections are reused from batch to
    batch, and ``max_concurrency`` bounds the requests of the whole worker.

    A batch is a mapping of columns, as Ray gives it with ``batch_format="numpy"`` (its default):
    a dict of numpy arrays; a pandas DataFrame (``batch_format="pandas"``) or a dict of lists
    works too. Columns named like a keyword of ``ImageClient.agenerate`` (``OPTION_COLUMNS``:
    ``n``, ``size``, ``quality``, ``image_urls``...) are passed to it, a missing value (``None``,
    NaN, pandas' NA) leaving the option to its default; other columns are not read. Every row of
    the batch is generated at once (up to ``max_concurrency``).

    The answer has one row per row of the batch, in its order, with ``RESULT_COLUMNS``: ``id``,
    ``prompt``, ``urls`` and ``paths`` (lists of str; an inline image only as its saved file),
    the first ``revised_prompt``, ``save_errors`` (why an image that has a link could not be
    saved), ``target`` and ``cost`` (``ImageGenerationResult``'s), ``usage_total_tokens``, and
    ``error``: ``None``, or ``"Kind: message"`` (the ``image_tool.errors`` class and its text)
    when the row failed. A failed row never fails the batch, nor costs another row its images.

    Setup:
        ``pip install 'image-tool[ray]'`` where the dataset runs, and the key in the workers'
        environment (``IMAGE_TOOL_API_KEY``) or in ``fn_constructor_kwargs``.

    Invoke:
        ```python
        results = ray.data.from_items(rows).map_batches(
            ImageGenerationBatches,
            fn_constructor_kwargs={"model": "gpt-4o-image", "save_dir": "/mnt/shared/images"},
            compute=ray.data.ActorPoolStrategy(size=4),
            num_cpus=0.25,
            batch_size=64,
        )
        ```
    """

    def __init__(self, *, prompt_column: str = "prompt", id_column: str = "id", **settings: Any) -> None:
        """``prompt_column`` holds the prompts; ``id_column`` an id carried to the answer (a batch
        without it gets a random id per row: a batch does not know where its rows are in the
        dataset). ``settings`` are ``ImageClient``'s keywords."""
        self.prompt_column = prompt_column
        self.id_column = id_column
        self.client = ImageClient(**settings)
        self._loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._loop.run_forever, name="image-tool-ray-loop", daemon=True)
        thread.start()
        # Closes the client's connections on its own loop, then the loop: at close(), when the
        # instance is collected, or when the worker's interpreter exits.
        self._shutdown = weakref.finalize(self, _shut_down, self.client, self._loop, thread)

    def __call__(self, batch: Mapping[str, Any]) -> pyarrow.Table:
        """Generate every row of ``batch``: a ``pyarrow.Table`` of ``RESULT_COLUMNS``.

        Its column types are fixed, so that every block, and every file a dataset writes from
        them, agrees on them (inferred, the ``error`` column of a batch without failures would be
        of Arrow's null type).
        """
        try:
            import pyarrow
        except ImportError as error:  # found before anything is generated, and billed
            raise ImportError(
                "ImageGenerationBatches answers Ray Data with a pyarrow.Table: install the ray extra "
                "(pip install 'image-tool[ray]'), or call .rows(batch) for plain dicts."
            ) from error
        rows = self.rows(batch)
        return pyarrow.Table.from_pylist(rows, schema=_schema(rows))

    def rows(self, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Generate every row of ``batch``: one dict of ``RESULT_COLUMNS`` per row, in its order."""
        if not self._shutdown.alive:
            raise RuntimeError("This ImageGenerationBatches is closed.")
        rows = self._read(batch)
        running = asyncio.run_coroutine_threadsafe(self._agenerate_rows(rows), self._loop)
        try:
            return running.result()
        except BaseException:
            running.cancel()
            raise

    def close(self) -> None:
        """Close the client's connections and stop the event loop (also done when collected)."""
        self._shutdown()

    def __enter__(self) -> ImageGenerationBatches:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read(self, batch: Mapping[str, Any]) -> list[_Row]:
        names = [str(name) for name in batch]  # a DataFrame iterates its columns too
        if self.prompt_column not in names:
            raise ConfigurationError(
                f"The batch has no {self.prompt_column!r} column (it has {', '.join(names) or 'none'}): "
                "name the prompts' column with prompt_column."
            )
        prompts = _values(batch[self.prompt_column])
        if self.id_column in names:
            ids = _values(batch[self.id_column])
        else:
            ids = [uuid.uuid4().hex for _ in prompts]
        options = {name: _values(batch[name]) for name in OPTION_COLUMNS if name in names}
        return [
            _Row(
                ids[index],
                prompt,
                {
                    name: _option(name, values[index])
                    for name, values in options.items()
                    if not _missing(values[index])
                },
            )
            for index, prompt in enumerate(prompts)
        ]

    async def _agenerate_rows(self, rows: list[_Row]) -> list[dict[str, Any]]:
        # The client's own limit (max_concurrency) bounds how many of these are sent at once.
        return await asyncio.gather(*(self._agenerate_row(row) for row in rows))

    async def _agenerate_row(self, row: _Row) -> dict[str, Any]:
        try:
            if not isinstance(row.prompt, str):
                raise InvalidRequestError(f"The prompt is not text but {type(row.prompt).__name__}.")
            result = await self.client.agenerate(row.prompt, **row.options)
        except ImageToolError as error:
            return _outcome(row, None, f"{type(error).__name__}: {error}")
        return _outcome(row, result, None)


def _outcome(row: _Row, result: ImageGenerationResult | None, error: str | None) -> dict[str, Any]:
    images = result.images if result else []
    return {
        "id": row.id,
        "prompt": row.prompt if isinstance(row.prompt, str) else None,
        # Inline images (data: URLs) are megabytes each: they reach the dataset as saved files.
        "urls": [image.url for image in images if image.url and not image.url.startswith("data:")],
        "paths": [str(image.path) for image in images if image.path],
        "revised_prompt": next((image.revised_prompt for image in images if image.revised_prompt), None),
        "save_errors": [image.save_error for image in images if image.save_error],
        "target": result.target if result else None,
        "cost": result.cost if result else None,
        "usage_total_tokens": result.usage.total_tokens if result and result.usage else None,
        "error": error,
    }


def _schema(rows: list[dict[str, Any]]) -> pyarrow.Schema:
    """The answer's column types; the id's is the batch's own, or text when its ids are of mixed
    types (they are then written as text: the images are generated, whatever the ids)."""
    import pyarrow

    try:
        id_type = pyarrow.array([row["id"] for row in rows]).type
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError):
        id_type = pyarrow.string()
        for row in rows:
            row["id"] = None if row["id"] is None else str(row["id"])
    text, texts = pyarrow.string(), pyarrow.list_(pyarrow.string())
    return pyarrow.schema(
        [
            ("id", id_type),
            ("prompt", text),
            ("urls", texts),
            ("paths", texts),
            ("revised_prompt", text),
            ("save_errors", texts),
            ("target", text),
            ("cost", pyarrow.float64()),
            ("usage_total_tokens", pyarrow.int64()),
            ("error", text),
        ]
    )


def _values(column: Any) -> list[Any]:
    """A column (numpy array, pandas Series, list) as plain Python values."""
    values = column.tolist() if hasattr(column, "tolist") else list(column)
    # An object array keeps numpy values inside (a column of lists holds arrays).
    return [value.tolist() if hasattr(value, "tolist") else value for value in values]


def _missing(value: Any) -> bool:
    """A value a row does not have: None (Arrow's null), NaN in a numeric numpy column, or
    pandas' NA (a DataFrame's gaps: pandas is then imported already)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is getattr(pandas, "NA", None)


def _option(name: str, value: Any) -> Any:
    # A numeric column with a gap is float: 2.0 is the 2 that was given.
    if name in _INTEGER_OPTIONS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _shut_down(client: ImageClient, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if loop.is_closed():
        return
    if loop.is_running():
        closing = asyncio.run_coroutine_threadsafe(_aclose(client, loop), loop)
        try:
            closing.result(timeout=_SHUTDOWN_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_SHUTDOWN_TIMEOUT)
    if not loop.is_running():
        loop.close()


async def _aclose(client: ImageClient, loop: asyncio.AbstractEventLoop) -> None:
    await client.aclose()
    await loop.shutdown_asyncgens()
