"""Limits end to end: the gateway over loopback with the limits guard on the memory store."""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openai
import pytest

from tierroute.bootstrap import build_guards
from tierroute.budgets.windows import bucket
from tierroute.policies import expected_cost_usd
from tierroute.types import Decision, ModelSpec, Ranked, RequestFeatures, StateSnapshot

from ..conftest import RunningGateway, fake_settings

HI = [{"role": "user", "content": "hi"}]


class Strongest:
    """A policy that prefers quality, so a shift toward cheaper models is visible."""

    name = "strongest"

    def decide(self, features: RequestFeatures, candidates: Sequence[ModelSpec], state: StateSnapshot) -> Decision:
        ranked = sorted((Ranked(model=m, expected_cost_usd=expected_cost_usd(features, m), predicted_quality=m.quality)
                         for m in candidates), key=lambda r: -(r.predicted_quality or 0))
        return Decision(ranked=tuple(ranked), reason="strongest first", policy=self.name)


@pytest.fixture
def limited(fake_upstream: Any, tmp_path: Path, serve_settings: Any) -> Any:
    def start(limits: dict[str, Any], policy: Any = None, **overrides: Any) -> RunningGateway:
        settings = fake_settings(fake_upstream.url, tmp_path, limits=limits, **overrides)
        return serve_settings(settings, guards=build_guards(settings), policy=policy)

    return start


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10)


async def level(gw: RunningGateway, key: str) -> int:
    return (await gw.router.guards[0].store.levels([key]))[0]


def test_over_budget_is_a_429_naming_the_budget_what_is_left_and_the_reset(limited):
    gw = limited({"budgets": [{"scope": "global", "window": "day", "usd": 0.00005}]})
    c = client(gw)
    c.chat.completions.create(model="mid", messages=HI, max_tokens=5)  # $0.000021 of $0.00005
    c.chat.completions.create(model="mid", messages=HI, max_tokens=5)
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="mid", messages=HI, max_tokens=5)
    body = info.value.body
    assert body["scope"] == "budget global=all (USD per day)"
    assert body["remaining"] == pytest.approx(0.000008) and body["limit"] == 0.00005
    assert 0 < body["reset_seconds"] <= 86400 and "resets in" in body["message"]
    assert int(info.value.response.headers["retry-after"]) == pytest.approx(body["reset_seconds"], abs=1)
    # the cheaper model still fits in what is left
    assert c.chat.completions.create(model="small", messages=HI, max_tokens=5).choices


async def test_upstream_failure_releases_the_reservation(limited, fake_upstream):
    gw = limited({"budgets": [{"scope": "global", "window": "day", "usd": 0.00002}]})
    fake_upstream.behaviour.status = 500
    for _ in range(3):
        with pytest.raises(openai.APIStatusError):
            client(gw).chat.completions.create(model="mid", messages=HI, max_tokens=5)
    fake_upstream.reset()
    key = f"global=all:usd:day:{bucket('day', time.time())[0]}"
    assert await level(gw, key) == 0
    assert client(gw).chat.completions.create(model="mid", messages=HI, max_tokens=1).choices


async def test_streams_are_settled_to_their_real_cost_as_they_end(limited):
    gw = limited({"budgets": [{"scope": "global", "window": "day", "tokens": 10_000}]})
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as c:
        stream = await c.chat.completions.create(model="small", messages=HI, stream=True)  # reserves 8 + 512
        assert [ch async for ch in stream]
    key = f"global=all:tok:day:{bucket('day', time.time())[0]}"
    assert await level(gw, key) == 11 + 5  # the fake's usage, not the reservation


async def test_a_stream_that_outruns_its_budget_is_cut_with_an_error_event(limited):
    from tierroute.router import Router as R

    if "_meter" not in inspect.getsource(R._relay):
        pytest.skip("Router._relay does not call the Router._meter hook yet (see docs/cost-control.md)")
    gw = limited({"budgets": [{"scope": "global", "window": "day", "tokens": 12}], "default_completion_tokens": 1})
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as c:
        stream = await c.chat.completions.create(model="small", messages=HI, stream=True)
        received = []
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                received.append(chunk)
    assert "exhausted while streaming" in str(info.value.message)


def test_budget_pressure_shifts_auto_to_cheaper_models_and_says_so(limited):
    gw = limited({"budgets": [{"scope": "global", "window": "day", "usd": 0.0001}], "pressure_threshold": 0.5},
                 policy=Strongest())
    c = client(gw)
    models, reasons = [], []
    for _ in range(4):
        raw = c.chat.completions.with_raw_response.create(model="auto", messages=HI, max_tokens=5)
        models.append(raw.headers["x-tierroute-model"])
        reasons.append(raw.headers["x-tierroute-reason"])
    assert models == ["mid", "mid", "mid", "small"]  # 3 x $0.000021 = 63% >= 50%
    assert reasons[0] == "tier general: strongest first"
    assert reasons[3].startswith("budget pressure: budget global=all (USD per day) at 63% (>= 50%): "
                                 "shifted from mid to cheaper small")
    # a concrete model is honoured under pressure
    assert c.chat.completions.with_raw_response.create(model="mid", messages=HI, max_tokens=5).headers["x-tierroute-model"] == "mid"


def test_default_cost_ceiling_per_key(limited):
    gw = limited({"default_max_cost_usd": 0.001})
    c = client(gw)
    assert c.chat.completions.with_raw_response.create(
        model="auto", messages=HI).headers["x-tierroute-model"] == "small"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="reasoning", messages=HI)  # big: 512 x $30/M > $0.001
    assert "above the request's ceiling $0.001000" in info.value.body["message"]
    # the request's own ceiling wins over the default
    assert c.chat.completions.create(model="reasoning", messages=HI, extra_body={"tierroute": {"max_cost_usd": 1}}).choices


def test_replaying_the_same_prompt_100_times_is_stopped_after_the_configured_count(limited, fake_upstream):
    gw = limited({"runaway": {"enabled": True, "max_repeats": 5, "window_seconds": 60}})
    c = client(gw)
    ok = refused = 0
    for i in range(100):
        # near-identical: only a number changes (a step counter), and whitespace
        messages = [{"role": "user", "content": f"run step {i}  of the plan"}]
        try:
            c.chat.completions.create(model="auto", messages=messages)
            ok += 1
        except openai.RateLimitError as exc:
            refused += 1
            last = exc
    assert (ok, refused) == (5, 95)
    assert "runaway protection" in last.body["message"] and "100 times" in last.body["message"]
    assert len(fake_upstream.requests) == 5
    # a different conversation from the same client is fine
    assert c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "something else"}]).choices


def test_retries_with_the_same_request_id_count_once(limited):
    gw = limited({"runaway": {"enabled": True, "max_repeats": 2, "window_seconds": 60}})
    c = client(gw)
    for _ in range(10):
        c.chat.completions.create(model="auto", messages=HI, extra_body={"tierroute": {"request_id": "req-1"}})
    c.chat.completions.create(model="auto", messages=HI, extra_body={"tierroute": {"request_id": "req-2"}})
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="auto", messages=HI, extra_body={"tierroute": {"request_id": "req-3"}})


def test_runaway_can_route_to_the_cheapest_model_instead(limited):
    gw = limited({"runaway": {"enabled": True, "max_repeats": 2, "action": "cheapest"}})
    c = client(gw)
    got = [c.chat.completions.with_raw_response.create(model="big", messages=HI) for _ in range(3)]
    assert [r.headers["x-tierroute-model"] for r in got] == ["big", "big", "small"]
    assert got[2].headers["x-tierroute-reason"].startswith("runaway, the same request was sent 3 times within 60 s")
