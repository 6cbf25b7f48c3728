"""The simplest sound policy: the cheapest model that passed the hard filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..types import Decision, ModelSpec, Ranked, RequestFeatures, StateSnapshot
from .base import expected_cost_usd


@dataclass(frozen=True, slots=True)
class CheapestPolicy:
    """Rank by expected cost, cheapest first; ties keep catalog order (stronger first)."""

    name: str = "cheapest"

    def decide(self, features: RequestFeatures, candidates: Sequence[ModelSpec], state: StateSnapshot) -> Decision:
        ranked = sorted(
            (Ranked(model=m, expected_cost_usd=expected_cost_usd(features, m), predicted_quality=m.quality) for m in candidates),
            key=lambda r: r.expected_cost_usd,
        )
        return Decision(ranked=tuple(ranked), reason=f"cheapest of {len(ranked)} eligible", policy=self.name)
