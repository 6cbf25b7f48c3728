"""Peak-EWMA latency estimates and power-of-two choices on an injected clock."""

from __future__ import annotations

import random
from collections import Counter

from tierroute.reliability.balancer import Balancer, PeakEwma
from tierroute.reliability.settings import BalancerSettings
from tierroute.types import Deployment

from ..fakes.scripted_provider import FakeClock

A, B, C = (Deployment(id=n, model="m", provider=n, upstream="m") for n in "abc")


def test_peak_ewma_believes_slowdowns_at_once_and_recoveries_gradually():
    e = PeakEwma()
    e.observe(0.1, now=0.0, tau=2.0)
    e.observe(0.5, now=0.1, tau=2.0)
    assert e.value == 0.5
    e.observe(0.1, now=0.2, tau=2.0)
    assert 0.45 < e.value < 0.5
    e.observe(0.1, now=10.0, tau=2.0)
    assert e.value < 0.11


def test_idle_estimates_decay_so_slow_deployments_are_measured_again():
    e = PeakEwma()
    e.observe(1.0, now=0.0, tau=2.0)
    assert e.read(now=2.0, tau=2.0) < 0.37
    assert e.read(now=6.0, tau=2.0) < 0.05  # e^-3


def test_in_flight_and_weight_shape_the_cost():
    clock = FakeClock()
    b = Balancer(BalancerSettings(decay_seconds=2), clock, random.Random(0))
    b.observe("a", ttft_seconds=0.1)
    b.observe("b", ttft_seconds=0.1)
    for _ in range(3):
        b.begin("a")
    assert b.choose([A, B], 100) is B
    heavy = Deployment(id="a", model="m", provider="a", upstream="m", weight=10)
    assert b.cost(heavy, 100) < b.cost(A, 100)


def test_per_token_latency_matters_for_long_answers():
    clock = FakeClock()
    b = Balancer(BalancerSettings(decay_seconds=2), clock, random.Random(0))
    b.observe("a", ttft_seconds=0.05, seconds_per_token=0.02)  # fast start, slow generation
    b.observe("b", ttft_seconds=0.3, seconds_per_token=0.002)
    assert b.choose([A, B], 1) is A
    assert b.choose([A, B], 500) is B


def simulate(b: Balancer, clock: FakeClock, latency: dict[str, float], seconds: float, rate: float = 50) -> Counter:
    """Open-loop traffic at ``rate`` requests/s; each answers after the deployment's current latency."""
    chosen: Counter = Counter()
    steps = int(seconds * rate)
    for _ in range(steps):
        clock.advance(1 / rate)
        d = b.choose([A, B, C], 100)
        chosen[d.id] += 1
        b.observe(d.id, ttft_seconds=latency[d.id])
    return chosen


def test_a_5x_slower_deployment_loses_traffic_within_seconds_and_regains_it_after_recovery():
    clock = FakeClock()
    b = Balancer(BalancerSettings(decay_seconds=1.0), clock, random.Random(3))
    latency = {"a": 0.05, "b": 0.05, "c": 0.05}
    warm = simulate(b, clock, latency, 3)
    assert min(warm.values()) > 0.2 * sum(warm.values())
    latency["c"] = 0.25
    simulate(b, clock, latency, 1)  # the move itself
    slow = simulate(b, clock, latency, 4)
    assert slow["c"] < 0.1 * sum(slow.values()), slow
    assert slow["c"] > 0, "it is still probed now and then"
    latency["c"] = 0.05
    simulate(b, clock, latency, 3)
    back = simulate(b, clock, latency, 3)
    assert back["c"] > 0.2 * sum(back.values()), back


def test_failures_cost_in_proportion_to_how_often_they_happen():
    clock = FakeClock()
    b = Balancer(BalancerSettings(decay_seconds=2, failure_penalty_seconds=5), clock, random.Random(0))
    for i in range(1000):  # 50 requests/s for 20 s to each: "a" fails them all, "b" 1 in 100, "c" none
        clock.advance(0.02)
        b.observe_failure("a", elapsed_seconds=0.001)
        for name in "bc":
            if name == "b" and i % 100 == 50:
                b.observe_failure(name, elapsed_seconds=0.001)
            else:
                b.observe(name, ttft_seconds=0.05)
    a, fails_1pct, healthy = (b.expected_seconds(n, 0) for n in "abc")
    assert a > 4.5, "a deployment that fails in a millisecond is not a fast one"
    assert healthy < fails_1pct < 0.2, "an occasional failure costs a little, it does not push it out"
