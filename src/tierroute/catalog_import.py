"""Catalog entries from LiteLLM's model price list, with provenance, for ``tierroute catalog import``.

LiteLLM keeps a machine-readable price list (``model_prices_and_context_window_backup.json``, shipped inside the
``litellm`` package): one object per model, prices in USD per token. tierroute does not depend on litellm; it
reads that file from a path the user gives, or from an installed litellm when there is one, and turns each
entry of a provider tierroute knows into a catalog entry (USD per million tokens) that says where it came from:
``source`` names the file, its LiteLLM version when known and the provider page LiteLLM cites; ``as_of`` is the
date given, else the day the file was imported. Quality priors and tiers are not in the file: imported entries
override only prices, limits and capabilities, so a built-in model keeps its prior and tier.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any

from ._exceptions import ConfigError

FILE_NAME = "model_prices_and_context_window_backup.json"
# LiteLLM's provider name -> the tierroute provider preset serving the same API.
PROVIDERS: Mapping[str, str] = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "mistral": "mistral", "groq": "groq",
    "together_ai": "together", "deepseek": "deepseek", "openrouter": "openrouter",
}
# LiteLLM capability flags -> catalog capabilities.
_CAPABILITIES = {"supports_function_calling": "tools", "supports_vision": "vision",
                 "supports_response_schema": "json", "supports_reasoning": "reasoning"}
_PER_MILLION = 1_000_000
_LONG_CONTEXT_SUFFIX = "_above_200k_tokens"


@dataclass(frozen=True, slots=True)
class PriceList:
    """A LiteLLM price file, decoded, with what is known of where it came from."""

    entries: Mapping[str, Mapping[str, Any]]
    path: str
    version: str | None

    @property
    def label(self) -> str:
        return f"LiteLLM {self.version} price list" if self.version else f"LiteLLM price list {Path(self.path).name}"


def installed_price_file() -> tuple[Path, str] | None:
    """The price file of an installed litellm and its version (found without importing litellm), else None."""
    spec = util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / FILE_NAME
        if path.is_file():
            return path, metadata.version("litellm")
    return None


def read_price_list(path: str | Path | None = None, *, version: str | None = None) -> PriceList:
    """Decode a LiteLLM price file: ``path``, else the installed litellm's. Errors name the file."""
    if path is None:
        found = installed_price_file()
        if found is None:
            raise ConfigError(f"no price file given and litellm is not installed: pass --from PATH to a {FILE_NAME} "
                              "(it ships inside the litellm package)")
        path, version = found[0], version or found[1]
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: price file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON price list ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object of models, got {type(raw).__name__}")
    entries = {k: v for k, v in raw.items() if isinstance(v, dict) and k != "sample_spec"}
    return PriceList(entries=entries, path=str(path), version=version)


def catalog_id(key: str, litellm_provider: str) -> str:
    """The catalog id for a LiteLLM key: without LiteLLM's own provider prefix (``gemini/gemini-2.5-pro``)."""
    prefix = litellm_provider + "/"
    return key[len(prefix):] if key.startswith(prefix) else key


def _per_million(entry: Mapping[str, Any], field: str) -> float | None:
    value = entry.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return round(float(value) * _PER_MILLION, 6)


def to_catalog_entry(key: str, entry: Mapping[str, Any], prices: PriceList, as_of: str) -> dict[str, Any] | None:
    """One catalog entry (the shape of a ``models:`` item) for a LiteLLM entry, or None when tierroute cannot
    serve it (unknown provider, not a chat or embedding model, no token prices)."""
    provider = PROVIDERS.get(str(entry.get("litellm_provider")))
    mode = entry.get("mode")
    if provider is None or mode not in ("chat", "embedding"):
        return None
    input_price = _per_million(entry, "input_cost_per_token")
    output_price = _per_million(entry, "output_cost_per_token")
    if input_price is None:
        return None
    window = entry.get("max_input_tokens") or entry.get("max_tokens")
    if not isinstance(window, int) or window <= 0:
        return None
    out: dict[str, Any] = {"id": catalog_id(key, str(entry["litellm_provider"])), "provider": provider}
    out["upstream"] = out["id"]
    out["context_window"] = window
    max_output = entry.get("max_output_tokens")
    out["max_output_tokens"] = max_output if isinstance(max_output, int) and max_output > 0 else (
        1 if mode == "embedding" else window)
    out["input_price"] = input_price
    out["output_price"] = output_price or 0.0
    for field, name in (("cache_read_input_token_cost", "cached_input_price"),
                        ("cache_creation_input_token_cost", "cache_write_price")):
        value = _per_million(entry, field)
        if value:  # LiteLLM writes 0.0 where a provider has no such price
            out[name] = value
    long_input = _per_million(entry, "input_cost_per_token" + _LONG_CONTEXT_SUFFIX)
    if long_input:
        out["long_context_threshold"] = 200_000
        out["long_context_input_price"] = long_input
        long_output = _per_million(entry, "output_cost_per_token" + _LONG_CONTEXT_SUFFIX)
        if long_output:
            out["long_context_output_price"] = long_output
    if mode == "embedding":
        out["mode"] = "embedding"
    else:
        out["capabilities"] = sorted(c for flag, c in _CAPABILITIES.items() if entry.get(flag) is True)
    cited = entry.get("source")
    out["source"] = f"{prices.label}" + (f", citing {cited}" if isinstance(cited, str) and cited else "")
    out["as_of"] = as_of
    return out


def import_entries(prices: PriceList, *, as_of: str, only: Iterable[str] | None = None,
                   providers: Iterable[str] | None = None, include_deprecated: bool = False,
                   today: str | None = None) -> list[dict[str, Any]]:
    """Catalog entries for ``only`` (catalog ids, e.g. the built-in ones; None: every model tierroute can
    serve), of ``providers`` when given, skipping models LiteLLM marks deprecated before ``today``."""
    wanted = set(only) if only is not None else None
    allowed = set(providers) if providers is not None else None
    out: dict[str, dict[str, Any]] = {}
    for key, entry in prices.entries.items():
        converted = to_catalog_entry(key, entry, prices, as_of)
        if converted is None:
            continue
        if wanted is not None and converted["id"] not in wanted:
            continue
        if allowed is not None and converted["provider"] not in allowed:
            continue
        deprecated = entry.get("deprecation_date")
        if not include_deprecated and today and isinstance(deprecated, str) and deprecated[:10] <= today:
            continue
        out.setdefault(converted["id"], converted)  # the first of duplicate keys (LiteLLM lists some twice)
    return sorted(out.values(), key=lambda e: (e["provider"], e["id"]))
