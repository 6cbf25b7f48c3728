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
    # Where ``quality`` comes from and when it was read; ``quality_estimated``: no published standing, the
    # prior was estimated from the name (parameter count) or set low, so the router keeps it to easy prompts.
    quality_source: str | None = None
    quality_as_of: str | None = None
    quality_estimated: bool = False
    # Prompt-cache prices (USD per million tokens): reads of a cached prefix and writes that create one.
    # None: billed at ``input_price``.
    cached_input_price: float | None = None
    cache_write_price: float | None = None
    # Above ``long_context_threshold`` prompt tokens the whole request is billed at the long-context prices.
    long_context_threshold: int | None = None
    long_context_input_price: float | None = None
    long_context_output_price: float | None = None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
                 cache_write_tokens: int = 0) -> float:
        """USD for one request. ``cached_tokens`` and ``cache_write_tokens`` are parts of ``prompt_tokens``
        (clamped to it, so a bad report never charges more than a full prompt at the dearest rate)."""
        input_price, output_price = self.input_price, self.output_price
        threshold = self.long_context_threshold
        if threshold is not None and prompt_tokens > threshold:
            input_price = self.long_context_input_price or input_price
            output_price = self.long_context_output_price or output_price
        if not (cached_tokens or cache_write_tokens):
            return (prompt_tokens * input_price + completion_tokens * output_price) / 1_000_000
        cached = min(max(cached_tokens, 0), prompt_tokens)
        written = min(max(cache_write_tokens, 0), prompt_tokens - cached)
        read_price = input_price if self.cached_input_price is None else self.cached_input_price
        write_price = input_price if self.cache_write_price is None else self.cache_write_price
        return ((prompt_tokens - cached - written) * input_price + cached * read_price + written * write_price
                + completion_tokens * output_price) / 1_000_000

    def usage_cost_usd(self, usage: Usage) -> float:
        return self.cost_usd(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                             usage.cache_write_tokens)


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
    # Parts of ``prompt_tokens`` read from / written to the provider's prompt cache (priced apart).
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, data: Mapping[str, Any]) -> Usage:
        """An OpenAI-shaped ``usage`` object: cache reads in ``prompt_tokens_details.cached_tokens``; cache writes
        (Anthropic's, which the translation carries) in ``cache_creation_input_tokens``."""
        details = data.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else 0
        written = data.get("cache_creation_input_tokens")
        return cls(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0),
                   cached_tokens=cached if type(cached) is int and cached > 0 else 0,  # noqa: E721
                   cache_write_tokens=written if type(written) is int and written > 0 else 0)  # noqa: E721
