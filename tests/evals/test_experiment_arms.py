"""A/B between router versions, in process: arms are sticky by caller, session or user in every Router
(a stand-in for every replica), weights hold over many keys, keyless requests fall back, and a misconfigured
experiment is refused at start-up naming the field."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tierroute import Router
from tierroute._exceptions import ConfigError

from ..conftest import fake_settings

UPSTREAM = "http://127.0.0.1:9"  # never called: these tests only plan


def experiment(**overrides: Any) -> dict[str, Any]:
    return {"name": "ab-1", "arms": [{"name": "base", "policy": "cheapest"},
                                     {"name": "new", "policy": "learned", "options": {"lambda": 0}}], **overrides}


def router(tmp_path: Path, **exp: Any) -> Router:
    return Router(fake_settings(UPSTREAM, tmp_path, router={"experiment": experiment(**exp)}))


def body(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


def test_a_caller_lands_in_the_same_arm_in_every_router(tmp_path):
    with router(tmp_path) as first, router(tmp_path) as second:
        arms = {}
        for i in range(60):
            caller = f"key-{i:012x}"
            plan = first.route(body(f"question {i}"), caller=caller)
            arm = plan.decision.details["arm"]
            arms[caller] = arm
            assert f"arm {arm} of ab-1 (by caller): " in plan.decision.reason
            for text in ("another question", "a third one, quite different"):  # the prompt does not matter
                assert first.route(body(text), caller=caller).decision.details["arm"] == arm
                assert second.route(body(text), caller=caller).decision.details["arm"] == arm
        assert set(arms.values()) == {"base", "new"}
        # the arms really are different routers: cheapest picks small, the quality-only learned arm mid
        picked = {arm: first.route(body(), caller=c).decision.chosen.model.id for c, arm in arms.items()}
        assert picked == {"base": "small", "new": "mid"}


def test_weights_hold_over_many_callers(tmp_path):
    arms = [{"name": "base", "policy": "cheapest", "weight": 9}, {"name": "new", "policy": "cheapest", "weight": 1}]
    with router(tmp_path, arms=arms) as r:
        counts = Counter(r.route(body(), caller=f"caller-{i}").decision.details["arm"] for i in range(4000))
    # 10% expected: binomial sd ~19 requests, the bounds are ~4 sd either side
    assert 320 <= counts["new"] <= 480, counts


def test_sticky_by_session_and_user(tmp_path):
    with router(tmp_path, sticky_by="session") as r:
        def arm(session: str, text: str, caller: str) -> str:
            plan = r.route(body(text, tierroute={"tags": ["team:a", f"session:{session}"]}), caller=caller)
            assert "(by session)" in plan.decision.reason
            return plan.decision.details["arm"]

        for s in range(20):
            assert len({arm(f"s{s}", f"text {k}", f"caller-{k}") for k in range(5)}) == 1
    with router(tmp_path, sticky_by="user") as r:
        for u in range(20):
            assert len({r.route(body(f"q{k}", user=f"u{u}"), caller=f"c{k}").decision.details["arm"]
                        for k in range(5)}) == 1


def test_requests_without_the_key_fall_back_to_the_request_id_or_the_prompt(tmp_path):
    with router(tmp_path) as r:
        by_prompt = r.route(body("what is the capital of France"))
        assert "(by prompt)" in by_prompt.decision.reason
        assert r.route(body("what is the capital of France")).decision.details["arm"] == by_prompt.decision.details["arm"]
        by_id = r.route(body("x", tierroute={"request_id": "client-42"})).decision
        assert "(by request id)" in by_id.reason
        assert r.route(body("other", tierroute={"request_id": "client-42"})).decision.details["arm"] == by_id.details["arm"]
        # keyless traffic still splits between the arms
        assert {r.route(body(f"prompt {i}")).decision.details["arm"] for i in range(50)} == {"base", "new"}


def settings_error(tmp_path: Path, **exp: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Router(fake_settings(UPSTREAM, tmp_path, router={"experiment": experiment(**exp)}))
    return info.value


def test_config_errors_name_the_field(tmp_path):
    err = settings_error(tmp_path, arms=[{"name": "a", "policy": "cheapest"}, {"name": "b", "policy": "bandit"}])
    assert "router.experiment.arms[1].policy" in str(err) and "bandit" in str(err)
    err = settings_error(tmp_path, arms=[{"name": "a", "policy": "cheapest"},
                                         {"name": "b", "policy": "learned", "options": {"artifact": "/nope.npz"}}])
    assert "router.experiment.arms[1].options" in str(err)
    err = settings_error(tmp_path, arms=[{"name": "a", "policy": "cheapest", "options": {"lambda": 1}},
                                         {"name": "b", "policy": "cheapest"}])
    assert "router.experiment.arms[0].options" in str(err)
    err = settings_error(tmp_path, arms=[{"name": "a", "policy": "cheapest", "weight": 0},
                                         {"name": "b", "policy": "cheapest"}])
    assert "router.experiment.arms[0].weight" in str(err), str(err)
    err = settings_error(tmp_path, arms=[{"name": "a", "policy": "cheapest"}, {"name": "a", "policy": "learned"}])
    assert "router.experiment.arms" in str(err) and "duplicate arm name 'a'" in str(err)
    err = settings_error(tmp_path, arms=[{"name": "a", "policy": "cheapest"}])
    assert "router.experiment.arms" in str(err)
    err = settings_error(tmp_path, sticky_by="ip")
    assert "router.experiment.sticky_by" in str(err)


def test_no_experiment_no_arm(tmp_path):
    with Router(fake_settings(UPSTREAM, tmp_path)) as r:
        assert "arm" not in r.route(body(), caller="c").decision.details
