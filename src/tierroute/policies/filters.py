"""Hard constraints: drop the models that cannot serve a request at all, and say why."""

from __future__ import annotations

from collections.abc import Sequence

from .._exceptions import NoModelFits
from ..types import ModelSpec, RequestFeatures, StateSnapshot
from .base import expected_cost_usd


def rejection(features: RequestFeatures, model: ModelSpec, state: StateSnapshot) -> str | None:
    """Why ``model`` cannot serve this request, or None if it can."""
    needed = features.prompt_tokens + (features.max_tokens or 0)
    if needed > model.context_window:
        return f"context window {model.context_window} < {features.prompt_tokens} prompt + {features.max_tokens or 0} max tokens"
    if features.max_tokens is not None and features.max_tokens > model.max_output_tokens:
        return f"max output {model.max_output_tokens} < max_tokens {features.max_tokens}"
    caps = model.capabilities
    if features.needs_tools and "tools" not in caps:
        return "no tool calling"
    if features.needs_vision and "vision" not in caps:
        return "no image input"
    if features.needs_json and "json" not in caps:
        return "no JSON mode"
    if model.id in state.unavailable:
        return "unavailable (health)"
    if features.max_cost_usd is not None:
        cost = expected_cost_usd(features, model)
        if cost > features.max_cost_usd:
            return f"expected cost ${cost:.6f} above the request's ceiling ${features.max_cost_usd:.6f}"
    return None


def apply_filters(
    features: RequestFeatures, models: Sequence[ModelSpec], state: StateSnapshot
) -> list[ModelSpec]:
    """The models that can serve the request; :class:`NoModelFits` naming each rejection if none can."""
    kept: list[ModelSpec] = []
    reasons: list[str] = []
    for model in models:
        why = rejection(features, model, state)
        if why is None:
            kept.append(model)
        else:
            reasons.append(f"{model.id}: {why}")
    if not kept:
        if not models:
            raise NoModelFits(f"no models are configured for {features.requested_model!r}")
        raise NoModelFits(
            f"no model can serve this request (about {features.prompt_tokens} prompt tokens): " + "; ".join(reasons)
        )
    return kept
