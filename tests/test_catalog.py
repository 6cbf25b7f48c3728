from __future__ import annotations

import pytest

from tierroute import ConfigError, ModelNotFound
from tierroute.catalog import Catalog, builtin_models
from tierroute.config import parse_settings


def test_builtin_entries_are_complete_and_priced_with_provenance():
    models = builtin_models()
    assert len(models) >= 20
    for m in models:
        assert m.source and m.as_of, m.id
        assert m.mode in {"chat", "embedding"}, m.id
        if m.mode == "embedding":  # priced per input token, never in a tier (they are never routed to for chat)
            assert m.input_price > 0 and m.output_price == 0 and m.tier is None, m.id
            continue
        assert m.input_price > 0 and m.output_price >= m.input_price, m.id
        assert m.context_window >= 8192 and 0 < m.max_output_tokens <= m.context_window, m.id
        assert m.tier in {"reasoning", "general", "extraction"}, m.id
    assert len({m.id for m in models}) == len(models)


def test_overrides_merge_and_additions_need_the_essentials():
    settings = parse_settings({
        "providers": {"openai": {"api_key": "k"}, "local": {"api_base": "http://127.0.0.1:8000/v1"}},
        "models": [{"id": "gpt-4o-mini", "input_price": 0.1},
                   {"id": "qwen", "provider": "local", "context_window": 32768, "input_price": 0, "output_price": 0, "tier": "extraction"}],
    }, environ={})
    catalog = Catalog.build(settings)
    assert catalog.models["gpt-4o-mini"].input_price == 0.1
    assert catalog.models["gpt-4o-mini"].output_price == 0.6
    assert catalog.models["qwen"].upstream == "qwen"
    assert catalog.models["qwen"] in catalog.tiers["extraction"]
    with pytest.raises(ConfigError) as info:
        Catalog.build(parse_settings({"providers": {"local": {"api_base": "http://h/v1"}},
                                      "models": [{"id": "mystery", "provider": "local"}]}, environ={}))
    assert "models[0] ('mystery') is not a built-in model, so it needs: context_window, input_price, output_price" in info.value.message


def test_resolve():
    catalog = Catalog.build(parse_settings({"providers": {"openai": {"api_key": "k"}}}, environ={}))
    models, how = catalog.resolve("auto")
    assert how == "tier general" and all(m.tier == "general" for m in models)
    assert catalog.resolve("gpt-5")[1] == "requested"
    with pytest.raises(ModelNotFound) as info:
        catalog.resolve("gpt-17")
    assert "model 'gpt-17' not found" in info.value.message
    with pytest.raises(ModelNotFound):
        catalog.resolve("claude-sonnet-5-5")  # anthropic is not configured


def test_deployments_add_places_a_model_is_served():
    catalog = Catalog.build(parse_settings({
        "providers": {"openai": {"api_key": "k"}, "azure": {"api_base": "https://x.openai.azure.com/openai/v1", "api_key": "k"}},
        "deployments": [{"model": "gpt-4o", "provider": "azure", "upstream": "gpt-4o-prod", "weight": 2}],
    }, environ={}))
    deps = catalog.deployments["gpt-4o"]
    assert [d.id for d in deps] == ["openai/gpt-4o", "azure/gpt-4o-prod"]
    assert deps[1].weight == 2
