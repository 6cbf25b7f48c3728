"""Adaptive concurrency: AIMD on an injected clock, and over real HTTP against providers that cap
concurrent requests with 429s."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.fakes.openai_upstream import FakeOpenAI
from tierroute.batch.concurrency import AdaptiveLimit

from .conftest import answered_items, cli, read_output, write_config, write_input


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_slow_start_doubles_per_round_trip_then_a_429_halves_once_per_cooldown() -> None:
    async def main() -> None:
        clock = Clock()
        limit = AdaptiveLimit(initial=8, maximum=100, cooldown_seconds=1.0, clock=clock)
        for _ in range(8):
            limit.answered(0.01)
        assert limit.limit == 16 and limit.slow_start
        limit.congested()
        assert limit.limit == 8 and not limit.slow_start
        limit.congested()  # the same burst: ignored
        assert limit.limit == 8
        clock.now += 1.5
        limit.congested()
        assert limit.limit == 4
        for _ in range(4):  # additive: one more per round trip (limit answers)
            limit.answered(0.01)
        assert 4.9 < limit.limit < 5.1
        for _ in range(100):
            limit.congested()
            clock.now += 2
        assert limit.limit == 1  # never below the minimum
    run(main())


def test_latency_climbing_well_above_its_long_run_average_shrinks_the_limit() -> None:
    async def main() -> None:
        clock = Clock()
        limit = AdaptiveLimit(initial=20, maximum=20, clock=clock)
        for _ in range(200):
            limit.answered(0.2)
        for _ in range(5):  # a few long answers are not congestion
            limit.answered(5.0)
        assert limit.limit == 20 and limit.decreases == 0
        for _ in range(30):  # a queue building up upstream
            limit.answered(1.5)
        assert limit.decreases == 1 and limit.limit < 20  # once per cooldown (then additive growth)
        clock.now += 2
        limit.answered(1.5)
        assert limit.decreases == 2
    run(main())


def test_acquire_waits_at_the_limit_and_growth_lets_waiters_in() -> None:
    async def main() -> None:
        limit = AdaptiveLimit(initial=2, maximum=10)
        await limit.acquire()
        await limit.acquire()
        waiter = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        limit.answered(0.001)  # slow start: 2 -> 3
        await asyncio.wait_for(waiter, 1)
        assert limit.in_flight == 3
        blocked = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0.01)
        assert not blocked.done()
        await limit.release()
        await asyncio.wait_for(blocked, 1)
        assert limit.in_flight == 3
    run(main())


def test_providers_capping_concurrency_get_no_storm_of_429s(tmp_path: Path,
                                                          upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    for fake in (a, b):
        fake.behaviour.max_in_flight = 6
        fake.behaviour.delay_seconds = 0.01
    n = 1200
    config = write_config(tmp_path / "c.yaml", a, b)
    result = cli(str(write_input(tmp_path / "in.jsonl", n)), "--out", str(tmp_path / "o.jsonl"),
                 "--concurrency", "256", "--progress", "none", "--json", config=config)
    assert result.returncode == 0, result.stderr
    assert sorted(r["tierroute"]["line"] for r in read_output(tmp_path / "o.jsonl")) == list(range(1, n + 1))
    answered = Counter(answered_items(a, b))
    assert len(answered) == n and max(answered.values()) == 1
    rate_limited = sum(status == 429 for fake in (a, b) for status, _ in fake.outcomes)
    # Without backing off (congested() a no-op) this run drew ~890 429s; with it, ~130.
    assert rate_limited < 0.3 * n, rate_limited
