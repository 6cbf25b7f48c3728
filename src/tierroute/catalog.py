"""The model catalog: which models exist, what they cost, what they can do, and where they are served.

Built once at start-up from the built-in ``catalog.yaml`` plus the configuration's overrides, then read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import yaml

from ._exceptions import ConfigError, InvalidRequest, ModelNotFound
from .config import ModelSettings, Settings
from .priors import estimated_prior
from .types import Deployment, ModelSpec

AUTO = "auto"
LOCAL_CONTEXT_WINDOW = 8192


@cache
def builtin_models() -> tuple[ModelSpec, ...]:
    """The catalog shipped with tierroute (parsed once per process; immutable)."""
    raw = yaml.safe_load(resources.files("tierroute").joinpath("catalog.yaml").read_text(encoding="utf-8"))
    return tuple(_spec_from_mapping(entry) for entry in raw["models"])


@cache
def builtin_tier_order() -> tuple[str, ...]:
    raw = yaml.safe_load(resources.files("tierroute").joinpath("catalog.yaml").read_text(encoding="utf-8"))
    return tuple(raw["tiers"])


def _spec_from_mapping(entry: Mapping[str, Any]) -> ModelSpec:
    return ModelSpec(
        id=entry["id"],
        provider=entry["provider"],
        upstream=entry.get("upstream") or entry["id"],
        context_window=int(entry["context_window"]),
        max_output_tokens=int(entry.get("max_output_tokens") or entry["context_window"]),
        input_price=float(entry["input_price"]),
        output_price=float(entry["output_price"]),
        capabilities=frozenset(entry.get("capabilities") or ()),
        tier=entry.get("tier"),
        quality=entry.get("quality"),
        source=entry.get("source"),
        as_of=_date_text(entry.get("as_of")),
        mode=entry.get("mode") or "chat",
        quality_source=entry.get("quality_source"),
        quality_as_of=_date_text(entry.get("quality_as_of")),
        cached_input_price=_price(entry.get("cached_input_price")),
        cache_write_price=_price(entry.get("cache_write_price")),
        long_context_threshold=int(entry["long_context_threshold"]) if entry.get("long_context_threshold") else None,
        long_context_input_price=_price(entry.get("long_context_input_price")),
        long_context_output_price=_price(entry.get("long_context_output_price")),
    )


def _price(value: Any) -> float | None:
    return None if value is None else float(value)


def _date_text(value: Any) -> str | None:
    """YAML reads an unquoted 2026-11-20 as a date: keep every as_of a string."""
    return None if value is None else str(value)


def with_estimated_prior(spec: ModelSpec) -> ModelSpec:
    """``spec`` with a conservative, marked prior when it has none (see ``priors.py``); unchanged otherwise."""
    if spec.quality is not None or spec.mode != "chat":
        return spec
    prior, how = estimated_prior(spec.id, spec.upstream)
    return replace(spec, quality=prior, quality_source=how, quality_as_of=None, quality_estimated=True)


def stale_prices(models: Iterable[ModelSpec], *, max_age_days: int, today: date) -> list[tuple[ModelSpec, str]]:
    """``(model, why)`` for every priced model whose ``as_of`` is missing, unreadable or older than ``max_age_days``.
    Free models (local ones) have no price to go stale."""
    stale = []
    for m in models:
        if m.input_price == 0 and m.output_price == 0:
            continue
        if not m.as_of:
            stale.append((m, "no as_of date"))
            continue
        try:
            read = date.fromisoformat(m.as_of[:10])
        except ValueError:
            stale.append((m, f"as_of {m.as_of!r} is not a YYYY-MM-DD date"))
            continue
        age = (today - read).days
        if age > max_age_days:
            stale.append((m, f"price from {m.as_of} is {age} days old (more than {max_age_days})"))
    return stale


def _merge(base: ModelSpec | None, override: ModelSettings, index: int) -> ModelSpec:
    fields = {k: v for k, v in override.model_dump().items() if v is not None}
    if "capabilities" in fields:
        fields["capabilities"] = frozenset(fields["capabilities"])
    if base is not None:
        if "upstream" not in fields and "provider" in fields and fields["provider"] != base.provider:
            fields["upstream"] = base.upstream
        return replace(base, **fields)
    missing = [f for f in ("provider", "context_window", "input_price", "output_price") if f not in fields]
    if missing:
        raise ConfigError(f"models[{index}] ({override.id!r}) is not a built-in model, so it needs: {', '.join(missing)}")
    fields.setdefault("upstream", override.id)
    fields.setdefault("max_output_tokens", fields["context_window"])
    return ModelSpec(**fields)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The models this gateway can route to (those whose provider is configured), their tiers and deployments."""

    models: Mapping[str, ModelSpec]
    tiers: Mapping[str, tuple[ModelSpec, ...]]
    tier_order: tuple[str, ...]
    deployments: Mapping[str, tuple[Deployment, ...]]
    default_tier: str

    @classmethod
    def build(cls, settings: Settings, extra_models: Iterable[ModelSpec] = ()) -> Catalog:
        specs: dict[str, ModelSpec] = {m.id: m for m in builtin_models()}
        for m in extra_models:
            specs[m.id] = m
        for i, override in enumerate(settings.models):
            specs[override.id] = _merge(specs.get(override.id), override, i)
        available = {mid: with_estimated_prior(m) for mid, m in specs.items() if m.provider in settings.providers}

        deployments: dict[str, list[Deployment]] = {
            mid: [Deployment(id=f"{m.provider}/{m.upstream}", model=mid, provider=m.provider, upstream=m.upstream)]
            for mid, m in available.items()
        }
        for i, dep in enumerate(settings.deployments):
            if dep.model not in specs:
                raise ConfigError(f"deployments[{i}].model: unknown model {dep.model!r}")
            if dep.model not in available:
                available[dep.model] = with_estimated_prior(specs[dep.model])
                deployments[dep.model] = []
            upstream = dep.upstream or specs[dep.model].upstream
            deployments[dep.model].append(Deployment(
                id=dep.id or f"{dep.provider}/{upstream}", model=dep.model, provider=dep.provider,
                upstream=upstream, weight=dep.weight))

        if settings.tiers is not None:
            order = tuple(t.name for t in settings.tiers)
            explicit = {t.name: t.models for t in settings.tiers}
        else:
            order = builtin_tier_order()
            explicit = {}
        tiers: dict[str, tuple[ModelSpec, ...]] = {}
        for name in order:
            names = explicit.get(name)
            if names is not None:
                unknown = [n for n in names if n not in available]
                if unknown:
                    raise ConfigError(f"tiers.{name}.models: not available (unknown model or provider not configured): {', '.join(unknown)}")
                tiers[name] = tuple(available[n] for n in names)
            else:
                tiers[name] = tuple(m for m in available.values() if m.tier == name)
        # Models with a tier the order does not name still route as themselves and under "auto".
        default_tier = settings.router.default_tier
        if settings.tiers is not None and default_tier not in tiers:
            raise ConfigError(f"router.default_tier: {default_tier!r} is not one of the tiers: {', '.join(order)}")
        return cls(
            models=available,
            tiers=tiers,
            tier_order=order,
            deployments={k: tuple(v) for k, v in deployments.items()},
            default_tier=default_tier,
        )

    def resolve(self, requested: str) -> tuple[tuple[ModelSpec, ...], str]:
        """Candidates for a requested model name and how it was read: ``auto``, a tier, or one model."""
        if requested == AUTO:
            tier = self.tiers.get(self.default_tier)
            if tier:
                return tier, f"tier {self.default_tier}"
            return tuple(m for m in self.models.values() if m.mode == "chat"), "all models"
        tier = self.tiers.get(requested)
        if tier is not None:
            if not tier:
                raise ModelNotFound(f"tier {requested!r} has no available models (configure a provider for one of them)", param="model")
            return tier, f"tier {requested}"
        model = self.models.get(requested)
        if model is not None:
            if model.mode != "chat":
                raise InvalidRequest(f"model {requested!r} is an embedding model; send it to /v1/embeddings", param="model")
            return (model,), "requested"
        raise ModelNotFound(
            f"model {requested!r} not found; use 'auto', a tier ({', '.join(self.tier_order)}) or one of: "
            + ", ".join(sorted(self.models)[:20]) + (" ..." if len(self.models) > 20 else ""),
            param="model",
        )

    def resolve_embedding(self, requested: str | None, default: str | None) -> ModelSpec:
        """The embedding model for an embeddings request: the one named, else the configured default."""
        name = default if requested in (None, AUTO) else requested
        if name is None:
            choices = sorted(m.id for m in self.models.values() if m.mode == "embedding")
            raise InvalidRequest("model: name an embedding model (" + (", ".join(choices) or "none is configured")
                                 + "), or set router.default_embedding_model", param="model")
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(f"embedding model {name!r} not found (unknown model or provider not configured)",
                                param="model")
        if model.mode != "embedding":
            raise InvalidRequest(f"model {name!r} is a chat model, not an embedding model", param="model")
        return model

    def tier_above(self, tier: str | None) -> str | None:
        if tier is None or tier not in self.tier_order:
            return None
        i = self.tier_order.index(tier)
        return self.tier_order[i - 1] if i > 0 else None

    def strongest(self, models: Sequence[ModelSpec] | None = None) -> ModelSpec | None:
        """The reference model for savings: highest quality prior, then highest price."""
        pool = list(models if models is not None else (m for m in self.models.values() if m.mode == "chat"))
        if not pool:
            return None
        return max(pool, key=lambda m: (m.quality or 0.0, m.output_price + m.input_price))
