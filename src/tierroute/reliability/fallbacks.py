"""The order in which models are tried for one request.

1. the chosen model (every one of its deployments, chosen among by the balancer);
2. a pinned chain if ``reliability.fallbacks`` names one for the chosen model, otherwise the rest of the
   decision's ranking: equivalent models that already passed the hard filters (context window,
   capabilities), in rank order;
3. if ``escalate_to_tier_above``, the models of the next tier up that pass the same filters, cheapest first.

A context-window error narrows what is left to models with a larger window, adding some from the same tier
and the tier above if none are left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .._exceptions import ConfigError
from ..catalog import Catalog
from ..policies.base import expected_cost_usd
from ..policies.filters import rejection
from ..types import EMPTY_STATE, Decision, ModelSpec, RequestFeatures
from .settings import ReliabilitySettings


def check_fallbacks(fallbacks: Mapping[str, Sequence[str]], catalog: Catalog) -> None:
    """Refuse, at start-up, pinned chains that name models the catalog cannot serve."""
    for model, chain in fallbacks.items():
        unknown = [m for m in (model, *chain) if m not in catalog.models]
        if unknown:
            raise ConfigError(f"reliability.fallbacks.{model}: not available (unknown model or provider not "
                              f"configured): {', '.join(unknown)}")


def _fits(features: RequestFeatures | None, models: Iterable[ModelSpec]) -> list[ModelSpec]:
    if features is None:
        return list(models)
    return [m for m in models if rejection(features, m, EMPTY_STATE) is None]


def _cheapest_first(features: RequestFeatures | None, models: list[ModelSpec]) -> list[ModelSpec]:
    if features is None:
        return models
    return sorted(models, key=lambda m: expected_cost_usd(features, m))


def _unique(models: Iterable[ModelSpec]) -> list[ModelSpec]:
    seen: set[str] = set()
    out = []
    for m in models:
        if m.id not in seen:
            seen.add(m.id)
            out.append(m)
    return out


def fallback_models(decision: Decision, catalog: Catalog, settings: ReliabilitySettings,
                    features: RequestFeatures | None) -> list[ModelSpec]:
    chosen = decision.chosen.model
    pinned = settings.fallbacks.get(chosen.id)
    if pinned is not None:
        rest = _fits(features, (catalog.models[m] for m in pinned if m in catalog.models))
    else:
        rest = [r.model for r in decision.ranked[1:]]
    if settings.escalate_to_tier_above:
        above = catalog.tier_above(chosen.tier)
        if above is not None:
            rest += _cheapest_first(features, _fits(features, catalog.tiers.get(above, ())))
    return _unique([chosen, *rest])


def wider_models(failed: ModelSpec, remaining: Sequence[ModelSpec], catalog: Catalog,
                 features: RequestFeatures | None) -> list[ModelSpec]:
    """What to try after ``failed`` said the prompt is too long: only models with a larger window."""
    wider = [m for m in remaining if m.context_window > failed.context_window]
    if wider:
        return wider
    pool = [*catalog.tiers.get(failed.tier or "", ())]
    above = catalog.tier_above(failed.tier)
    if above is not None:
        pool += catalog.tiers.get(above, ())
    pool = [m for m in pool if m.context_window > failed.context_window]
    return _cheapest_first(features, _unique(_fits(features, pool)))
