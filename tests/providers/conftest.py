"""A hostile upstream and gateways in front of it: one model per (wire format, HTTP client) pair."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tierroute.config import Settings, parse_settings

from ..fakes.hostile_upstream import HostileUpstream

HOSTILE_KEY = "sk-proj-H0stileKey0123456789abcdefghijklmnopqrstuvWXYZ"
GATEWAY_KEY = "sk-gw-Redact0123456789abcdef"
# model id -> (wire format, http client)
MODELS = {"o-fast": ("openai", "fast"), "o-aio": ("openai", "aiohttp"),
          "a-fast": ("anthropic", "fast"), "a-aio": ("anthropic", "aiohttp")}
OPENAI_MODELS = ["o-fast", "o-aio"]
ANTHROPIC_MODELS = ["a-fast", "a-aio"]


def hostile_config(upstream_url: str, ledger_path: str, *, good_url: str | None = None,
                   provider_options: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """A config document: each of :data:`MODELS` on its own provider, all pointing at the hostile upstream,
    one attempt per request (no retries, a breaker that never opens) so each test sees exactly what one
    broken answer does. With ``good_url``, model ``fo`` is hostile first and falls back to ``good`` there."""
    providers: dict[str, Any] = {}
    models: list[dict[str, Any]] = []
    for model, (kind, client) in MODELS.items():
        api_base = f"{upstream_url}/v1" if kind == "openai" else upstream_url
        providers[f"p-{model}"] = {"kind": kind, "api_base": api_base, "api_key": HOSTILE_KEY, "http_client": client,
                                   "first_token_timeout_seconds": 10, "total_timeout_seconds": 30,
                                   **(provider_options or {})}
        models.append({"id": model, "provider": f"p-{model}", "upstream": "h", "context_window": 32000,
                       "input_price": 1.0, "output_price": 2.0, "tier": "general"})
    reliability: dict[str, Any] = {"retry": {"retries": 0}, "breaker": {"consecutive_failures": 1000}}
    if good_url is not None:
        providers["good"] = {"kind": "openai", "api_base": f"{good_url}/v1", "api_key": "sk-upstream"}
        models += [{"id": "fo", "provider": "p-o-fast", "upstream": "h", "context_window": 32000,
                    "input_price": 1.0, "output_price": 2.0, "tier": "general"},
                   {"id": "good", "provider": "good", "upstream": "fake-good", "context_window": 32000,
                    "input_price": 1.0, "output_price": 2.0, "tier": "general"}]
        reliability["fallbacks"] = {"fo": ["good"]}
    raw: dict[str, Any] = {"providers": providers, "models": models, "tiers": [{"name": "general"}],
                           "router": {"policy": "cheapest"},
                           "ledger": {"path": ledger_path, "flush_interval_seconds": 0.02},
                           "reliability": reliability, **overrides}
    return raw


def hostile_settings(upstream_url: str, tmp_path: Path, **kwargs: Any) -> Settings:
    return parse_settings(hostile_config(upstream_url, str(tmp_path / "ledger.db"), **kwargs), source="test", environ={})


@pytest.fixture(scope="session")
def hostile() -> HostileUpstream:
    return HostileUpstream(HOSTILE_KEY).start()


def ledger_rows(gw: Any) -> dict[str, list[Any]]:
    gw.router.ledger.flush()
    rows: dict[str, list[Any]] = defaultdict(list)
    for entry in gw.router.ledger.entries():
        rows[entry.request_id].append(entry)
    return rows
