"""Which failures are retried."""

from __future__ import annotations

import pytest

from image_tool import errors
from image_tool.retries import Deadline, is_retryable


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (errors.APIConnectionError("refused"), True),
        (errors.APITimeoutError("no answer"), True),
        (errors.APITimeoutError("stalled mid-answer", answer_started=True), False),
        (errors.RateLimitError("429", status_code=429), True),
        (errors.RateLimitError("429", status_code=429, retry_after=30), True),
        (errors.RateLimitError("429", status_code=429, retry_after=3600), False),
        (errors.APIStatusError("bad gateway", status_code=502), True),
        (errors.APIStatusError("unavailable", status_code=503), True),
        (errors.APIStatusError("gateway timeout", status_code=504), True),
        (errors.APIStatusError("internal", status_code=500), False),
        (errors.APIStatusError("bad request", status_code=400), False),
        (errors.ModelNotFoundError("no channel", status_code=503), False),
        (errors.QuotaExceededError("quota", status_code=403), False),
        (errors.AuthenticationError("key", status_code=401), False),
        (errors.ContentPolicyError("policy", status_code=400), False),
        (errors.MalformedResponseError("garbage", status_code=200), False),
        (errors.NoImageError("nothing", status_code=200), False),
        (ValueError("a bug"), False),
    ],
)
def test_retryable(error: BaseException, retried: bool) -> None:
    assert is_retryable(error) is retried


def test_deadline() -> None:
    assert Deadline(None).remaining() is None
    assert not Deadline(None).expired()
    assert Deadline(60).remaining() == pytest.approx(60, abs=1)
    expired = Deadline(0)
    assert expired.expired()
    with pytest.raises(errors.APITimeoutError, match="total timeout of 0 s"):
        expired.check()
