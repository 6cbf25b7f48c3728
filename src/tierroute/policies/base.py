"""The routing-policy interface.

A policy is pure: given the request's features, the candidate models that passed the hard filters, and a
read-only snapshot of live state, it returns the candidates ranked best first with a reason. It does no I/O
and keeps no per-request state, so replaying recorded traffic through it reproduces production decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..types import Decision, ModelSpec, RequestFeatures, StateSnapshot

# Completion length assumed when the request sets no max_tokens, for cost estimates only.
DEFAULT_COMPLETION_TOKENS = 512


def expected_completion_tokens(features: RequestFeatures, model: ModelSpec) -> int:
    if features.max_tokens is not None:
        return min(features.max_tokens, model.max_output_tokens)
    return min(DEFAULT_COMPLETION_TOKENS, model.max_output_tokens)


def expected_cost_usd(features: RequestFeatures, model: ModelSpec) -> float:
    return model.cost_usd(features.prompt_tokens, expected_completion_tokens(features, model))


@runtime_checkable
class Policy(Protocol):
    """Ranks candidate models for one request."""

    name: str

    def decide(
        self, features: RequestFeatures, candidates: Sequence[ModelSpec], state: StateSnapshot
    ) -> Decision:
        """Return ``candidates`` ranked best first. ``candidates`` is never empty."""
        ...
