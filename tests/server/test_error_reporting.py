"""Error responses a caller can act on and find again: the request id on every error, refusals recorded in
the ledger (SQLite and PostgreSQL), and ``stats`` columns that say what they count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tierroute.bootstrap import build_guards
from tierroute.ledger import SQLiteLedger
from tierroute.ledger.base import StatsRow
from tierroute.ledger.stats import REFUSED, summarize
from tierroute.router import Router

from ..conftest import RunningGateway, fake_settings

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_gateway(request: pytest.FixtureRequest, fake_upstream: Any, tmp_path: Path) -> Iterator[Any]:
    """Start a gateway (with a global budget) over the fake upstream, writing the given backend's ledger."""
    running: list[RunningGateway] = []

    def start(**overrides: Any) -> RunningGateway:
        settings = fake_settings(fake_upstream.url, tmp_path, **overrides)
        if request.param == "sqlite":
            ledger: Any = SQLiteLedger(settings.ledger.path, flush_interval_seconds=0.02)
        else:
            from tierroute.ledger.postgres import PostgresLedger

            ledger = PostgresLedger(request.getfixturevalue("postgres_dsn"), flush_interval_seconds=0.02)
        gw = RunningGateway(Router(settings, ledger=ledger, guards=build_guards(settings)))
        running.append(gw)
        return gw

    yield start
    for gw in running:
        gw.stop()


def test_refusals_carry_the_request_id_and_are_recorded_in_the_ledger(ledger_gateway):
    gw = ledger_gateway(limits={"budgets": [{"scope": "global", "window": "day", "usd": 0.00002}]})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=10)
    refusals: dict[str, tuple[int, str]] = {}
    huge = [{"role": "user", "content": "word " * 300_000}]  # larger than every model's context window
    for call, status, code in (
        (lambda: client.chat.completions.create(model="auto", messages=huge), 400, "no_model_fits"),
        (lambda: client.chat.completions.create(model="no-such-model", messages=HI), 404, "model_not_found"),
        (lambda: client.chat.completions.create(model="mid", messages=HI, max_tokens=4000), 429, "limit_exceeded"),
    ):
        with pytest.raises(openai.APIStatusError) as info:
            call()
        assert info.value.status_code == status and info.value.body["code"] == code
        refusals[info.value.response.headers["x-tierroute-request-id"]] = (status, code)
    gw.router.ledger.flush()
    rows = {e.request_id: e for e in gw.router.ledger.entries()}
    for request_id, (status, code) in refusals.items():
        row = rows[request_id]
        assert (row.status, row.http_status, row.error_kind, row.final, row.attempt) == ("refused", status, code, True, 0)
        assert row.chosen_model is None and row.deployment is None and row.cost_usd == 0
    summary = summarize(gw.router.ledger.stats_rows())
    assert summary.requests == 3 and summary.refused == 3 and summary.errors == 3 and summary.attempts == 0


def test_a_request_that_failed_upstream_names_its_id_and_the_ledger_has_the_status_the_caller_got(
        gateway_factory, fake_upstream):
    gw = gateway_factory(reliability={"retry": {"retries": 1, "initial_seconds": 0.01}})
    fake_upstream.behaviour.status = 500
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=10)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="small", messages=HI)
    assert info.value.status_code == 503
    request_id = info.value.response.headers["x-tierroute-request-id"]
    gw.router.ledger.flush()
    rows = sorted((e for e in gw.router.ledger.entries() if e.request_id == request_id), key=lambda e: e.attempt)
    assert [e.http_status for e in rows] == [502, 503], "each attempt's own status; the final row what the caller got"


def row(model: str | None, status: str = "ok", final: bool = True) -> StatsRow:
    return StatsRow(chosen_model=model, status=status, final=final, prompt_tokens=1, completion_tokens=1,
                    cost_usd=0.0 if model is None else 0.01, baseline_cost_usd=0.02, latency_ms=10.0,
                    ttft_ms=None, overhead_ms=None)


def test_stats_per_model_counts_requests_like_its_header_and_attempts_separately():
    rows = [row("a", "error", final=False), row("a", "error", final=False), row("b"),  # failed over to b
            row("a"),                                                                 # answered by a
            row(None, "refused")]                                                      # refused
    summary = summarize(rows)
    assert (summary.requests, summary.errors, summary.attempts, summary.refused) == (3, 1, 4, 1)
    by_model = {m.model: m for m in summary.models}
    assert (by_model["a"].requests, by_model["a"].errors, by_model["a"].attempts, by_model["a"].failed_attempts) == (1, 0, 3, 2)
    assert (by_model["b"].requests, by_model["b"].attempts) == (1, 1)
    assert by_model[REFUSED].requests == 1 and by_model[REFUSED].attempts == 0
    assert sum(m.requests for m in summary.models) == summary.requests
