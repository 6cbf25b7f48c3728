"""Backoff, what is retried, the deadline, and the per-request timeout option."""

from __future__ import annotations

import random

import pytest

from tierroute._exceptions import (
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamContentFiltered,
    UpstreamContextTooLong,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tierroute.reliability.retry import DEADLINE_SLACK_SECONDS, Backoff, Deadline, may_fail_over, may_retry

from ..fakes.scripted_provider import FakeClock


def test_backoff_grows_exponentially_within_the_jitter_band_and_caps():
    backoff = Backoff(initial_seconds=0.1, max_seconds=1.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(7)
    for retry, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [backoff.delay_seconds(retry, rng=rng) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert max(delays) - min(delays) > base * 0.3, "jitter spreads retries"


def test_no_jitter_is_exact_and_retry_after_is_a_floor():
    backoff = Backoff(initial_seconds=0.1, max_seconds=5, multiplier=3, jitter=0)
    rng = random.Random(0)
    assert backoff.delay_seconds(3, rng=rng) == pytest.approx(0.9)
    assert backoff.delay_seconds(1, rng=rng, retry_after_seconds=2.5) == 2.5
    assert backoff.delay_seconds(3, rng=rng, retry_after_seconds=0.01) == pytest.approx(0.9)


@pytest.mark.parametrize("error, retry, fail_over", [
    (UpstreamRateLimited("429"), True, True),
    (UpstreamUnavailable("500"), True, True),
    (UpstreamTimeout("slow"), True, True),
    (UpstreamAuthError("401"), False, True),
    (UpstreamContextTooLong("too long"), False, True),
    (UpstreamBadRequest("400"), False, True),  # once: see test_dispatch
    (UpstreamContentFiltered("filtered"), False, False),
])
def test_only_what_can_succeed_is_retried(error, retry, fail_over):
    assert may_retry(error) is retry
    assert may_fail_over(error) is fail_over


def test_deadline_counts_down_on_the_injected_clock():
    clock = FakeClock()
    deadline = Deadline.after(2.0, clock)
    assert deadline.remaining_seconds() == 2.0 and not deadline.expired
    clock.advance(1.5)
    assert deadline.remaining_seconds() == pytest.approx(0.5)
    clock.advance(1)
    assert deadline.remaining_seconds() == 0 and deadline.expired


def test_a_deadline_with_only_milliseconds_left_counts_as_expired():
    # A timer that fires a clock tick early must not leave room for another, instantly doomed attempt.
    clock = FakeClock()
    deadline = Deadline.after(0.4, clock)
    clock.advance(0.4 - DEADLINE_SLACK_SECONDS / 2)
    assert deadline.remaining_seconds() > 0 and deadline.expired
    assert not Deadline.after(2 * DEADLINE_SLACK_SECONDS, clock).expired

