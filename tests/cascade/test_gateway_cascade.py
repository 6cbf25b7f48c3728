"""The opt-in cascade end to end: a real gateway on loopback, the official openai SDK, a fake upstream that
answers per model; the answer, the headers, the ledger rows and the budget charge checked."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest

from tierroute._exceptions import ConfigError
from tierroute.batch.budget import BatchBudget
from tierroute.bootstrap import build_guards
from tierroute.budgets.windows import NANO_USD, bucket
from tierroute.router import Router
from tierroute.state.memory import MemoryStore

from ..conftest import RunningGateway, fake_settings
from ..server.processes import wait_for

QUESTION = [{"role": "user", "content": "Which is a mammal?\nA) trout\nB) whale\nC) shark\nD) eel\nAnswer:"}]
CASCADE = {"enabled": True, "models": ["small", "mid"], "escalate_to": "big", "answer": "choice"}
BUDGET = {"budgets": [{"scope": "global", "window": "day", "usd": 10.0}]}


@pytest.fixture
def cascading(fake_upstream: Any, tmp_path: Path, serve_settings: Any) -> Any:
    def start(cascade: dict[str, Any] = CASCADE) -> tuple[RunningGateway, Path]:
        settings = fake_settings(fake_upstream.url, tmp_path, router={"cascade": cascade}, limits=BUDGET)
        return serve_settings(settings, guards=build_guards(settings)), Path(settings.ledger.path)

    return start


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10)


def rows(ledger: Path, request_id: str, n: int) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]] | None:
        with sqlite3.connect(ledger) as db:
            db.row_factory = sqlite3.Row
            found = [dict(r) for r in db.execute("select * from requests where request_id = ? order by attempt",
                                                 (request_id,))]
        return found if len(found) == n else None
    return wait_for(read, 10, f"{n} ledger rows")


def price(gw: RunningGateway, model: str, prompt: int, completion: int) -> float:
    return gw.router.catalog.models[model].cost_usd(prompt, completion)


async def charged(gw: RunningGateway) -> float:
    key = f"global=all:usd:day:{bucket('day', time.time())[0]}"
    return (await gw.router.guards[0].store.levels([key]))[0] / NANO_USD


async def test_agreeing_cheap_models_answer_and_every_call_is_recorded_and_charged(cascading, fake_upstream):
    gw, ledger = cascading()
    fake_upstream.behaviour.text_by_model = {"fake-small": "B", "fake-mid": "B) whale", "fake-big": "B, surely"}
    raw = client(gw).chat.completions.with_raw_response.create(model="auto", messages=QUESTION)
    assert raw.headers["x-tierroute-cascade"] == "agreed"
    assert raw.parse().choices[0].message.content == "B"  # the first cheap model's answer
    assert raw.headers["x-tierroute-model"] == "small" and raw.headers["x-tierroute-attempts"] == "2"
    assert sorted(r["model"] for r in fake_upstream.requests) == ["fake-mid", "fake-small"]  # big never called
    prompt = fake_upstream.behaviour.prompt_tokens
    total = price(gw, "small", prompt, 1) + price(gw, "mid", prompt, 2)
    assert float(raw.headers["x-tierroute-cost-usd"]) == pytest.approx(total)
    found = rows(ledger, raw.headers["x-tierroute-request-id"], 2)
    assert [(r["chosen_model"], r["attempt"], r["final"], r["status"]) for r in found] == [
        ("mid", 1, 0, "ok"), ("small", 2, 1, "ok")]
    assert sum(r["cost_usd"] for r in found) == pytest.approx(total)
    assert await charged(gw) == pytest.approx(total, rel=1e-6)


async def test_disagreement_escalates_to_the_strong_model(cascading, fake_upstream):
    gw, ledger = cascading()
    fake_upstream.behaviour.text_by_model = {"fake-small": "A", "fake-mid": "B", "fake-big": "B"}
    raw = client(gw).chat.completions.with_raw_response.create(model="auto", messages=QUESTION)
    assert raw.headers["x-tierroute-cascade"] == "escalated"
    assert raw.headers["x-tierroute-model"] == "big" and raw.parse().choices[0].message.content == "B"
    assert [r["model"] for r in fake_upstream.requests][-1] == "fake-big" and len(fake_upstream.requests) == 3
    prompt = fake_upstream.behaviour.prompt_tokens
    total = sum(price(gw, m, prompt, 1) for m in ("small", "mid", "big"))
    assert float(raw.headers["x-tierroute-cost-usd"]) == pytest.approx(total)
    found = rows(ledger, raw.headers["x-tierroute-request-id"], 3)
    assert [(r["chosen_model"], r["final"]) for r in found] == [("small", 0), ("mid", 0), ("big", 1)]
    assert [r["attempt"] for r in found] == [1, 2, 3]
    assert await charged(gw) == pytest.approx(total, rel=1e-6)
    # a cascade's calls are not fallbacks: the fallback metric stays empty
    assert "tierroute_fallbacks_total{" not in urllib.request.urlopen(f"{gw.url}/metrics").read().decode()


def test_a_reply_without_an_answer_escalates(cascading, fake_upstream):
    gw, ledger = cascading()
    fake_upstream.behaviour.text_by_model = {"fake-small": "I cannot say", "fake-mid": "B", "fake-big": "B"}
    raw = client(gw).chat.completions.with_raw_response.create(model="auto", messages=QUESTION)
    assert raw.headers["x-tierroute-cascade"] == "escalated"  # no letter in the reply: no agreement


def test_streams_and_named_models_are_not_cascaded(cascading, fake_upstream):
    gw, _ = cascading()
    fake_upstream.behaviour.text_by_model = {"fake-small": "A", "fake-mid": "B"}
    c = client(gw)
    raw = c.chat.completions.with_raw_response.create(model="mid", messages=QUESTION)
    assert "x-tierroute-cascade" not in raw.headers and len(fake_upstream.requests) == 1
    with c.chat.completions.with_streaming_response.create(model="auto", messages=QUESTION, stream=True) as resp:
        assert "x-tierroute-cascade" not in resp.headers
        list(resp.iter_lines())
    assert len(fake_upstream.requests) == 2  # one upstream call for the stream


@pytest.mark.parametrize(("cascade", "field"), [
    ({"enabled": True, "models": ["small", "nope"], "escalate_to": "big"}, "router.cascade.models[1]: 'nope'"),
    ({"enabled": True, "models": ["small", "mid"], "escalate_to": "gone"}, "router.cascade.escalate_to: 'gone'"),
    ({"enabled": True, "models": ["small"], "escalate_to": "big"}, "router.cascade.models: give two or three"),
    ({"enabled": True, "models": ["small", "mid"]}, "router.cascade.escalate_to: required"),
])
def test_config_errors_name_the_field_at_start_up(cascade, field, tmp_path):
    settings = fake_settings("http://127.0.0.1:9", tmp_path, router={"cascade": cascade})
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Router(settings)


def test_a_failing_cheap_model_escalates_and_its_attempts_are_recorded(cascading, fake_upstream):
    gw, ledger = cascading()
    fake_upstream.behaviour.text_by_model = {"fake-mid": "B", "fake-big": "B"}
    fake_upstream.behaviour.status_by_model = {"fake-small": 400}  # not retried: one failed attempt
    raw = client(gw).chat.completions.with_raw_response.create(model="auto", messages=QUESTION)
    assert raw.headers["x-tierroute-cascade"] == "escalated" and raw.headers["x-tierroute-model"] == "big"
    found = rows(ledger, raw.headers["x-tierroute-request-id"], 3)
    assert [(r["chosen_model"], r["status"], r["final"]) for r in found] == [
        ("small", "error", 0), ("mid", "ok", 0), ("big", "ok", 1)]


def test_a_failing_strong_model_is_an_error_with_every_attempt_recorded(cascading, fake_upstream):
    gw, ledger = cascading()
    fake_upstream.behaviour.text_by_model = {"fake-small": "A", "fake-mid": "B"}
    fake_upstream.behaviour.status_by_model = {"fake-big": 400}
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(model="auto", messages=QUESTION)
    request_id = info.value.response.headers["x-tierroute-request-id"]
    found = rows(ledger, request_id, 3)
    assert [(r["chosen_model"], r["final"]) for r in found] == [("small", 0), ("mid", 0), ("big", 1)]
    assert found[-1]["status"] == "error"
    assert client(gw).chat.completions.create(model="small", messages=QUESTION).choices  # still serving


def test_requests_the_cascade_cannot_serve_are_routed_as_usual(cascading, fake_upstream):
    gw, _ = cascading()
    fake_upstream.behaviour.text_by_model = {"fake-small": "A", "fake-mid": "B"}
    c = client(gw)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=QUESTION, tools=tools)
    assert "x-tierroute-cascade" not in raw.headers  # a tool call has no final answer to agree on
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=QUESTION, max_tokens=2000)
    assert "x-tierroute-cascade" not in raw.headers  # more output than "small" allows (1024)
    assert len(fake_upstream.requests) == 2


def test_batch_lines_are_cascaded_charged_in_full_and_the_cap_reserves_every_call(fake_upstream, tmp_path):
    fake_upstream.behaviour.text_by_model = {"fake-small": "A", "fake-mid": "B", "fake-big": "B"}
    settings = fake_settings(fake_upstream.url, tmp_path, router={"cascade": CASCADE})
    body = {"model": "auto", "max_tokens": 8, "messages": QUESTION}
    prompt = fake_upstream.behaviour.prompt_tokens

    async def main() -> tuple[list[Any], float, float, float]:
        async with Router(settings) as router:
            def ceiling(cascade: Any) -> float:
                return BatchBudget(MemoryStore(), key="k", max_cost_usd=1, catalog=router.catalog,
                                   cascade=cascade).ceiling_usd(body)

            line = sum(router.catalog.models[m].cost_usd(prompt, 1) for m in ("small", "mid", "big"))
            items = ({"custom_id": f"r{i}", "body": body} for i in range(4))
            results = [r async for r in router.batch(items, concurrency=2, max_cost_usd=1.0)]
            return results, line, ceiling(router.cascade.models), ceiling(())

    results, line, cascaded, single = asyncio.run(main())
    assert all(r.ok and r.model == "big" for r in results) and len(fake_upstream.requests) == 12
    assert [r.cost_usd for r in results] == pytest.approx([line] * 4)
    # the hard cap's per-line reservation covers all three calls, not only the dearest model's
    assert cascaded > single
