"""Safe untrained defaults: a free local model with no published prior never takes a hard prompt.

Before: a model without ``quality`` got a middling 0.7, so with a discovered 1B local model beside hosted ones
the untrained router sent GSM8K problems and proofs to the 1B model because it was free.
"""

from __future__ import annotations

import gzip
import json

import openai
import pytest

from tierroute._exceptions import ConfigError
from tierroute.bootstrap import load, router_for
from tierroute.catalog import Catalog
from tierroute.config import parse_settings
from tierroute.evaluation.data import data_dir
from tierroute.priors import estimated_prior, parameters_in_name
from tierroute.router import Router

from tests.conftest import RunningGateway
from tests.outcome_samples import GSM8K, sample

LOCAL = "ollama/llama3.2:1b"
MID, FRONTIER = "gpt-5-mini", "gpt-5"
EASY = ["hi", "hello, how are you?", "Thanks!", "tell me a joke", "What's the capital of France?"]
HARD = ["Prove that the square root of 2 is irrational.", "Solve x^2 - 5x + 6 = 0 and explain each step.",
        "Implement a function that merges two sorted lists."]


def _settings(ollama_url: str = "http://127.0.0.1:9/v1") -> dict:
    return {
        "providers": {"openai": {"api_key": "sk-test"}, "ollama": {"kind": "openai", "api_base": ollama_url}},
        "models": [{"id": LOCAL, "provider": "ollama", "upstream": "llama3.2:1b", "context_window": 131072,
                    "input_price": 0, "output_price": 0, "tier": "general"}],
        "tiers": [{"name": "general", "models": [LOCAL, MID, FRONTIER]}],
        "ledger": {"backend": "none"},
    }


def _gsm8k_prompts() -> list[str]:
    full = data_dir() / "outcomes" / "routellm-gsm8k.jsonl"
    path = full if full.is_file() else sample(GSM8K)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["messages"][-1]["content"] for line in fh if line.strip()]


def test_unknown_models_get_a_conservative_estimated_prior() -> None:
    catalog = Catalog.build(parse_settings(_settings(), environ={}))
    local = catalog.models[LOCAL]
    assert local.quality_estimated and local.quality == pytest.approx(0.40)
    assert "1B" in (local.quality_source or "")
    assert local.quality < catalog.models[MID].quality < catalog.models[FRONTIER].quality
    assert not catalog.models[MID].quality_estimated and catalog.models[MID].quality_source
    assert parameters_in_name("qwen2.5:72b") == 72 and parameters_in_name("mixtral:8x7b") == 56
    assert parameters_in_name("gemma-4-26b-a4b-it") == 26
    assert estimated_prior("llama3.2:latest")[0] == estimated_prior("llama3.2:1b")[0]  # no size: set low


async def test_hard_prompts_never_go_to_the_free_local_model() -> None:
    router = Router(parse_settings(_settings(), environ={}))
    local_prior = router.catalog.models[LOCAL].quality
    prompts = _gsm8k_prompts() + HARD
    assert len(prompts) >= 500
    chosen: dict[str, int] = {}
    for prompt in prompts:
        plan = await router.plan({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
        model = plan.decision.chosen.model
        assert model.quality > local_prior, (prompt, plan.decision.reason)
        chosen[model.id] = chosen.get(model.id, 0) + 1
    assert LOCAL not in chosen
    # The local model is still a fallback, last, and easy chit-chat may still go to it.
    plan = await router.plan({"model": "auto", "messages": [{"role": "user", "content": HARD[0]}]})
    assert plan.decision.ranked[-1].model.id == LOCAL
    assert "kept off" in plan.decision.reason
    easy_choices = []
    for prompt in EASY:
        plan = await router.plan({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
        assert "kept off" not in plan.decision.reason
        easy_choices.append(plan.decision.chosen.model.id)
    assert LOCAL in easy_choices, easy_choices  # the gate does not shut the free model out of chit-chat


async def test_a_config_given_quality_is_trusted() -> None:
    raw = _settings()
    raw["models"][0]["quality"] = 0.99  # the operator vouches for it: no longer an estimate
    router = Router(parse_settings(raw, environ={}))
    assert not router.catalog.models[LOCAL].quality_estimated
    plan = await router.plan({"model": "auto", "messages": [{"role": "user", "content": HARD[0]}]})
    assert plan.decision.chosen.model.id == LOCAL


def test_discovery_adds_local_models_beside_a_config_file_and_config_wins(fake_upstream, tmp_path) -> None:
    fake_upstream.behaviour.model_ids = ("llama3.2:1b", "qwen2.5:72b")
    local = {"ollama": f"{fake_upstream.url}/v1"}
    config = tmp_path / "tierroute.yaml"
    config.write_text(json.dumps({
        "providers": {"openai": {"api_key": "sk-test"}},
        "models": [{"id": "ollama/qwen2.5:72b", "quality": 0.8, "tier": "reasoning"}],
        "ledger": {"backend": "none"}}))
    loaded = load(config, environ={}, local_servers=local)
    models = loaded.catalog.models
    assert {"ollama/llama3.2:1b", "ollama/qwen2.5:72b", "gpt-5"} <= set(models)
    assert models["ollama/llama3.2:1b"].quality_estimated and models["ollama/llama3.2:1b"].input_price == 0
    assert models["ollama/qwen2.5:72b"].quality == 0.8 and models["ollama/qwen2.5:72b"].tier == "reasoning"
    assert not models["ollama/qwen2.5:72b"].quality_estimated

    config.write_text(json.dumps({"providers": {"openai": {"api_key": "sk-test"}}, "discovery": False,
                                  "ledger": {"backend": "none"}}))
    assert not any(m.startswith("ollama/") for m in load(config, environ={}, local_servers=local).catalog.models)


async def test_through_the_gateway_a_gsm8k_problem_skips_the_discovered_local_model(fake_upstream, tmp_path) -> None:
    """Discovered 1B model and two hosted ones, all served by the fake; the openai SDK asks a GSM8K problem."""
    fake_upstream.behaviour.model_ids = ("llama3.2:1b",)
    config = tmp_path / "tierroute.yaml"
    config.write_text(json.dumps({
        "providers": {"openai": {"api_base": f"{fake_upstream.url}/v1", "api_key": "sk-test"}},
        "tiers": [{"name": "general", "models": [LOCAL, MID, FRONTIER]}],
        "ledger": {"backend": "none"}}))
    loaded = load(config, environ={}, local_servers={"ollama": f"{fake_upstream.url}/v1"})
    gw = RunningGateway(router_for(loaded, with_ledger=False))
    try:
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": _gsm8k_prompts()[0]}])
            assert raw.headers["x-tierroute-model"] in (MID, FRONTIER)
            assert fake_upstream.requests[-1]["model"] != "llama3.2:1b"
    finally:
        gw.stop()


def test_an_override_of_a_local_model_that_is_not_running_does_not_stop_start_up(fake_upstream, tmp_path) -> None:
    fake_upstream.behaviour.model_ids = ("llama3.2:1b",)
    config = tmp_path / "tierroute.yaml"
    config.write_text("providers: {openai: {api_key: sk-test}}\n"
                      "models:\n  - {id: 'ollama/qwen2.5:72b', quality: 0.8, as_of: 2026-11-20}\n"
                      "ledger: {backend: none}\n")
    loaded = load(config, environ={}, local_servers={"ollama": f"{fake_upstream.url}/v1"})
    assert "ollama/llama3.2:1b" in loaded.catalog.models and "ollama/qwen2.5:72b" not in loaded.catalog.models
    config.write_text(config.read_text() + "discovery: false\n")
    with pytest.raises(ConfigError, match=r"models\[0\] \('ollama/qwen2.5:72b'\) is not a built-in model"):
        load(config, environ={}, local_servers={"ollama": f"{fake_upstream.url}/v1"})
