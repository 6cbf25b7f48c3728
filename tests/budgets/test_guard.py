"""The limits guard over the memory store with an injected clock: budgets, windows, holds, rate limits."""

from __future__ import annotations

from typing import Any

import pytest

from tierroute._exceptions import LimitExceeded
from tierroute.budgets import LimitsGuard
from tierroute.budgets.settings import LimitsSettings
from tierroute.state import MemoryStore
from tierroute.types import Decision, ModelSpec, Ranked, RequestFeatures, Usage

MODEL = ModelSpec(id="m", provider="p", upstream="m", context_window=100_000, max_output_tokens=4096,
                  input_price=1.0, output_price=2.0)
# 2024-03-31 23:59:00 UTC: one minute before a day, and a month, roll over
T0 = 1711929540.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock | None = None, store: Any = None, **limits: Any) -> LimitsGuard:
    return LimitsGuard(LimitsSettings.model_validate(limits), store or MemoryStore(), clock=clock or Clock())


def features(prompt: int = 1000, max_tokens: int | None = 500, **kw: Any) -> RequestFeatures:
    return RequestFeatures(requested_model="auto", prompt_tokens=prompt, max_tokens=max_tokens, text="x", **kw)


def decision(model: ModelSpec = MODEL) -> Decision:
    return Decision(ranked=(Ranked(model=model, expected_cost_usd=0.0),), reason="test", policy="test")


# 1000 prompt + 500 completion tokens at $1/$2 per million = $0.002
COST = 0.002


async def test_refusal_names_the_budget_what_is_left_and_when_it_resets():
    g = guard(budgets=[{"scope": "caller", "window": "day", "usd": 0.005}])
    f = features(caller="key-a")
    held = [await g.admit(f, decision(), f"r{i}") for i in range(2)]
    with pytest.raises(LimitExceeded) as info:
        await g.admit(f, decision(), "r3")
    exc = info.value
    assert exc.scope == "budget caller=key-a (USD per day)"
    assert exc.remaining == pytest.approx(0.001)
    assert exc.reset_seconds == pytest.approx(60)
    assert "$0.001000 left of $0.005000" in exc.message and "resets in 1m" in exc.message
    body = exc.to_dict()["error"]
    assert body["code"] == "limit_exceeded" and body["window"] == "day" and body["limit"] == 0.005
    assert body["requested"] == pytest.approx(COST)
    # other callers have their own budget
    assert await g.admit(features(caller="key-b"), decision(), "rb") is not None
    for i, hold in enumerate(held):
        await g.settle(hold, cost_usd=COST, usage=Usage(1000, 500), ok=True)


async def test_settling_to_the_real_cost_frees_the_rest():
    g = guard(budgets=[{"scope": "global", "window": "total", "usd": 0.005}])
    for i in range(4):  # each reserves $0.002 but really costs $0.001: four fit where two were reserved
        hold = await g.admit(features(), decision(), f"r{i}")
        await g.settle(hold, cost_usd=0.001, usage=Usage(1000, 0), ok=True)
    with pytest.raises(LimitExceeded) as info:
        await g.admit(features(), decision(), "r5")
    assert info.value.reset_seconds is None and "never resets" in info.value.message


async def test_an_upstream_failure_releases_the_reservation():
    g = guard(budgets=[{"scope": "global", "window": "day", "usd": 0.003}])
    hold = await g.admit(features(), decision(), "r1")
    with pytest.raises(LimitExceeded):
        await g.admit(features(), decision(), "r2")
    await g.settle(hold, cost_usd=0.0, usage=Usage(), ok=False)
    assert await g.admit(features(), decision(), "r2") is not None


@pytest.mark.parametrize("window, seconds", [("minute", 60), ("hour", 60), ("day", 60), ("month", 60)])
async def test_windows_roll_over_on_the_injected_clock(window, seconds):
    clock = Clock()
    g = guard(clock, budgets=[{"scope": "global", "window": window, "tokens": 1500}])
    await g.settle(await g.admit(features(), decision(), "r1"), cost_usd=COST, usage=Usage(1000, 500), ok=True)
    with pytest.raises(LimitExceeded) as info:
        await g.admit(features(), decision(), "r2")
    assert info.value.reset_seconds == pytest.approx(seconds)
    clock.now += seconds
    assert await g.admit(features(), decision(), "r3") is not None


async def test_tokens_and_model_and_provider_scopes():
    g = guard(budgets=[{"scope": "model", "match": "m", "window": "hour", "tokens": 2000},
                       {"scope": "provider", "window": "hour", "usd": 1.0}])
    other = ModelSpec(id="other", provider="p", upstream="o", context_window=100_000, max_output_tokens=4096,
                      input_price=1.0, output_price=2.0)
    await g.admit(features(), decision(), "r1")
    with pytest.raises(LimitExceeded) as info:
        await g.admit(features(), decision(), "r2")
    assert info.value.scope == "budget model=m (tokens per hour)" and info.value.remaining == 500
    assert await g.admit(features(), decision(other), "r3") is not None


async def test_team_from_tag_or_key_mapping():
    g = guard(budgets=[{"scope": "team", "match": "research", "window": "day", "usd": 0.003}],
              teams={"key-a": "research"})
    await g.admit(features(caller="key-a"), decision(), "r1")
    with pytest.raises(LimitExceeded):
        await g.admit(features(tags=("team:research",)), decision(), "r2")
    assert await g.admit(features(tags=("team:ops",)), decision(), "r3") is None  # no budget applies


async def test_pressure_and_default_ceiling_reach_the_snapshot():
    g = guard(budgets=[{"scope": "caller", "window": "day", "usd": 0.01}], pressure_threshold=0.5,
              default_max_cost_usd=0.5, max_cost_usd_by_caller={"key-b": 0.1})
    f = features(caller="key-a")
    snap = await g.snapshot(f, {})
    assert snap.budget_pressure == 0 and snap.extra["max_cost_usd"] == 0.5
    for i in range(3):
        await g.admit(f, decision(), f"r{i}")
    snap = await g.snapshot(f, {})
    assert snap.budget_pressure == pytest.approx(0.6)
    assert snap.budget_scope == "budget caller=key-a (USD per day)" and snap.extra["pressure_threshold"] == 0.5
    assert (await g.snapshot(features(caller="key-b"), {})).extra["max_cost_usd"] == 0.1


async def test_requests_per_minute_per_caller():
    clock = Clock()
    g = guard(clock, rate_limits=[{"scope": "caller", "requests_per_minute": 3}])
    for i in range(3):
        await g.settle(await g.admit(features(caller="k"), decision(), f"r{i}"), cost_usd=0, usage=Usage(), ok=False)
    with pytest.raises(LimitExceeded) as info:
        await g.admit(features(caller="k"), decision(), "r4")
    assert info.value.scope == "rate limit caller=k (requests per minute)" and info.value.reset_seconds == 60
    clock.now += 60
    assert await g.admit(features(caller="k"), decision(), "r5") is not None


async def test_deployment_try_acquire_spreads_load_before_the_provider_says_429():
    clock = Clock()
    g = guard(clock, deployments={"dep-a": {"requests_per_minute": 2, "tokens_per_minute": 1000}})
    assert await g.try_acquire("dep-a", 400) and await g.try_acquire("dep-a", 400)
    assert not await g.try_acquire("dep-a", 100)  # third request this minute
    assert await g.try_acquire("dep-b", 10**9)  # no limits configured
    clock.now += 60
    assert not await g.try_acquire("dep-a", 1001)  # over the token limit on its own
    assert await g.try_acquire("dep-a", 1000)


async def test_meter_extends_a_growing_stream_then_cuts_it():
    g = guard(budgets=[{"scope": "global", "window": "day", "tokens": 4000}])
    hold = await g.admit(features(max_tokens=None), decision(), "s1")  # 1000 + 512 default tokens reserved
    await g.meter(hold, MODEL, 400)  # within the reservation: no store call needed
    await g.meter(hold, MODEL, 1000)  # outgrew it: the difference (488) plus an eighth of the hold (189)
    assert hold.reserved_tokens == 2000 + 189
    with pytest.raises(LimitExceeded) as info:
        await g.meter(hold, MODEL, 3500)
    assert "exhausted while streaming" in info.value.message and "cut" in info.value.message
    await g.settle(hold, cost_usd=0.0, usage=Usage(1000, 3000), ok=False)
    assert await g.store.levels(["global=all:tok:day:1711843200"]) == [4000]


async def test_meter_near_the_end_of_a_budget_reserves_only_the_difference():
    """Issue 15.4: past its hold a stream asked for a whole new hold, and was cut with budget still left."""
    g = guard(budgets=[{"scope": "global", "window": "day", "tokens": 1700}])
    hold = await g.admit(features(max_tokens=None), decision(), "s1")  # 1000 + 512 reserved, 188 left
    await g.meter(hold, MODEL, 600)  # needs 88 more: the 88 + 189 headroom is refused, the 88 alone fits
    assert hold.reserved_tokens == 1600
    with pytest.raises(LimitExceeded):
        await g.meter(hold, MODEL, 701)  # 1701 > 1700: now the budget is really spent
    await g.settle(hold, cost_usd=0.0, usage=Usage(1000, 700), ok=False)


async def test_meter_never_cuts_a_stream_within_its_max_tokens():
    g = guard(budgets=[{"scope": "global", "window": "day", "tokens": 1100}])
    hold = await g.admit(features(max_tokens=100), decision(), "s1")  # 1000 + 100: the whole budget
    await g.meter(hold, MODEL, 130)  # a count above max_tokens is capped: the server stops at 100
    assert hold.reserved_tokens == 1100
    await g.settle(hold, cost_usd=0.0, usage=Usage(1000, 100), ok=True)


async def test_no_applicable_limit_means_no_reservation():
    g = guard(budgets=[{"scope": "user", "window": "day", "usd": 1}])
    assert await g.admit(features(), decision(), "r1") is None
    await g.settle(None, cost_usd=1.0, usage=Usage(), ok=True)
