"""OpenTelemetry's tracer provider, per test.

A process sets OpenTelemetry's global tracer provider once, and image-tool keeps the tracer it
gets from it. So the test session sets, once, a provider that forwards every span to whichever
provider the running test passes to ``trace.set_tracer_provider`` (a test of its own, or a
documentation snippet run by tests/integration/test_readme.py), and to none once that test ends:
no test's provider records another test's spans. ``tests/conftest.py`` runs each test in
``per_test()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import trace

NONE = trace.NoOpTracerProvider()


class ProviderPerTest(trace.TracerProvider):
    """The session's global provider: its tracers start their spans on ``current``."""

    def __init__(self) -> None:
        self.current: trace.TracerProvider = NONE

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _Forwarding(self, args, kwargs)


class _Forwarding(trace.Tracer):
    def __init__(self, switch: ProviderPerTest, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.switch, self.args, self.kwargs = switch, args, kwargs

    def _tracer(self) -> trace.Tracer:
        return self.switch.current.get_tracer(*self.args, **self.kwargs)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer().start_as_current_span(*args, **kwargs)


SWITCH = ProviderPerTest()
_installed: list[bool] = []


def _use(provider: trace.TracerProvider) -> None:
    SWITCH.current = provider


@contextmanager
def per_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """During the test, ``trace.set_tracer_provider`` sets the provider of its spans alone; then
    there is none. Does nothing when another provider was set before the session's."""
    if not _installed:
        trace.set_tracer_provider(SWITCH)  # refused, with a warning logged, when one was set before
        _installed.append(trace.get_tracer_provider() is SWITCH)
    if not _installed[0]:
        yield
        return
    monkeypatch.setattr(trace, "set_tracer_provider", _use)
    try:
        yield
    finally:
        SWITCH.current = NONE
