# Made from _async/tasks.py by scripts/make_sync.py: edit that file, then run the script.
"""A generation drawn as a relay's task: submitted once, then polled until it ends, all within the
call's deadline; its images saved as any other. Two kinds share it, each read by its ``_wire``
module: Midjourney through ``/mj`` (``midjourney.py``) and asynchronous Images API jobs
(``image_jobs.py``).

A submit is retried as a generation request is (docs/reliability.md, paid work), an image job's
under one ``Idempotency-Key``; a poll is a read, retried on any failure in transit. Polls start a
second apart and slow to one every ``POLL_MAX`` seconds; a 429 on a poll waits its Retry-After.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from .._call import Call, Exchange, Relay, finished, only_image_tool_errors
from .._io import tracing
from .._io.pooling import SyncPool
from .._io.runtime import SyncRuntime
from .._io.storage import check_writable
from .._policy.retries import Deadline, RetryRules
from .._wire import image_jobs, midjourney
from .._wire.body import BodyDecoder, raw_chunks, received_encoding
from .._wire.tasks import MAX_ANSWER_BYTES, Task, progress_of
from ..errors import APIError, InvalidRequestError
from ..models import ImageGenerationResult
from .generation import SyncGeneration, report, retried

POLL_FIRST = 1.0
POLL_MAX = 5.0
POLL_GROWTH = 1.5


class TaskWire(Protocol):
    """What a ``_wire`` module of a kind of task offers."""

    def base_of(self, base_url: str) -> str: ...
    def poll_path(self, task_id: str) -> str: ...
    def ticket(self, status_code: int, body: bytes) -> str: ...
    def task_of(self, status_code: int, body: bytes) -> Task: ...
    def result_of(self, task: Task, model: str) -> ImageGenerationResult: ...


class SyncTasks:
    """The tasks of one client, on its relay: Midjourney's, or image jobs (``image_jobs=True``)."""

    def __init__(self, relay: Relay, pools: SyncPool, generation: SyncGeneration) -> None:
        self.relay = relay
        self.pools = pools
        self.generation = generation
        self.wire: TaskWire = midjourney if relay.client.family.api == "midjourney" else image_jobs
        self.base = self.wire.base_of(relay.client.base_url)

    def imagine(self, call: Call) -> ImageGenerationResult:
        """A Midjourney grid of four images for ``call``'s prompt: one paid task."""
        request = self.relay.request(call)  # checked as any request is: the prompt, n, the options
        return self._run(call, request.path, request.json or {})

    def draw(self, call: Call) -> ImageGenerationResult:
        """``call`` as an Images API job: one submit (under one Idempotency-Key, however often it
        is sent), polled until its images are drawn."""
        request = self.relay.request(call)
        if request.json is None or request.path != image_jobs.SUBMIT:
            raise InvalidRequestError("An image job draws new images: leave out the images to edit.")
        body = image_jobs.job_body(request.json)
        return self._run(call, image_jobs.SUBMIT, body, {"Idempotency-Key": uuid.uuid4().hex})

    def act(self, task_id: str, action: str, call: Call) -> ImageGenerationResult:
        """``action`` (``U2``, ``V1``, ``reroll``) on the images of Midjourney task ``task_id``:
        one paid task."""
        if self.wire is not midjourney:
            raise InvalidRequestError(
                f"Actions are Midjourney's: {self.relay.client.model} is not a Midjourney model (mj_imagine)."
            )
        with only_image_tool_errors(self.relay.secret), Deadline(self.relay.client.total_timeout) as deadline:
            origin = self._poll(task_id, deadline)
        custom_id = origin.actions.get(action)
        if custom_id is None:
            offered = ", ".join(origin.actions) or "none (the task has not ended, or offers no actions)"
            raise InvalidRequestError(f"Task {task_id} has no action {action!r}; it offers: {offered}.")
        return self._run(call, midjourney.SUBMIT_ACTION, midjourney.action_body(task_id, custom_id))

    def follow(self, task_id: str, call: Call) -> ImageGenerationResult:
        """The images of a task submitted earlier, once it ends: polled, never submitted again."""
        client = self.relay.client
        with tracing.generation(client, call) as traced, only_image_tool_errors(self.relay.secret):
            with Deadline(client.total_timeout) as deadline:
                result = self._finish(task_id, deadline, call, attempts=0)
            traced.succeeded(result, client)
            return result

    def _run(
        self, call: Call, path: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> ImageGenerationResult:
        client = self.relay.client
        with tracing.generation(client, call) as traced, only_image_tool_errors(self.relay.secret):
            with Deadline(client.total_timeout) as deadline:
                if client.save_dir is not None:
                    check_writable(client.save_dir)
                submits = itertools.count()
                submit = functools.partial(self._submit, path, body, headers or {}, deadline, call, submits)
                rules = RetryRules(client.max_retries, client.retry_rate_limits, client.retry_unanswered)
                task_id, attempts = retried(submit, rules, deadline)
                if call.on_task is not None:
                    SyncRuntime.call(call.on_task, task_id)
                result = self._finish(task_id, deadline, call, attempts)
            traced.succeeded(result, client)
            return result

    def _finish(self, task_id: str, deadline: Deadline, call: Call, attempts: int) -> ImageGenerationResult:
        task = self._until_ended(task_id, deadline, call)
        result = finished(self.relay, self.wire.result_of(task, self.relay.client.model), call, attempts)
        return self.generation.saved(result, call)

    def _submit(
        self,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        deadline: Deadline,
        call: Call,
        submits: Iterator[int],
    ) -> str:
        if call.on_sending is not None:
            SyncRuntime.call(call.on_sending)
        status, answer = self._exchange(
            "POST", path, deadline, headers, resend_count=next(submits), json=body
        )
        return self.wire.ticket(status, answer)

    def _until_ended(self, task_id: str, deadline: Deadline, call: Call) -> Task:
        """Polls the task until it ends, reporting each change of its progress. A task that has
        not ended when polling fails (the deadline, the relay gone) is paid for and may still
        finish: the error names it, and counts as unanswered (docs/reliability.md, paid work)."""
        wait, last = POLL_FIRST, None
        try:
            while True:
                task = self._poll(task_id, deadline)
                if (update := progress_of(task)) != last:
                    report(call.on_progress, [update])
                    last = update
                if task.ended:
                    return task
                deadline.check()
                SyncRuntime.sleep(min(wait, deadline.remaining() or wait))
                wait = min(wait * POLL_GROWTH, POLL_MAX)
        except APIError as error:
            pending = type(error)(
                f"{error.message} The task {task_id} was submitted and may still finish: its images "
                "are on the relay under that id.",
                status_code=error.status_code,
            )
            pending.sent_unanswered = True
            raise pending from error

    def _poll(self, task_id: str, deadline: Deadline) -> Task:
        def fetch() -> Task:
            return self.wire.task_of(*self._exchange("GET", self.wire.poll_path(task_id), deadline))

        reads = RetryRules(self.relay.client.max_retries, unanswered=True)  # a read may be sent again
        task, _ = retried(fetch, reads, deadline)
        return task

    def _exchange(
        self,
        method: str,
        path: str,
        deadline: Deadline,
        headers: Mapping[str, str] | None = None,
        resend_count: int | None = None,
        **body: Any,
    ) -> tuple[int, bytes]:
        """One request about a task: its status and its (bounded) answer. A submit (with its
        ``resend_count``) is traced as an attempt; polls are not."""
        pool, exchange = self.pools.current(), Exchange(self.relay, deadline)
        arguments = exchange.request(body, path, root=self.base, method=method)
        if headers:
            arguments["headers"] = merged = self.relay.headers.copy()
            merged.update(headers)
        arguments["extensions"] = {"trace": exchange.trace}
        traced = tracing.OFF if resend_count is None else tracing.attempt(exchange, method, resend_count)
        with pool.slots:
            with traced, exchange.failures(None), pool.http() as http:  # the span sees the typed error
                response = pool.send(http, http.build_request(**arguments), within=deadline.remaining())
                traced.answered(response.status_code)
                try:
                    exchange.status_code = response.status_code
                    decoder = BodyDecoder(received_encoding(response), MAX_ANSWER_BYTES)
                    pieces = [piece for raw in raw_chunks(response) for piece in decoder.feed(raw)]
                    return response.status_code, b"".join(pieces)
                finally:
                    response.close()
