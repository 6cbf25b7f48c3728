"""A judge or reference that fails, times out or answers garbage costs a counted skip, never the caller's
answer; a full queue drops samples without blocking; misconfiguration fails at start-up naming the field."""

from __future__ import annotations

import asyncio

import pytest

from tierroute._exceptions import ConfigError
from tierroute.ledger import SQLiteLedger
from tierroute.router import Router

from .conftest import MATH, eval_settings


def body(prompt: str = MATH) -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}]}


async def judged(router: Router, n: int) -> list:
    for _ in range(n):
        routed = await router.acompletion(body())
        assert "[q=" in routed.response["choices"][0]["message"]["content"]
    await router.evals.drain()
    router.ledger.flush()
    return router.ledger.judgments()


@pytest.mark.parametrize("mode, reason", [("garbage", "malformed verdict"), ("fail", "judge call failed")])
def test_a_bad_judge_is_a_counted_skip(quality, tmp_path, mode, reason):
    quality.judge_mode = mode

    async def run() -> None:
        settings = eval_settings(quality.url, tmp_path, reliability={"retry": {"retries": 0}})
        async with Router(settings, ledger=SQLiteLedger(tmp_path / "l.db", flush_interval_seconds=0.02)) as router:
            rows = await judged(router, 3)
            assert [r.verdict for r in rows] == ["skipped"] * 3
            assert all(reason in r.detail for r in rows)
            assert sum(router.evals.skipped.values()) == 3
            assert (await router.evals.store.states()) == {}  # nothing reached the guard

    asyncio.run(run())


def test_a_failing_reference_is_a_counted_skip(quality, tmp_path):
    quality.failing_models.add("fake-strong")

    async def run() -> None:
        settings = eval_settings(quality.url, tmp_path, reliability={"retry": {"retries": 0}})
        async with Router(settings, ledger=SQLiteLedger(tmp_path / "l.db", flush_interval_seconds=0.02)) as router:
            rows = await judged(router, 2)
            assert [r.verdict for r in rows] == ["skipped"] * 2
            assert all("shadow call failed" in r.detail for r in rows)

    asyncio.run(run())


def test_a_position_biased_judge_gives_ties(quality, tmp_path):
    """A judge that always prefers the first answer shown disagrees with itself once the positions swap."""
    quality.judge_mode = "first"
    quality.degraded_words.add("math")

    async def run() -> None:
        async with Router(eval_settings(quality.url, tmp_path),
                          ledger=SQLiteLedger(tmp_path / "l.db", flush_interval_seconds=0.02)) as router:
            rows = await judged(router, 3)
            assert [r.verdict for r in rows] == ["tie"] * 3

    asyncio.run(run())


def test_the_evaluation_budget_stops_sampling_spend(quality, tmp_path):
    async def run() -> None:
        # One worker: with N, the samples in flight when the budget is reached (at most N) still finish.
        settings = eval_settings(quality.url, tmp_path, evals={"max_usd_per_day": 0.0001, "concurrency": 1})
        async with Router(settings, ledger=SQLiteLedger(tmp_path / "l.db", flush_interval_seconds=0.02)) as router:
            rows = await judged(router, 4)
            assert rows[0].verdict == "tie"  # the first sample spends past the tiny budget
            assert [r.verdict for r in rows[1:]] == ["skipped"] * 3
            assert router.evals.skipped == {"budget": 3}

    asyncio.run(run())


def test_a_full_queue_drops_and_counts_without_blocking(quality, tmp_path):
    async def run() -> None:
        settings = eval_settings(quality.url, tmp_path, evals={"queue_size": 2, "concurrency": 1})
        async with Router(settings, ledger=None) as router:
            await asyncio.gather(*(router.acompletion(body()) for _ in range(12)))
            assert router.evals.dropped >= 5  # the one worker cannot have judged that many in between
            assert router.evals.queued + router.evals.dropped == 12
            assert 'fate="dropped"' in router.metrics.render().decode()

    asyncio.run(run())


def test_excluded_callers_and_tags_are_never_sampled(quality, tmp_path):
    async def run() -> None:
        settings = eval_settings(quality.url, tmp_path, evals={"exclude_callers": ["secret-team"],
                                                               "exclude_tags": ["private"]})
        async with Router(settings, ledger=None) as router:
            await router.acompletion(body(), caller="secret-team")
            await router.acompletion({**body(), "tierroute": {"tags": ["private"]}})
            assert router.evals.queued == 0
            await router.acompletion(body(), caller="other")
            assert router.evals.queued == 1

    asyncio.run(run())


@pytest.mark.parametrize("evals, field", [
    ({"reference_model": "nope"}, "evals.reference_model"),
    ({"judge_model": "nope"}, "evals.judge_model"),
])
def test_unknown_models_are_a_config_error_naming_the_field(quality, tmp_path, evals, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        Router(eval_settings(quality.url, tmp_path, evals=evals))


@pytest.mark.parametrize("guard, field", [({"margin": 1.5}, "evals.guard.margin"),
                                          ({"confidence": 0.3}, "evals.guard.confidence"),
                                          ({"action": "panic"}, "evals.guard.action")])
def test_out_of_range_guard_settings_are_refused(quality, tmp_path, guard, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        eval_settings(quality.url, tmp_path, evals={"guard": guard})


def test_feedback_is_a_judgment_on_the_requests_route(quality, tmp_path):
    async def run() -> None:
        settings = eval_settings(quality.url, tmp_path, evals={"sample_rate": 0.0})
        async with Router(settings, ledger=SQLiteLedger(tmp_path / "l.db", flush_interval_seconds=0.02)) as router:
            routed = await router.acompletion(body())
            router.record_feedback({"request_id": routed.plan.request_id, "score": 0.2})
            router.record_feedback({"request_id": "chatcmpl-unknown", "score": 1})
            router.ledger.flush()
            rows = router.ledger.judgments()
            assert [(r.route, r.routed_model, r.judge, r.verdict) for r in rows] == [
                ("intent:math/cheap", "cheap", "feedback", "bad"), (None, None, "feedback", "good")]
            assert router.evals.queued == 0  # a rate of 0 samples nothing

    asyncio.run(run())
