"""The metrics operators ask for, scraped from a real gateway's /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tierroute.bootstrap import build_guards

from ..conftest import fake_settings
from . import wire


def scrape(gw) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = wire.get(f"{gw.url}/metrics").content.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def chat(gw, model: str, **extra):
    return wire.post(f"{gw.url}/v1/chat/completions",
                     json={"model": model, "messages": [{"role": "user", "content": "hi"}], **extra})


def test_latency_and_time_to_first_token_per_deployment(gateway):
    assert chat(gateway, "mid", stream=True).status_code == 200
    assert chat(gateway, "mid").status_code == 200
    m = scrape(gateway)
    dep = (("deployment", "fake/fake-mid"),)
    assert m[("tierroute_upstream_seconds_count", dep)] == 2
    assert m[("tierroute_upstream_seconds_sum", dep)] > 0
    assert m[("tierroute_upstream_ttft_seconds_count", dep)] == 1  # streamed answers only
    assert 0 < m[("tierroute_upstream_ttft_seconds_sum", dep)] <= m[("tierroute_upstream_seconds_sum", dep)]


def test_retries_fallbacks_and_breaker_state(gateway_factory, fake_upstream):
    gw = gateway_factory(reliability={"retry": {"retries": 1, "initial_seconds": 0.01, "max_seconds": 0.01},
                                      "fallbacks": {"small": ["mid"]},
                                      "breaker": {"consecutive_failures": 2, "cooldown_seconds": 60}})
    before = scrape(gw)
    assert before[("tierroute_breaker_state", (("deployment", "fake/fake-small"), ("state", "closed")))] == 1
    fake_upstream.behaviour.status = 500
    assert chat(gw, "small").status_code >= 500  # small, mid, then small again: one fallback, one retry
    m = scrape(gw)
    assert m[("tierroute_fallbacks_total", (("from_model", "small"), ("to_model", "mid")))] == 1
    assert m[("tierroute_retries_total", (("deployment", "fake/fake-small"),))] == 1
    assert m[("tierroute_breaker_state", (("deployment", "fake/fake-small"), ("state", "open")))] == 1
    assert m[("tierroute_breaker_state", (("deployment", "fake/fake-small"), ("state", "closed")))] == 0
    assert m[("tierroute_breaker_state", (("deployment", "fake/fake-big"), ("state", "closed")))] == 1


def test_budget_remaining_per_scope(fake_upstream, tmp_path, serve_settings):
    settings = fake_settings(fake_upstream.url, tmp_path, limits={"budgets": [{"scope": "global", "usd": 1.0}]})
    gw = serve_settings(settings, guards=build_guards(settings))
    r = chat(gw, "big")
    assert r.status_code == 200
    spent = float(r.headers["x-tierroute-cost-usd"])
    chat(gw, "big")  # the second request's routing reads the level the first one left
    m = scrape(gw)
    [(key, left)] = [(k, v) for k, v in m.items() if k[0] == "tierroute_budget_remaining"]
    assert dict(key[1]) == {"scope": "global", "value": "all", "unit": "USD", "window": "day"}
    assert 1.0 - 2 * spent - 1e-6 <= left <= 1.0 - spent + 1e-6
