"""The daemon threads that send sync requests: started when none is free, kept for the next
request, gone after a while idle; no request waits for a thread that is leaving."""

from __future__ import annotations

import threading

import httpx2
import pytest

from image_tool._io.pooling import _Senders

from ..helpers import wait_until


def test_a_free_sender_is_reused_and_an_idle_one_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    senders = _Senders()
    monkeypatch.setattr(senders, "IDLE", 2.0)
    release = threading.Event()

    def held() -> httpx2.Response:
        release.wait(10)
        return httpx2.Response(200)

    busy = [senders.submit(held) for _ in range(3)]  # three at once: three threads
    assert senders.threads == 3
    release.set()
    assert [sending.result(10).status_code for sending in busy] == [200, 200, 200]
    wait_until(lambda: senders.idle == 3)
    for _ in range(5):  # one after another: the threads already there serve them
        assert senders.submit(lambda: httpx2.Response(204)).result(10).status_code == 204
    assert senders.threads == 3
    wait_until(lambda: senders.threads == 0)  # idle a while: gone
    assert senders.idle == 0
    assert senders.submit(lambda: httpx2.Response(201)).result(10).status_code == 201


def test_a_failure_reaches_the_caller() -> None:
    def failing() -> httpx2.Response:
        raise httpx2.ConnectError("refused")

    with pytest.raises(httpx2.ConnectError, match="refused"):
        _Senders().submit(failing).result(10)
