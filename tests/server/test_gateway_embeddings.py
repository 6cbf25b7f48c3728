"""``POST /v1/embeddings`` through the gateway with the openai SDK: pass-through, failover, budgets, ledger."""

from __future__ import annotations

import sqlite3
import time

import openai
import pytest

from tierroute._exceptions import ConfigError
from tierroute.bootstrap import build_guards
from tierroute.router import Router

from ..conftest import fake_settings

EMBED = {"id": "embed", "provider": "emb", "upstream": "fake-embed", "mode": "embedding", "context_window": 8191,
         "input_price": 0.02, "output_price": 0.0}


def settings(fake_upstream, embeddings, tmp_path, **overrides):
    providers = {"fake": {"kind": "openai", "api_base": f"{fake_upstream.url}/v1", "api_key": "sk-upstream"},
                 "emb": {"kind": "openai", "api_base": f"{embeddings.url}/v1", "api_key": "sk-emb"}}
    base = fake_settings(fake_upstream.url, tmp_path)
    models = [m.model_dump(exclude_none=True) for m in base.models] + [EMBED]
    return fake_settings(fake_upstream.url, tmp_path, providers=providers, models=models, **overrides)


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10)


def ledger_rows(path: str) -> list[tuple]:
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT chosen_model, status, prompt_tokens, completion_tokens, cost_usd, baseline_cost_usd "
                              "FROM requests WHERE final = 1").fetchall()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_embeddings_pass_through_and_are_recorded(fake_upstream, embeddings, tmp_path, serve_settings):
    s = settings(fake_upstream, embeddings, tmp_path)
    gw = serve_settings(s)
    raw = client(gw).embeddings.with_raw_response.create(model="embed", input=["red apple", "green pear tree"])
    result = raw.parse()
    assert [d.index for d in sorted(result.data, key=lambda d: d.index)] == [0, 1]
    assert len(result.data[0].embedding) == 16
    assert result.usage.prompt_tokens == 5
    assert raw.headers["x-tierroute-model"] == "embed" and raw.headers["x-tierroute-reason"] == "requested"
    assert float(raw.headers["x-tierroute-cost-usd"]) == pytest.approx(5 * 0.02 / 1e6)
    assert embeddings.requests[-1]["model"] == "fake-embed" and embeddings.headers[-1]["Authorization"] == "Bearer sk-emb"
    # Recorded with its cost, and no "savings" against a chat model.
    assert ledger_rows(s.ledger.path) == [("embed", "ok", 5, 0, pytest.approx(1e-7), pytest.approx(1e-7))]


def test_a_default_embedding_model_answers_requests_that_name_none(fake_upstream, embeddings, tmp_path, serve_settings):
    gw = serve_settings(settings(fake_upstream, embeddings, tmp_path, router={"default_embedding_model": "embed"}))
    raw = client(gw).embeddings.with_raw_response.create(model="auto", input="hello")
    assert raw.headers["x-tierroute-model"] == "embed"
    assert raw.headers["x-tierroute-reason"] == "router.default_embedding_model"


def test_embeddings_fail_over_between_deployments_of_the_same_model_only(fake_upstream, embeddings, tmp_path,
                                                                        serve_settings):
    providers = {"fake": {"kind": "openai", "api_base": f"{fake_upstream.url}/v1"},
                 "emb": {"kind": "openai", "api_base": f"{embeddings.url}/v1"},
                 "dead": {"kind": "openai", "api_base": "http://127.0.0.1:9/v1", "connect_timeout_seconds": 1}}
    base = fake_settings(fake_upstream.url, tmp_path)
    models = [m.model_dump(exclude_none=True) for m in base.models] + [{**EMBED, "provider": "dead"}]
    s = fake_settings(fake_upstream.url, tmp_path, providers=providers, models=models,
                      deployments=[{"model": "embed", "provider": "emb", "upstream": "fake-embed"}])
    gw = serve_settings(s)
    for _ in range(3):
        raw = client(gw).embeddings.with_raw_response.create(model="embed", input="hello")
        assert raw.headers["x-tierroute-deployment"] == "emb/fake-embed"
    assert fake_upstream.requests == []  # never routed to a chat model


def test_bad_embeddings_requests_get_clear_errors(fake_upstream, embeddings, tmp_path, serve_settings):
    gw = serve_settings(settings(fake_upstream, embeddings, tmp_path))
    c = client(gw)
    with pytest.raises(openai.BadRequestError) as info:
        c.embeddings.create(model="auto", input="x")
    assert "embed" in info.value.body["message"] and "default_embedding_model" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        c.embeddings.create(model="small", input="x")
    assert "chat model" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        c.embeddings.create(model="embed", input=[{"not": "text"}])  # type: ignore[list-item]
    assert info.value.body["param"] == "input[0]"
    with pytest.raises(openai.BadRequestError) as info:  # client labels are bounded here as for chat
        c.embeddings.create(model="embed", input="x", user="u" * 10_000)
    assert info.value.body["param"] == "user"
    with pytest.raises(openai.NotFoundError):
        c.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError) as info:  # and the other way round
        c.chat.completions.create(model="embed", messages=[{"role": "user", "content": "hi"}])
    assert "embedding model" in info.value.body["message"]


def test_an_embedding_model_is_never_routed_to_for_chat(fake_upstream, embeddings, tmp_path, serve_settings):
    s = settings(fake_upstream, embeddings, tmp_path, tiers=[{"name": "general"}], router={"policy": "cheapest"})
    gw = serve_settings(s)
    raw = client(gw).chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-tierroute-model"] != "embed"


def test_embedding_budgets_apply(fake_upstream, embeddings, tmp_path, serve_settings):
    s = settings(fake_upstream, embeddings, tmp_path, limits={"budgets": [{"scope": "global", "window": "day", "tokens": 6}]})
    gw = serve_settings(s, guards=build_guards(s))
    c = client(gw)
    c.embeddings.create(model="embed", input="one two three four")  # 4 tokens reserved and spent: 2 left
    with pytest.raises(openai.RateLimitError) as info:
        c.embeddings.create(model="embed", input="one two three four")
    assert info.value.body["remaining"] == 2


def test_a_default_that_is_not_an_embedding_model_is_a_config_error(fake_upstream, embeddings, tmp_path):
    with pytest.raises(ConfigError, match="router.default_embedding_model"):
        Router(settings(fake_upstream, embeddings, tmp_path, router={"default_embedding_model": "small"}))
