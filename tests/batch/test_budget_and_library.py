"""The hard cap (--max-cost / max_cost_usd) and the library API (Router.batch)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tierroute.batch.budget import BatchBudget
from tierroute.bootstrap import build_router
from tierroute.state.memory import MemoryStore

from .conftest import answered_items, cli, read_output, write_config, write_input

LINE_COST = 11 * 0.1e-6 + 5 * 0.2e-6  # what the fake reports for each line on "small"


def ceiling(config: Path) -> float:
    router = build_router(config, discover=False, with_ledger=False)
    budget = BatchBudget(MemoryStore(), key="k", max_cost_usd=1, catalog=router.catalog)
    body = {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "item 1000"}]}
    return budget.ceiling_usd(body)


def test_the_cap_holds_to_within_one_reservation_and_across_a_resume(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    source, out = write_input(tmp_path / "in.jsonl", 1500), tmp_path / "o.jsonl"
    cap = 0.002  # room for ~950 lines of real cost
    first = cli(str(source), "--out", str(out), "--max-cost", str(cap), "--progress", "none", config=config)
    assert first.returncode == 3, first.stderr
    records = read_output(out)
    assert len(records) == 1500
    answered = [r for r in records if r["error"] is None]
    refused = [r for r in records if r["error"] is not None]
    assert {r["error"]["code"] for r in refused} == {"budget_exceeded"}
    spent_by_upstream_log = len(answered_items(a, b)) * LINE_COST
    assert len(answered_items(a, b)) == len(answered)
    assert spent_by_upstream_log <= cap + 1e-12
    assert spent_by_upstream_log >= cap - ceiling(config) - LINE_COST  # it stopped within one reservation of the cap
    assert sum(r["tierroute"]["cost_usd"] for r in answered) == pytest.approx(spent_by_upstream_log)

    a.reset(), b.reset()
    again = cli(str(source), "--out", str(out), "--max-cost", str(cap), "--retry-failed", "--progress", "none",
                config=config)
    assert again.returncode == 3 and not a.outcomes and not b.outcomes  # the earlier spend still counts
    more = cli(str(source), "--out", str(out), "--max-cost", "1", "--retry-failed", "--progress", "none", config=config)
    assert more.returncode == 0, more.stderr
    assert len(answered_items(a, b)) == len(refused) and len(read_output(out)) == 1500


def test_router_batch_yields_results_as_they_complete_within_the_cap(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    b.behaviour.failure_rate = 0.2
    config = write_config(tmp_path / "c.yaml", a, b)

    async def main() -> list:
        router = build_router(config, discover=False, with_ledger=False)
        items = ({"custom_id": f"r{i}", "body": {"model": "auto", "max_tokens": 8,
                                                  "messages": [{"role": "user", "content": f"item {i}"}]}}
                 for i in range(300))
        try:
            return [r async for r in router.batch(items, concurrency=32, max_cost_usd=1.0)]
        finally:
            await router.aclose()

    results = asyncio.run(main())
    assert sorted(r.custom_id for r in results) == sorted(f"r{i}" for i in range(300))
    assert all(r.ok and r.model == "small" and r.response["choices"] for r in results)
    assert len(answered_items(a, b)) == 300
    assert sum(r.cost_usd for r in results) == pytest.approx(300 * LINE_COST)


def test_router_batch_refuses_lines_past_the_cap(tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    room = ceiling(config)
    cap = room + 3.5 * LINE_COST  # one reservation, then room for ~3 more lines' real cost

    async def main() -> list:
        router = build_router(config, discover=False, with_ledger=False)
        bodies = [{"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": f"item {i}"}]}
                  for i in range(50)]
        try:
            return [r async for r in router.batch(bodies, concurrency=4, max_cost_usd=cap)]
        finally:
            await router.aclose()

    results = asyncio.run(main())
    assert len(results) == 50
    spent = sum(r.cost_usd for r in results)
    assert spent <= cap
    answered = [r for r in results if r.ok]
    assert 1 <= len(answered) < 20 and len(answered_items(a, b)) == len(answered)
    assert spent >= cap - room - LINE_COST
    assert {r.reason for r in results if not r.ok} == {"budget_exceeded"}
