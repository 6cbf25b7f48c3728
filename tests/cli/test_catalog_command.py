"""`tierroute catalog import` and `check`: prices from LiteLLM's price list with provenance, and age warnings.

The fixture is an excerpt of litellm 1.110.2's ``model_prices_and_context_window_backup.json``, unchanged
entries in the exact LiteLLM format (its ``sample_spec``, a deprecated model, a provider tierroute does not
serve and an image model among them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tierroute.catalog import Catalog
from tierroute.config import parse_settings

FIXTURE = Path(__file__).parent.parent / "fixtures" / "catalog" / "litellm_prices.sample.json"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierroute", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TIERROUTE_CONFIG": ""})


def test_import_converts_prices_and_keeps_provenance(tmp_path) -> None:
    out = tmp_path / "imported.yaml"
    done = run_cli("catalog", "import", "--from", str(FIXTURE), "--version", "1.110.2", "--as-of", "2026-11-20",
                   "--all", "--output", str(out))
    assert done.returncode == 0, done.stderr
    entries = {e["id"]: e for e in yaml.safe_load(out.read_text())["models"]}
    # deepseek-chat is deprecated (2026-07-24), ai21 is not a provider tierroute serves, gpt-image is not chat.
    assert set(entries) == {"claude-haiku-4-5", "gpt-5-mini", "gemini-pro-latest", "mistral-embed", "Qwen/Qwen3.7-Plus"}
    haiku = entries["claude-haiku-4-5"]
    assert (haiku["input_price"], haiku["output_price"]) == (1.0, 5.0)
    assert (haiku["cached_input_price"], haiku["cache_write_price"]) == (0.1, 1.25)
    assert haiku["capabilities"] == ["json", "reasoning", "tools", "vision"]
    assert haiku["source"].startswith("LiteLLM 1.110.2 price list, citing https://")
    assert haiku["as_of"] == "2026-11-20"
    pro = entries["gemini-pro-latest"]
    assert pro["provider"] == "gemini" and pro["long_context_threshold"] == 200000
    assert (pro["long_context_input_price"], pro["long_context_output_price"]) == (4.0, 18.0)
    assert entries["mistral-embed"]["mode"] == "embedding"
    assert entries["Qwen/Qwen3.7-Plus"]["provider"] == "together"
    # What it prints is a valid `models:` section: the built-in haiku takes the imported fields, keeps its tier.
    settings = parse_settings({"providers": {"anthropic": {"api_key": "k"}, "gemini": {"api_key": "k"}},
                               "models": [haiku, pro]}, environ={})
    catalog = Catalog.build(settings)
    assert catalog.models["claude-haiku-4-5"].tier == "general"
    assert catalog.models["gemini-pro-latest"].cost_usd(300_000, 0) == 300_000 * 4.0 / 1e6


def test_import_by_default_refreshes_only_the_built_in_models() -> None:
    done = run_cli("catalog", "import", "--from", str(FIXTURE))
    assert done.returncode == 0, done.stderr
    ids = {e["id"] for e in yaml.safe_load(done.stdout)["models"]}
    assert ids == {"claude-haiku-4-5", "gpt-5-mini", "mistral-embed", "Qwen/Qwen3.7-Plus"}  # not gemini-pro-latest
    assert "LiteLLM price list litellm_prices.sample.json" in done.stderr


def test_import_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text("[1, 2]")
    done = run_cli("catalog", "import", "--from", str(bad))
    assert done.returncode == 2 and str(bad) in done.stderr and "expected a JSON object" in done.stderr
    done = run_cli("catalog", "import", "--from", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "not found" in done.stderr


def test_check_warns_about_old_prices(tmp_path) -> None:
    config = tmp_path / "tierroute.yaml"
    config.write_text(json.dumps({
        "providers": {"anthropic": {"api_key": "k"}},
        "models": [{"id": "claude-haiku-4-5", "as_of": "2025-01-01", "source": "an old copy"}],
        "catalog": {"max_price_age_days": 180}, "ledger": {"backend": "none"}, "discovery": False}))
    done = run_cli("catalog", "check", "--config", str(config))
    assert done.returncode == 1
    assert "warning: claude-haiku-4-5 (anthropic): price from 2025-01-01 is" in done.stderr
    assert "an old copy" in done.stderr
    # The built-in catalog's own prices are fresh.
    done = run_cli("catalog", "check", "--config", str(config), "--max-age-days", "100000")
    assert done.returncode == 0, done.stderr


def test_start_up_warns_once_about_old_prices(tmp_path, caplog) -> None:
    from tierroute.bootstrap import load

    config = tmp_path / "tierroute.yaml"
    config.write_text("providers: {anthropic: {api_key: k}}\n"
                      "models: [{id: claude-haiku-4-5, as_of: 2025-01-01}, {id: custom, provider: anthropic, "
                      "context_window: 1000, input_price: 1, output_price: 1}]\n"
                      "catalog: {max_price_age_days: 30}\nledger: {backend: none}\ndiscovery: false\n")
    with caplog.at_level("WARNING", logger="tierroute"):
        load(config, environ={})
    [record] = [r for r in caplog.records if "catalog price" in r.getMessage()]
    assert "1 catalog price(s) older than 30 days (claude-haiku-4-5)" in record.getMessage()  # undated: not here
