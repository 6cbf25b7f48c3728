"""One contract, every state store: memory and Redis behave identically, time injected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tierroute.state import Counter, MemoryStore, Refusal, StateStore


T0 = 1_700_000_000.0


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from tierroute.state.redis import RedisStore

    url = request.getfixturevalue("redis_url")
    s = RedisStore(url, prefix=request.getfixturevalue("redis_prefix"))
    yield s
    await s.aclose()


def c(key: str, limit: int, expires_at: float | None = None) -> Counter:
    return Counter(key=key, limit=limit, expires_at=expires_at)


async def test_reserve_is_all_or_nothing(store):
    a, b = c("a", 10), c("b", 5)
    assert await store.reserve("r1", [a, b], [4, 4], now=T0, hold_seconds=60) is None
    assert await store.levels(["a", "b"]) == [4, 4]
    # b has 1 left: the whole reservation is refused and a is untouched
    assert await store.reserve("r2", [a, b], [4, 4], now=T0, hold_seconds=60) == Refusal(index=1, level=4)
    assert await store.levels(["a", "b", "unknown"]) == [4, 4, 0]


async def test_settle_releases_the_hold_and_counts_the_real_amount(store):
    a = c("a", 100)
    await store.reserve("r1", [a], [50], now=T0, hold_seconds=60)
    await store.settle("r1", [a], [20], now=T0)
    assert await store.levels(["a"]) == [20]
    # settling twice, or a hold that never existed, changes nothing
    await store.settle("r1", [a], [0], now=T0)
    assert await store.levels(["a"]) == [20]


async def test_settlement_is_exactly_once_so_a_replay_never_charges_twice(store):
    a = c("a", 100)
    await store.reserve("r1", [a], [50], now=T0, hold_seconds=60)
    assert await store.settle("r1", [a], [20], now=T0) is True
    assert await store.settle("r1", [a], [20], now=T0 + 1) is False  # the journal replaying it
    assert await store.levels(["a"]) == [20]
    assert await store.settle("never-held", [a], [20], now=T0) is False
    assert await store.levels(["a"]) == [20]


async def test_a_hold_that_expired_unsettled_is_still_charged_once(store):
    """Redis was down (or the replica dead) past the hold's expiry: the late settlement still counts."""
    a = c("a", 100)
    await store.reserve("late", [a], [50], now=T0, hold_seconds=30)
    await store.reserve("x", [c("other", 10)], [1], now=T0 + 31, hold_seconds=30)  # releases the expired hold
    assert await store.levels(["a"]) == [0]
    assert await store.settle("late", [a], [40], now=T0 + 60) is True
    assert await store.settle("late", [a], [40], now=T0 + 61) is False
    assert await store.levels(["a"]) == [40]


async def test_failed_request_settles_to_zero(store):
    a = c("a", 100)
    await store.reserve("r1", [a], [60], now=T0, hold_seconds=60)
    await store.settle("r1", [a], [0], now=T0)
    assert await store.levels(["a"]) == [0]
    assert await store.reserve("r2", [a], [100], now=T0, hold_seconds=60) is None


async def test_holds_expire_so_a_dead_process_frees_its_reservation(store):
    a = c("a", 100)
    await store.reserve("dead", [a], [90], now=T0, hold_seconds=30)
    assert await store.reserve("r2", [a], [20], now=T0 + 29, hold_seconds=30) == Refusal(index=0, level=90)
    assert await store.reserve("r2", [a], [20], now=T0 + 31, hold_seconds=30) is None
    assert await store.levels(["a"]) == [20]


async def test_extending_a_hold_adds_to_it_and_renews_it(store):
    a = c("a", 100)
    await store.reserve("r1", [a], [30], now=T0, hold_seconds=30)
    await store.reserve("r1", [a], [30], now=T0 + 20, hold_seconds=30)
    assert await store.levels(["a"]) == [60]
    await store.reserve("x", [c("other", 10)], [1], now=T0 + 35, hold_seconds=30)  # sweeps; r1 is still alive
    assert await store.levels(["a"]) == [60]
    await store.settle("r1", [a], [55], now=T0 + 40)
    assert await store.levels(["a"]) == [55]


async def test_plain_counting_without_a_hold(store):
    a = c("rpm", 2, expires_at=T0 + 60)
    assert await store.reserve(None, [a], [1], now=T0, hold_seconds=0) is None
    assert await store.reserve(None, [a], [1], now=T0, hold_seconds=0) is None
    assert await store.reserve(None, [a], [1], now=T0, hold_seconds=0) == Refusal(index=0, level=2)


async def test_seen_counts_distinct_members_in_a_sliding_window(store):
    assert await store.seen("k", "a", now=T0, window_seconds=60) == 1
    assert await store.seen("k", "a", now=T0 + 1, window_seconds=60) == 1  # the same id again: a retry
    assert await store.seen("k", "b", now=T0 + 2, window_seconds=60) == 2
    assert await store.seen("k", "c", now=T0 + 61, window_seconds=60) == 2  # "a" aged out
    assert await store.seen("other", "a", now=T0 + 61, window_seconds=60) == 1


async def test_concurrent_reservations_never_overshoot(store):
    a = c("a", 50)
    results = await asyncio.gather(*(store.reserve(f"r{i}", [a], [1], now=T0, hold_seconds=60) for i in range(200)))
    assert sum(r is None for r in results) == 50
    assert await store.levels(["a"]) == [50]
