"""Routing policies (pure) and the factory that builds the configured one."""

from __future__ import annotations

from collections.abc import Sequence

from .._exceptions import ConfigError
from ..config import RouterSettings
from ..types import ModelSpec
from .base import DEFAULT_COMPLETION_TOKENS, Policy, expected_completion_tokens, expected_cost_usd
from .cheapest import CheapestPolicy
from .filters import apply_filters, rejection

POLICY_NAMES = ("cheapest", "learned")


def build_policy(settings: RouterSettings, models: Sequence[ModelSpec]) -> Policy:
    """The policy named by ``router.policy``; its ``router.options`` are validated by the policy itself."""
    if settings.policy == "cheapest":
        if settings.options:
            raise ConfigError(f"router.options: the cheapest policy takes no options, got {sorted(settings.options)}")
        return CheapestPolicy()
    if settings.policy == "learned":
        from .learned import build_learned_policy

        return build_learned_policy(dict(settings.options), models)
    raise ConfigError(f"router.policy: unknown policy {settings.policy!r}; expected one of: {', '.join(POLICY_NAMES)}")


__all__ = [
    "DEFAULT_COMPLETION_TOKENS", "POLICY_NAMES", "CheapestPolicy", "Policy", "apply_filters", "build_policy",
    "expected_completion_tokens", "expected_cost_usd", "rejection",
]
