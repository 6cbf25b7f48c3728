"""Hard constraints: drop the models that cannot serve a request at all, and say why."""

from __future__ import annotations

from collections.abc import Sequence

from .._exceptions import NoModelFits
from ..tokens import family_of
from ..types import ModelSpec, RequestFeatures, StateSnapshot
from .base import expected_cost_usd


def context_rejection(features: RequestFeatures, model: ModelSpec) -> str | None:
    """Why the prompt plus ``max_tokens`` cannot fit ``model``'s context window, or None.

    Fast paths: a prompt's UTF-8 size bounds its token count, and a calibrated estimate with a margin above its
    worst measured underestimate settles most of the rest, so most requests need no tokenizer. Near the limit
    (within the margin) the prompt is counted with the model's tokenizer where one is installed;
    otherwise with a calibrated estimate and a safety margin, which may refuse a routed request (another
    model is chosen) but never one naming this model: the server's own count decides that.
    """
    completion = features.max_tokens or 0
    room = model.context_window - completion
    prompt = features.prompt
    if prompt is None:
        if features.prompt_tokens <= room:
            return None
        counted_tokens, how = features.prompt_tokens, "estimated"
    else:
        if prompt.surely_within(room):
            return None
        family = family_of(model.upstream, model.id)
        if prompt.likely_within(room, family):
            return None
        counted = prompt.count_for(family, with_margin=True)
        if counted.tokens <= room or (not counted.exact and features.requested_model == model.id):
            return None
        counted_tokens, how = counted.tokens, "counted" if counted.exact else "estimated"
    return f"context window {model.context_window} < {counted_tokens} prompt ({how}) + {completion} max tokens"


def rejection(features: RequestFeatures, model: ModelSpec, state: StateSnapshot) -> str | None:
    """Why ``model`` cannot serve this request, or None if it can."""
    too_long = context_rejection(features, model)
    if too_long is not None:
        return too_long
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
    return screen(features, models, state)[0]


def screen(
    features: RequestFeatures, models: Sequence[ModelSpec], state: StateSnapshot
) -> tuple[list[ModelSpec], tuple[tuple[str, str], ...]]:
    """The models that can serve the request and ``(model id, why)`` for each that cannot, in one pass;
    :class:`NoModelFits` naming each rejection if none can."""
    kept: list[ModelSpec] = []
    rejected: list[tuple[str, str]] = []
    for model in models:
        why = rejection(features, model, state)
        if why is None:
            kept.append(model)
        else:
            rejected.append((model.id, why))
    if not kept:
        if not models:
            raise NoModelFits(f"no models are configured for {features.requested_model!r}")
        raise NoModelFits(
            f"no model can serve this request (about {features.prompt_tokens} prompt tokens): "
            + "; ".join(f"{model_id}: {why}" for model_id, why in rejected)
        )
    return kept, tuple(rejected)
