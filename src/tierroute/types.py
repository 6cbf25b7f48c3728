"""Value types shared across the package: model specs, request features, routing decisions.

All are frozen, slotted dataclasses: cheap to build on the hot path and safe to share between tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSONDict = dict[str, Any]

CAPABILITIES = frozenset({"tools", "vision", "json", "reasoning"})


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model in the catalog. Prices are USD per million tokens."""

    id: str
    provider: str
    upstream: str
    context_window: int
    max_output_tokens: int
    input_price: float
    output_price: float
    capabilities: frozenset[str] = frozenset()
    tier: str | None = None
    quality: float | None = None
    source: str | None = None
    as_of: str | None = None
    # "chat" models answer /v1/chat/completions (and the dialects translated to it) and are routed;
    # "embedding" models answer /v1/embeddings only, and only when asked for by name or configured as default.
    mode: str = "chat"

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_price + completion_tokens * self.output_price) / 1_000_000


@dataclass(frozen=True, slots=True)
class Deployment:
    """A place a model is served: a provider instance plus the name the provider knows it by."""

    id: str
    model: str
    provider: str
    upstream: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """What routing needs to know about a request, computed once per request.

    ``text`` is the part of the conversation that drives the decision (see ``features.routing_text``).
    """

    requested_model: str
    prompt_tokens: int
    max_tokens: int | None
    text: str
    n_messages: int = 1
    needs_tools: bool = False
    needs_vision: bool = False
    needs_json: bool = False
    stream: bool = False
    caller: str | None = None
    user: str | None = None
    tags: tuple[str, ...] = ()
    max_cost_usd: float | None = None
    timeout_seconds: float | None = None
    client_request_id: str | None = None
    # The learned policy's sentence embedding of ``text`` (a float32 array; empty when its encoder failed),
    # computed by the router off the event loop before ``decide``; None when the policy has no encoder.
    embedding: Any = None
    # The prompt's pieces for exact counting per model family (``tokens.PromptTokens``); None when the
    # features were built without a request body (replays, tests). Not part of equality.
    prompt: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """What the live system knows when routing: read-only, so policies stay pure.

    ``budget_pressure`` is the highest fraction of any applicable budget already used (0-1);
    ``unavailable`` are deployments or models currently skipped by health checks.
    """

    budget_pressure: float = 0.0
    budget_scope: str | None = None
    unavailable: frozenset[str] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)


EMPTY_STATE = StateSnapshot()


@dataclass(frozen=True, slots=True)
class Ranked:
    """One candidate in a decision, best first."""

    model: ModelSpec
    expected_cost_usd: float
    predicted_quality: float | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's answer: candidates best first, a short reason, and details for ``route`` output."""

    ranked: tuple[Ranked, ...]
    reason: str
    policy: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> Ranked:
        return self.ranked[0]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # True when tierroute counted or estimated these figures because the server sent no usage.
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
