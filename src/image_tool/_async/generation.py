"""A generation, start to end: the relays in turn (failover), the attempts on each (retries), the
answer read as it arrives, and the images saved; all within the call's deadline."""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import TypeVar

from .._call import (
    OFF_LOOP_BYTES,
    SAVING,
    Call,
    Exchange,
    ProgressCallback,
    Relay,
    finished,
    last_relay_failure,
    only_image_tool_errors,
)
from .._io import tracing
from .._io.pooling import AsyncPools
from .._io.runtime import AsyncAttempt, AsyncRuntime
from .._io.storage import SaveOptions, check_writable
from .._policy.failover import Cooldowns, fails_over
from .._policy.limits import AdaptiveLimit
from .._policy.retries import Deadline, RetryRules, first_wait, retry_policy
from .._wire.body import araw_chunks
from .._wire.request import ImageRequest
from ..errors import APIStatusError, ImageToolError, InvalidRequestError
from ..models import GenerationProgress, ImageGenerationResult
from .saving import save_images

logger = logging.getLogger("image_tool")

T = TypeVar("T")


class AsyncGeneration:
    """The generations of one client: its relay, then its fallbacks' (each one of these for its
    own client, with its own pools)."""

    def __init__(
        self,
        relay: Relay,
        pools: AsyncPools,
        fallbacks: list[AsyncGeneration],
        cooldowns: Cooldowns,
        adaptive: AdaptiveLimit | None,
    ) -> None:
        self.client = relay.client
        self.relay = relay
        self.pools = pools
        self.relays = [self, *fallbacks]
        self.cooldowns = cooldowns
        """Which relays rest after a failure: one record for a client's sync and async calls."""
        self.adaptive = adaptive

    async def generate(self, call: Call) -> ImageGenerationResult:
        """``call`` on each relay in turn (resting ones last) until one serves it."""
        with tracing.generation(self.client, call) as traced, only_image_tool_errors(self.relay.secret):
            if self.client.save_dir is not None:  # before anything is paid for
                check_writable(self.client.save_dir)
            failures: list[ImageToolError] = []
            for index in self.cooldowns.order(len(self.relays)):
                try:
                    result = await self.relays[index].generate_here(call)
                except ImageToolError as error:
                    self._fail_over(index, error, failures)
                    continue
                self.cooldowns.clear(index)
                traced.succeeded(result, self.relays[index].client, len(failures))
                return result
            raise last_relay_failure(failures)

    async def generate_here(self, call: Call) -> ImageGenerationResult:
        """One generation on this relay alone, retries and saving included."""
        client = self.client
        request = self.relay.request(call)
        with Deadline(client.total_timeout) as deadline:
            attempt = functools.partial(self._attempt, request, deadline, call, itertools.count())
            rules = RetryRules(client.max_retries, client.retry_rate_limits, client.retry_unanswered)
            result, attempts = await retried(attempt, rules, deadline)
            result = finished(self.relay, result, call, attempts)
            return await self.saved(result, call)

    async def saved(self, result: ImageGenerationResult, call: Call) -> ImageGenerationResult:
        """``result`` with its images saved, when the client has a ``save_dir``."""
        client = self.client
        if client.save_dir is None or not result.images:
            return result
        await report(call.on_progress, [SAVING])
        pool = await self.pools.current()
        downloads = functools.partial(pool.downloads, public_only=not client.allow_private_downloads)
        saving = SaveOptions(client.save_dir, client.max_image_bytes)
        return await save_images(result, saving, downloads, pool.download_slots)

    async def aclose(self) -> None:
        """Close this client's pooled connections (those of the running event loop, when async)."""
        await self.pools.aclose()
        for relay in self.relays[1:]:
            await relay.aclose()

    async def _attempt(
        self, request: ImageRequest, deadline: Deadline, call: Call, tries: Iterator[int]
    ) -> ImageGenerationResult:
        """One request: the answer read as it arrives, whole or as a stream of events. ``tries``
        counts the requests of the call on this relay."""
        on_progress = call.on_progress
        pool, exchange = await self.pools.current(), Exchange(self.relay, deadline)
        arguments = {
            **exchange.request(request.body(), request.path),
            "extensions": {"trace": exchange.atrace},
        }
        async with self.adaptive.slot() if self.adaptive else nullcontext() as slot, pool.slots:
            traced = tracing.attempt(exchange, "POST", next(tries))
            with traced, exchange.failures(slot), pool.http() as http:  # the span sees the typed error
                if call.on_sending is not None:  # every wait is over: the bytes go next
                    await AsyncRuntime.call(call.on_sending)
                response = await pool.send(http, http.build_request(**arguments), within=deadline.remaining())
                traced.answered(response.status_code)
                try:
                    answer = exchange.reader(response)
                    async for raw in araw_chunks(response):
                        await report(on_progress, answer.feed(raw))
                        deadline.check()
                    large = answer.size > OFF_LOOP_BYTES  # parsed off the event loop
                    updates, result = await AsyncRuntime.off_loop(answer.finish) if large else answer.finish()
                    await report(on_progress, updates)
                    return result
                finally:
                    await response.aclose()

    def _fail_over(self, index: int, error: ImageToolError, failures: list[ImageToolError]) -> None:
        """Note why relay ``index`` failed, and rest it; re-raise ``error`` when no other relay may
        be tried after it. A request a fallback's model cannot take skips that relay alone."""
        if isinstance(error, InvalidRequestError) and len(self.relays) > 1:
            failures.append(error)
            return
        if not fails_over(error, unanswered=self.client.retry_unanswered):
            raise error
        failures.append(error)
        retry_after = error.retry_after if isinstance(error, APIStatusError) else None
        self.cooldowns.rest(index, max(self.client.cooldown, retry_after or 0.0))
        if len(self.relays) > 1:
            logger.warning(
                "The relay %s failed (%s): trying the next", self.relays[index].client.display_name, error
            )


async def retried(attempt: AsyncAttempt[T], rules: RetryRules, deadline: Deadline) -> tuple[T, int]:
    """What ``attempt()`` returns, tried again (up to ``max_retries`` times) on a retryable
    failure, waiting ``Retry-After`` or a backoff between tries; and the attempts it took.

    The first try runs bare: most calls succeed at once, and tenacity's policy is built only for
    a call that failed (a thousand calls in flight would otherwise hold a thousand policies)."""
    try:
        return await attempt(), 1
    except Exception as error:
        wait = first_wait(error, rules, deadline)
    await AsyncRuntime.sleep(wait)
    from tenacity import AsyncRetrying  # loaded by the first retry, not by the import

    retrying = AsyncRetrying(**retry_policy(rules, deadline))
    return await retrying(attempt), 1 + retrying.statistics["attempt_number"]


async def report(on_progress: ProgressCallback | None, updates: Iterable[GenerationProgress]) -> None:
    """Hands each update to ``on_progress`` (``updates`` is consumed either way: reading the
    answer may be what produces them). A failing callback must not cost the generation: it
    is logged and passed over."""
    for update in updates:
        tracing.progress(update)
        if on_progress is not None:
            try:
                await AsyncRuntime.call(on_progress, update)
            except Exception:
                logger.warning("The progress callback failed", exc_info=True)
