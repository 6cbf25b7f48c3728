"""Breakers and cool-downs on an injected clock."""

from __future__ import annotations

import pytest

from tierroute._exceptions import UpstreamRateLimited, UpstreamUnavailable
from tierroute.reliability.health import CLOSED, COOLING, HALF_OPEN, OPEN, Health
from tierroute.reliability.settings import BreakerSettings

from ..fakes.scripted_provider import FakeClock

BOOM = UpstreamUnavailable("500")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def health(clock: FakeClock, **overrides: object) -> Health:
    settings = {"consecutive_failures": 3, "error_rate": 0.5, "min_requests": 6, "window_seconds": 10,
                "cooldown_seconds": 5, **overrides}
    return Health(BreakerSettings(**settings), clock)


def test_consecutive_failures_open_then_one_probe_then_close(clock):
    h = health(clock)
    for _ in range(2):
        h.record_failure("a", BOOM)
    assert h.available("a")
    h.record_failure("a", BOOM)
    assert h.state("a") == OPEN and not h.available("a") and h.unavailable() == {"a"}
    clock.advance(4.9)
    assert not h.available("a")
    clock.advance(0.2)
    assert h.state("a") == HALF_OPEN and h.available("a")
    h.acquire("a")
    assert not h.available("a"), "only one probe at a time"
    h.record_success("a")
    assert h.state("a") == CLOSED and h.available("a") and h.unavailable() == frozenset()


def test_failed_probe_reopens_for_a_full_cooldown(clock):
    h = health(clock)
    for _ in range(3):
        h.record_failure("a", BOOM)
    clock.advance(5)
    h.acquire("a")
    h.record_failure("a", BOOM)
    assert h.state("a") == OPEN
    clock.advance(4.9)
    assert h.state("a") == OPEN
    clock.advance(0.2)
    assert h.state("a") == HALF_OPEN


def test_cancelled_probe_releases_the_slot(clock):
    h = health(clock)
    for _ in range(3):
        h.record_failure("a", BOOM)
    clock.advance(5)
    h.acquire("a")
    h.release("a")
    assert h.available("a")


def test_error_rate_over_the_window_opens_without_consecutive_failures(clock):
    h = health(clock, consecutive_failures=100)
    for _ in range(3):
        h.record_success("a")
        h.record_failure("a", BOOM)
    assert h.state("a") == OPEN  # 3 of 6 failed


def test_old_outcomes_leave_the_window(clock):
    h = health(clock, consecutive_failures=100)
    for _ in range(5):
        h.record_failure("a", BOOM)
        h.record_success("a")
    clock.advance(11)
    for _ in range(5):
        h.record_success("a")
    h.record_failure("a", BOOM)
    assert h.state("a") == CLOSED  # 1 of 6 in the window


def test_429_cools_for_exactly_retry_after_and_leaves_the_breaker_alone(clock):
    h = health(clock, consecutive_failures=1)
    h.record_failure("a", UpstreamRateLimited("429", retry_after_seconds=2.0))
    assert h.state("a") == COOLING and not h.available("a")
    assert h.ready_at("a") == pytest.approx(clock.now + 2.0)
    clock.advance(1.999)
    assert not h.available("a")
    clock.advance(0.002)
    assert h.state("a") == CLOSED and h.available("a")


def test_429_without_retry_after_uses_the_configured_cooldown(clock):
    h = health(clock, rate_limit_cooldown_seconds=0.5)
    h.record_failure("a", UpstreamRateLimited("429"))
    clock.advance(0.4)
    assert not h.available("a")
    clock.advance(0.2)
    assert h.available("a")
