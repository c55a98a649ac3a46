"""Which failures are retried."""

from __future__ import annotations

import pytest

from image_tool import errors
from image_tool._policy import retries
from image_tool._policy.retries import Deadline, RetryRules, is_retryable
from image_tool._sync.generation import retried


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


def unanswered(error: errors.APIError) -> errors.APIError:
    error.sent_unanswered = True
    return error


@pytest.mark.parametrize(
    "error",
    [
        unanswered(errors.APIConnectionError("the connection ended after the request went out")),
        unanswered(errors.APITimeoutError("no answer in time after the request went out")),
        errors.APITimeoutError("Cloudflare 524", status_code=524),
        errors.APIStatusError("Cloudflare 520", status_code=520),
    ],
)
def test_a_request_the_relay_had_is_retried_only_when_allowed(error: errors.APIError) -> None:
    """It may have been drawn: one rule for drops, read timeouts and the gateways' pages."""
    assert not is_retryable(error)
    assert is_retryable(error, unanswered=True)
    assert not RetryRules(5).allow(error, Deadline(None))
    assert RetryRules(5, unanswered=True).allow(error, Deadline(None))


def test_an_answer_that_began_is_never_retried() -> None:
    error = errors.APIConnectionError("cut", answer_started=True)
    assert not is_retryable(error, unanswered=True)


def test_rate_limits_may_be_left_to_the_caller() -> None:
    error = errors.RateLimitError("429", status_code=429)
    assert RetryRules(5).allow(error, Deadline(None))
    assert not RetryRules(5, rate_limits=False).allow(error, Deadline(None))
    assert RetryRules(5, rate_limits=False).allow(errors.APIConnectionError("refused"), Deadline(None))


def test_deadline() -> None:
    assert Deadline(None).remaining() is None
    assert not Deadline(None).expired()
    assert Deadline(60).remaining() == pytest.approx(60, abs=1)
    expired = Deadline(0)
    assert expired.expired()
    with pytest.raises(errors.APITimeoutError, match="total timeout of 0 s"):
        expired.check()


def test_attempts_are_counted_and_backed_off_across_the_first_try(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The first try runs outside tenacity; the attempts after it keep counting, and the backoff
    keeps doubling, as if one policy ran them all."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)  # tenacity sleeps with it too
    monkeypatch.setattr("random.uniform", lambda low, high: 0.0)
    monkeypatch.setattr(retries, "BACKOFF_INITIAL", 1.0)
    monkeypatch.setattr(retries, "BACKOFF_MAX", 30.0)
    outcomes = iter([errors.APIConnectionError("refused")] * 3 + [None])

    def attempt() -> str:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return "done"

    with caplog.at_level("INFO", logger="image_tool"):
        assert retried(attempt, RetryRules(5), Deadline(None)) == ("done", 4)
    assert waits == [1.0, 2.0, 4.0]
    assert [f"Attempt {number} failed" in caplog.text for number in (1, 2, 3)] == [True] * 3


def test_a_failure_not_to_retry_is_raised_from_the_first_try() -> None:
    refused = errors.ContentPolicyError("policy", status_code=400)

    def attempt() -> str:
        raise refused

    with pytest.raises(errors.ContentPolicyError) as raised:
        retried(attempt, RetryRules(5), Deadline(None))
    assert raised.value is refused


def test_a_deadline_bounds_the_waits_inside_its_block() -> None:
    assert retries.current_deadline() is None
    with Deadline(5) as outer:
        assert retries.current_deadline() is outer
        with Deadline(1) as inner:
            assert retries.current_deadline() is inner
        assert retries.current_deadline() is outer
    assert retries.current_deadline() is None
