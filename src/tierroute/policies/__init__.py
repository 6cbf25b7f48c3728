"""Routing policies (pure) and the factory that builds the configured one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._exceptions import ConfigError
from ..types import ModelSpec
from .base import DEFAULT_COMPLETION_TOKENS, Policy, expected_completion_tokens, expected_cost_usd
from .cheapest import CheapestPolicy
from .filters import apply_filters, rejection, screen
from .intents import IntentClassifier, IntentSettings
from .learned import LearnedPolicy, build_learned_policy

POLICY_NAMES = ("cheapest", "learned")


def build_policy(name: str, options: Mapping[str, Any], models: Sequence[ModelSpec]) -> Policy:
    """The policy called ``name`` (``router.policy``); it validates its own ``options`` (``router.options``)."""
    if name == "cheapest":
        if options:
            raise ConfigError(f"router.options: the cheapest policy takes no options, got {sorted(options)}")
        return CheapestPolicy()
    if name == "learned":
        return build_learned_policy(dict(options), models)
    raise ConfigError(f"router.policy: unknown policy {name!r}; expected one of: {', '.join(POLICY_NAMES)}")


def build_router_policy(router: Any, models: Sequence[ModelSpec]) -> Policy:
    """The policy ``router:`` configures: the A/B experiment between arms when ``router.experiment`` is set,
    else ``router.policy`` with ``router.options``."""
    if router.experiment is not None:
        from .experiment import build_experiment

        return build_experiment(router.experiment, models, build=build_policy, names=POLICY_NAMES)
    return build_policy(router.policy, router.options, models)


__all__ = [
    "DEFAULT_COMPLETION_TOKENS", "POLICY_NAMES", "CheapestPolicy", "IntentClassifier", "IntentSettings", "LearnedPolicy",
    "Policy", "apply_filters", "screen", "build_learned_policy", "build_policy", "build_router_policy", "expected_completion_tokens", "expected_cost_usd",
    "rejection",
]
