"""The attempt loop over a fallback plan, with scripted providers on a fake clock (nothing sleeps)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tierroute._exceptions import (
    AllAttemptsFailed,
    ConfigError,
    DeadlineExceeded,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamContextTooLong,
    UpstreamEmptyAnswer,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from tierroute.catalog import Catalog
from tierroute.chat_request import parse_chat_request
from tierroute.config import parse_settings
from tierroute.reliability.dispatch import ALL_UNHEALTHY_NOTE, Attempt, Dispatcher
from tierroute.reliability.settings import ReliabilitySettings
from tierroute.types import Decision, Ranked

from ..fakes.scripted_provider import FakeClock, ScriptedProvider

BOOM = UpstreamUnavailable("fake 500")


def catalog() -> Catalog:
    """m1 on a, b and c; m2 (same tier, larger window) on b; big (tier above) on c."""
    def model(mid: str, provider: str, tier: str, window: int, price: float) -> dict[str, Any]:
        return {"id": mid, "provider": provider, "context_window": window, "input_price": price,
                "output_price": price, "tier": tier}
    raw = {
        "providers": {n: {"api_base": f"http://127.0.0.1:9/{n}"} for n in "abc"},
        "models": [model("m1", "a", "general", 8000, 1), model("m2", "b", "general", 32000, 2),
                   model("big", "c", "reasoning", 200000, 10)],
        "deployments": [{"model": "m1", "provider": "b"}, {"model": "m1", "provider": "c"}],
        "tiers": [{"name": "reasoning"}, {"name": "general"}],
    }
    return Catalog.build(parse_settings(raw, source="test", environ={}))


class Harness:
    def __init__(self, **reliability: Any) -> None:
        self.clock = FakeClock()
        self.catalog = catalog()
        self.providers = {n: ScriptedProvider(n, self.clock) for n in "abc"}
        self.dispatcher = Dispatcher(self.providers, self.catalog, settings=ReliabilitySettings(**reliability),
                                     clock=self.clock, sleep=self.clock.sleep, rng=random.Random(1))
        self.features = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})

    def script(self, deployment: str, *outcomes: Any) -> None:
        self.providers[deployment.split("/")[0]].script[deployment] = list(outcomes)

    def decision(self, *models: str) -> Decision:
        return Decision(ranked=tuple(Ranked(self.catalog.models[m], 0.0) for m in models), reason="t", policy="t")

    async def complete(self, *models: str, timeout_seconds: float | None = None) -> list[Attempt]:
        attempts: list[Attempt] = []
        await self.dispatcher.complete(self.decision(*models), lambda m, d: {"model": d.upstream}, attempts,
                                       features=self.features, timeout_seconds=timeout_seconds)
        return attempts

    async def failing(self, *models: str, timeout_seconds: float | None = None) -> tuple[Exception, list[Attempt]]:
        attempts: list[Attempt] = []
        with pytest.raises(Exception) as info:
            await self.dispatcher.complete(self.decision(*models), lambda m, d: {"model": d.upstream}, attempts,
                                           features=self.features, timeout_seconds=timeout_seconds)
        return info.value, attempts


def tried(attempts: list[Attempt]) -> list[str]:
    return [a.deployment.id for a in attempts]


async def test_fails_over_to_another_deployment_then_an_equivalent_model_without_waiting():
    h = Harness()
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.script(dep, BOOM)
    attempts = await h.complete("m1", "m2")
    assert sorted(tried(attempts)[:3]) == ["a/m1", "b/m1", "c/m1"]
    assert tried(attempts)[3] == "b/m2" and attempts[3].error is None
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    assert all(isinstance(a.error, UpstreamUnavailable) for a in attempts[:3])
    assert h.clock.slept == [], "failing over to another deployment does not back off"


async def test_retry_passes_back_off_then_succeed():
    h = Harness(retry={"initial_seconds": 0.1, "jitter": 0}, max_attempts=10)
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.script(dep, BOOM, BOOM, None)
    attempts = await h.complete("m1")
    assert len(attempts) == 7 and attempts[-1].error is None
    assert h.clock.slept == pytest.approx([0.1, 0.2])


async def test_a_400_from_two_deployments_is_the_requests_fault_returned_at_once_marking_nothing_down():
    h = Harness(breaker={"consecutive_failures": 1})
    for dep in ("a/m1", "b/m1", "c/m1", "b/m2"):
        h.script(dep, UpstreamBadRequest("400"))
    error, attempts = await h.failing("m1", "m2")
    assert isinstance(error, UpstreamBadRequest) and len(attempts) == 2, "a second opinion, then returned"
    assert len(set(tried(attempts))) == 2 and h.clock.slept == []
    assert h.dispatcher.unavailable() == frozenset(), "one client's bad request opens no breaker"
    assert all(s["window_failures"] == 0 for s in h.dispatcher.health.snapshot().values())


async def test_a_400_that_another_deployment_of_the_model_answers_counts_against_the_first():
    h = Harness(breaker={"consecutive_failures": 2})
    h.script("a/m1", UpstreamBadRequest("400 model does not exist"))
    for _ in range(40):
        attempts = await h.complete("m1")
        assert attempts[-1].error is None and attempts[-1].deployment.id != "a/m1"
    calls = len(h.providers["a"].calls)
    assert 1 <= calls <= 3, "charged and penalised by the balancer: it stops getting traffic"
    assert h.dispatcher.health.snapshot()["a/m1"]["window_failures"] == calls


async def test_a_400_charged_to_its_deployment_opens_its_breaker():
    h = Harness(breaker={"consecutive_failures": 2}, balancer={"failure_penalty_seconds": 0})
    h.script("a/m1", UpstreamBadRequest("400 model does not exist"))
    for _ in range(40):
        assert (await h.complete("m1"))[-1].error is None
    assert h.dispatcher.health.state("a/m1") == "open" and len(h.providers["a"].calls) == 2


async def test_a_400_answered_by_another_model_marks_nothing_down():
    h = Harness(breaker={"consecutive_failures": 1})
    h.script("b/m2", UpstreamBadRequest("400 unsupported parameter"))
    h.script("a/m1", None)
    attempts = await h.complete("m2", "m1")
    assert tried(attempts) == ["b/m2", "a/m1"]
    assert h.dispatcher.health.state("b/m2") == "closed", "the other model may simply accept what m2 refused"


async def test_a_404_deployment_is_failed_over_charged_and_stops_getting_traffic():
    h = Harness(breaker={"consecutive_failures": 5})
    h.script("a/m1", UpstreamNotFound("404 model not found"))
    for _ in range(60):
        attempts = await h.complete("m1")
        assert attempts[-1].error is None
    calls = len(h.providers["a"].calls)
    assert 1 <= calls <= 5, f"the fast-failing deployment got {calls} of 60 requests"
    assert h.dispatcher.health.snapshot()["a/m1"]["consecutive_failures"] == calls
    # without the balancer's failure penalty, the breaker alone takes it out after 5
    h = Harness(breaker={"consecutive_failures": 5}, balancer={"failure_penalty_seconds": 0})
    h.script("a/m1", UpstreamNotFound("404 model not found"))
    for _ in range(60):
        assert (await h.complete("m1"))[-1].error is None
    assert len(h.providers["a"].calls) == 5 and h.dispatcher.health.state("a/m1") == "open"


async def test_a_fast_failure_is_not_a_fast_deployment():
    h = Harness(balancer={"failure_penalty_seconds": 5})
    h.dispatcher.balancer.observe("b/m1", ttft_seconds=0.5)
    h.script("a/m1", UpstreamNotFound("404"), None)
    attempts = await h.complete("m1")  # whichever goes first, a/m1 fails in 0 s
    if "a/m1" not in tried(attempts):
        attempts = await h.complete("m1")
    cost = h.dispatcher.balancer.expected_seconds
    assert cost("a/m1", 0) > cost("b/m1", 0), "its instant failure counts as a 5 s sample"


async def test_with_every_breaker_open_the_answer_is_the_same_503_naming_every_deployment():
    h = Harness(breaker={"consecutive_failures": 1, "cooldown_seconds": 60}, retry={"retries": 0})
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.script(dep, BOOM)
    first, _ = await h.failing("m1")
    later, attempts = await h.failing("m1")
    assert len(attempts) == 1 and attempts[0].note == ALL_UNHEALTHY_NOTE
    for error in (first, later):
        assert isinstance(error, AllAttemptsFailed) and error.http_status == 503
        assert {d for d, _ in error.attempts} == {"a/m1", "b/m1", "c/m1"}
    assert sum("skipped" in why for _, why in later.attempts) == 2


async def test_a_deadline_reached_is_a_504_naming_the_attempts():
    h = Harness()
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.providers[dep[0]].latency_seconds[dep] = 0.6
        h.script(dep, BOOM)
    error, attempts = await h.failing("m1", timeout_seconds=1.0)
    assert isinstance(error, DeadlineExceeded) and error.http_status == 504
    assert [d for d, _ in error.attempts][:2] == tried(attempts)[:2]


async def test_an_empty_stream_is_a_failure_tried_once_elsewhere_and_marks_nothing_down():
    h = Harness(breaker={"consecutive_failures": 1})
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.providers[dep[0]].empty_streams.add(dep)
    attempts: list[Attempt] = []
    with pytest.raises(UpstreamEmptyAnswer):
        async for _ in h.dispatcher.stream(h.decision("m1"), lambda m, d: {}, attempts, features=h.features):
            pass
    assert len(attempts) == 2 and all(isinstance(a.error, UpstreamEmptyAnswer) for a in attempts)
    assert h.dispatcher.unavailable() == frozenset()


async def test_a_rejected_key_fails_over_but_is_not_retried():
    h = Harness(retry={"retries": 3})
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.script(dep, UpstreamAuthError("401"))
    error, attempts = await h.failing("m1")
    assert isinstance(error, AllAttemptsFailed) and len(attempts) == 3
    assert {d for d, _ in error.attempts} == {"a/m1", "b/m1", "c/m1"}
    assert "upstream_auth" in str(error)


async def test_context_too_long_moves_to_a_larger_window():
    h = Harness()
    h.script("a/m1", UpstreamContextTooLong("too long"))
    attempts = await h.complete("m1")
    assert tried(attempts) == ["a/m1", "b/m2"], "other m1 deployments have the same window; m2 is larger"
    assert h.dispatcher.health.snapshot().get("a/m1", {}).get("window_failures", 0) == 0, "a long prompt marks nothing down"


async def test_escalation_to_the_tier_above_only_when_configured():
    for escalate, expected in ((False, AllAttemptsFailed), (True, None)):
        h = Harness(escalate_to_tier_above=escalate, retry={"retries": 0})
        for dep in ("a/m1", "b/m1", "c/m1", "b/m2"):
            h.script(dep, BOOM)
        if expected is None:
            assert tried(await h.complete("m1", "m2"))[-1] == "c/big"
        else:
            error, _ = await h.failing("m1", "m2")
            assert isinstance(error, expected)


async def test_pinned_fallback_chain_replaces_the_ranking():
    h = Harness(fallbacks={"m1": ["big"]}, retry={"retries": 0})
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.script(dep, BOOM)
    assert tried(await h.complete("m1", "m2"))[-1] == "c/big"


def test_pinned_chain_naming_an_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="nope"):
        Dispatcher({}, catalog(), settings=ReliabilitySettings(fallbacks={"m1": ["nope"]}))


async def test_retry_after_is_waited_for_when_nothing_else_can_answer():
    h = Harness(retry={"retries": 1, "initial_seconds": 0.1, "jitter": 0})
    h.script("b/m2", UpstreamRateLimited("429", retry_after_seconds=2.0), None)
    attempts = await h.complete("m2")
    assert tried(attempts) == ["b/m2", "b/m2"]
    assert h.clock.slept == pytest.approx([2.0])


async def test_a_retry_after_longer_than_we_wait_is_passed_to_the_caller():
    h = Harness(retry={"max_retry_after_seconds": 5})
    h.script("b/m2", UpstreamRateLimited("429", retry_after_seconds=30.0))
    error, attempts = await h.failing("m2")
    assert isinstance(error, UpstreamRateLimited) and error.retry_after_seconds == 30
    assert len(attempts) == 1 and h.clock.slept == []
    # the next request does not hit the cooling deployment... except as the one last resort
    error, attempts = await h.failing("m2")
    assert isinstance(error, UpstreamRateLimited) and len(attempts) == 1


async def test_the_deadline_bounds_all_attempts_together():
    h = Harness(retry={"retries": 5, "initial_seconds": 0.5, "jitter": 0}, max_attempts=50)
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.providers[dep[0]].latency_seconds[dep] = 0.4
        h.script(dep, BOOM)
    start = h.clock.now
    error, attempts = await h.failing("m1", timeout_seconds=2.0)
    assert h.clock.now - start <= 2.0 + 0.4  # the last attempt started before the deadline
    assert isinstance(error, AllAttemptsFailed) and len(attempts) < 10
    assert all(a.started - start < 2.0 for a in attempts)


async def test_breaker_skips_a_failing_deployment_then_probes_it_after_the_cooldown():
    h = Harness(breaker={"consecutive_failures": 2, "cooldown_seconds": 5}, balancer={"failure_penalty_seconds": 0})
    h.script("a/m1", BOOM)
    calls = h.providers["a"].calls
    for _ in range(20):
        await h.complete("m1")
    assert len(calls) == 2, "opened after two failures, then skipped"
    assert h.dispatcher.unavailable() == {"a/m1"}
    h.clock.advance(5.1)
    h.script("a/m1", None)
    h.dispatcher.balancer._stats.clear()  # equal estimates, so the draw decides
    for _ in range(20):
        await h.complete("m1")
    assert len(calls) > 3, "half-open probe succeeded and closed the breaker"
    assert h.dispatcher.health.state("a/m1") == "closed"


async def test_when_every_deployment_is_open_the_least_recently_failed_is_still_tried():
    h = Harness(breaker={"consecutive_failures": 1, "cooldown_seconds": 60}, retry={"retries": 0})
    for dep in ("a/m1", "b/m1", "c/m1"):
        h.script(dep, BOOM)
    await h.failing("m1")
    assert h.dispatcher.unavailable() >= {"a/m1", "b/m1", "c/m1", "m1"}
    first_failed = min(("a/m1", "b/m1", "c/m1"), key=h.dispatcher.health.last_failure)
    h.script(first_failed, None)
    attempts = await h.complete("m1")
    assert tried(attempts) == [first_failed] and attempts[0].note == ALL_UNHEALTHY_NOTE


async def test_streams_fail_over_before_the_first_chunk_but_not_after():
    h = Harness(retry={"retries": 0})
    h.script("a/m1", BOOM)
    h.dispatcher.balancer.observe("a/m1", ttft_seconds=0.0)  # make "a" the balancer's pick
    for dep in ("b/m1", "c/m1"):
        h.dispatcher.balancer.observe(dep, ttft_seconds=1.0)
    attempts: list[Attempt] = []
    chunks = [c async for c in h.dispatcher.stream(h.decision("m1"), lambda m, d: {}, attempts, features=h.features)]
    assert tried(attempts)[0] == "a/m1" and len(attempts) == 2 and attempts[1].error is None
    assert len(chunks) == 3 and attempts[1].ttft is not None

    h.providers["b"].fail_after_chunks["b/m1"] = (1, UpstreamUnavailable("cut"))
    h.providers["c"].fail_after_chunks["c/m1"] = (1, UpstreamUnavailable("cut"))
    attempts = []
    received = []
    with pytest.raises(UpstreamUnavailable):
        async for chunk in h.dispatcher.stream(h.decision("m1"), lambda m, d: {}, attempts, features=h.features):
            received.append(chunk)
    assert len(received) == 1 and attempts[-1].error is not None
    assert not [a for a in attempts if a.error is None], "no second answer spliced into a started stream"
