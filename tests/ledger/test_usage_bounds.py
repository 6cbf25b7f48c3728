"""Absurd usage from a provider (1e30 tokens, negative counts) is bounded before it is charged or recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import urllib.request
import openai
import pytest

from tierroute.bootstrap import build_guards

from ..conftest import fake_settings

HI = [{"role": "user", "content": "hi"}]
SMALL_WINDOW = 4000  # the fake catalog's "small": context window 4000, $0.1 / $0.2 per million tokens


@pytest.fixture
def limited(fake_upstream: Any, tmp_path: Path, serve_settings: Any) -> Any:
    settings = fake_settings(fake_upstream.url, tmp_path,
                             limits={"budgets": [{"scope": "global", "window": "day", "usd": 0.01}]})
    return serve_settings(settings, guards=build_guards(settings))


def metrics_ok(gw: Any) -> bool:
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=10) as r:
        return r.status == 200 and b"tierroute_tokens" in r.read()


def metrics_text(gw: Any) -> str:
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=10) as r:
        return r.read().decode()


def ledger_rows(gw: Any) -> list[Any]:
    gw.router.ledger.flush()
    return gw.router.ledger.entries()


def test_a_1e30_prompt_is_clamped_recorded_as_suspect_and_does_not_lock_the_budget(limited, fake_upstream):
    client = openai.OpenAI(base_url=f"{limited.url}/v1", api_key="unused", max_retries=0, timeout=10)
    fake_upstream.behaviour.prompt_tokens = 1e30
    raw = client.chat.completions.with_raw_response.create(model="small", messages=HI, max_tokens=5)
    assert raw.http_response.status_code == 200
    cost = float(raw.headers["x-tierroute-cost-usd"])
    assert 0 < cost <= SMALL_WINDOW * 2 * 0.2 / 1e6  # at most a full context window, not $1e23
    fake_upstream.behaviour.prompt_tokens = 11
    # the budget ($0.01) is not exhausted by the absurd figure: the next request is admitted
    assert client.chat.completions.create(model="small", messages=HI, max_tokens=5).choices
    rows = ledger_rows(limited)
    assert len(rows) == 2, "the suspect row is recorded, and does not cost its batch"
    suspect = next(r for r in rows if r.usage_note)
    assert suspect.prompt_tokens == SMALL_WINDOW and "prompt_tokens" in suspect.usage_note
    assert suspect.cost_usd == pytest.approx(cost, abs=1e-8)
    assert metrics_ok(limited)
    assert 'tierroute_suspect_usage_total{model="small"} 1.0' in metrics_text(limited)


def test_negative_usage_is_a_200_not_a_500(limited, fake_upstream):
    fake_upstream.behaviour.prompt_tokens = -5
    client = openai.OpenAI(base_url=f"{limited.url}/v1", api_key="unused", max_retries=0, timeout=10)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=HI, max_tokens=5)
    assert raw.http_response.status_code == 200
    assert metrics_ok(limited)
    (row,) = ledger_rows(limited)
    assert row.prompt_tokens >= 0 and "negative" in (row.usage_note or "")
