"""Settings for budgets, rate limits, runaway protection and the shared state store (``limits:``).

Every limit is a rule over a *scope* (who or what is counted) and a *window* (how long a count lives)::

    limits:
      state: {backend: redis, url: "redis://127.0.0.1:6379/0", on_error: closed}
      budgets:
        - {scope: caller, window: day, usd: 20}          # each gateway key: $20 a day
        - {scope: team, match: research, window: month, usd: 500, tokens: 50000000}
      rate_limits:
        - {scope: caller, requests_per_minute: 120, tokens_per_minute: 200000}
      deployments:
        openai/gpt-4o-mini: {requests_per_minute: 500, tokens_per_minute: 2000000}
      runaway: {enabled: true, max_repeats: 5, window_seconds: 60, action: refuse}
      users: {"${ALICE_KEY}": alice}                     # identities bound to gateway keys
      teams: {"${ALICE_KEY}": research}

See docs/cost-control.md for what each scope means and how windows roll over.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scope = Literal["global", "caller", "user", "team", "project", "tag", "model", "provider"]
Window = Literal["minute", "hour", "day", "month", "total"]

# Scopes known before routing (so they can raise budget pressure); model and provider are known only after.
REQUEST_SCOPES: frozenset[str] = frozenset({"global", "caller", "user", "team", "project", "tag"})

DEFAULT_COMPLETION_TOKENS = 512
DEFAULT_PRESSURE_THRESHOLD = 0.8
DEFAULT_RESERVATION_TTL_SECONDS = 900.0
DEFAULT_STATE_TIMEOUT_SECONDS = 0.25


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetRule(_Frozen):
    """A spend ceiling. ``match: "*"`` gives every value of the scope its own budget."""

    scope: Scope = Field(description="what is counted: global, caller (gateway key), user (the body's user), team, "
                                     "project, tag, model or provider")
    match: str = Field(default="*", description="the one value limited (a key may be written as ${ENV}); \"*\": "
                                                "every value gets its own budget")
    window: Window = Field(default="day", description="minute, hour, day (UTC-aligned), month, or total (never "
                                                      "resets)")
    usd: float | None = Field(default=None, gt=0, description="spend ceiling in USD per window")
    tokens: int | None = Field(default=None, gt=0, description="token ceiling per window")

    @model_validator(mode="after")
    def _has_a_limit(self) -> BudgetRule:
        if self.usd is None and self.tokens is None:
            raise ValueError("a budget needs usd, tokens or both")
        return self


class RateLimitRule(_Frozen):
    """Requests and tokens per minute for a scope (fixed, clock-aligned minutes)."""

    scope: Scope = Field(default="caller", description="what is counted (as for budgets)")
    match: str = Field(default="*", description="the one value limited; \"*\": every value on its own")
    requests_per_minute: int | None = Field(default=None, gt=0, description="requests per clock-aligned minute")
    tokens_per_minute: int | None = Field(default=None, gt=0, description="tokens per clock-aligned minute")

    @model_validator(mode="after")
    def _has_a_limit(self) -> RateLimitRule:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("a rate limit needs requests_per_minute, tokens_per_minute or both")
        return self


class DeploymentLimit(_Frozen):
    """An upstream's own limits, kept below so the gateway spreads load before the provider answers 429."""

    requests_per_minute: int | None = Field(default=None, gt=0, description="the deployment's requests per minute")
    tokens_per_minute: int | None = Field(default=None, gt=0, description="the deployment's tokens per minute")


class RunawaySettings(_Frozen):
    """Stop a client that sends the same (or nearly the same) conversation over and over."""

    enabled: bool = Field(default=False, description="turn runaway protection on")
    max_repeats: int = Field(default=10, ge=1, description="repeats allowed in the window; the next one is acted on")
    window_seconds: float = Field(default=60.0, gt=0, description="sliding window the repeats are counted over")
    action: Literal["refuse", "cheapest"] = Field(default="refuse", description="refuse (429) or answer with the "
                                                                                "cheapest model")
    last_messages: int = Field(default=3, ge=1, description="how many trailing messages are compared")
    near_identical: bool = Field(default=True, description="ignore case, whitespace and numbers when comparing")


class StateSettings(_Frozen):
    """Where counters live. ``memory`` is per process; ``redis`` is shared by every replica."""

    backend: Literal["memory", "redis"] = Field(default="memory", description="memory (one process) or redis "
                                                                             "(shared by every replica)")
    url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis URL")
    prefix: str = Field(default="tierroute", description="key prefix, also the Redis Cluster hash tag")
    timeout_seconds: float = Field(default=DEFAULT_STATE_TIMEOUT_SECONDS, gt=0,
                                   description="limit for every Redis operation")
    connect_timeout_seconds: float = Field(default=1.0, gt=0, description="limit for connecting to Redis")
    max_connections: int = Field(default=16, ge=1, description="Redis connections per process")
    on_error: Literal["closed", "open"] = Field(
        default="closed", description="Redis unreachable: closed refuses with 503, open enforces locally")
    retry_after_seconds: float = Field(default=5.0, gt=0, description="with on_error open, how often Redis is "
                                                                      "retried")
    reservation_ttl_seconds: float = Field(default=DEFAULT_RESERVATION_TTL_SECONDS, gt=0,
                                           description="a killed replica's reservations are freed after this; "
                                                       "longer than your longest request")


class LimitsSettings(_Frozen):
    state: StateSettings = Field(default_factory=StateSettings, description="where the counters live")
    budgets: list[BudgetRule] = Field(default_factory=list, description="spend and token ceilings")
    rate_limits: list[RateLimitRule] = Field(default_factory=list, description="requests and tokens per minute")
    deployments: dict[str, DeploymentLimit] = Field(default_factory=dict, description="upstream limits, keyed by "
                                                                                      "deployment id")
    runaway: RunawaySettings = Field(default_factory=RunawaySettings, description="repeated-request protection")
    pressure_threshold: float = Field(default=DEFAULT_PRESSURE_THRESHOLD, gt=0, le=1,
                                      description="budget share used at which auto/tier requests go to the "
                                                  "cheapest eligible model first")
    pressure_refresh_seconds: float = Field(default=1.0, ge=0, description="how stale the pressure reading may "
                                                                           "be (admission is always exact)")
    default_completion_tokens: int = Field(default=DEFAULT_COMPLETION_TOKENS, ge=1,
                                           description="completion tokens reserved when a request sets no "
                                                       "max_tokens")
    default_max_cost_usd: float | None = Field(default=None, gt=0, description="per-request cost ceiling when "
                                                                               "the request sets none")
    max_cost_usd_by_caller: dict[str, float] = Field(default_factory=dict, description="per-request ceiling by "
                                                                                       "gateway key")
    # Identities bound to gateway keys (by caller id once the config is read; see budgets/keys.py). A key's
    # binding decides its user/team/project scope; client labels can only narrow (see budgets/scopes.py).
    users: dict[str, str] = Field(default_factory=dict, description="gateway key -> the user its spend counts "
                                                                    "as, whatever the body's 'user' says")
    teams: dict[str, str] = Field(default_factory=dict, description="gateway key -> team (or tag the request "
                                                                    "team:<name>)")
    projects: dict[str, str] = Field(default_factory=dict, description="gateway key -> project (or tag the "
                                                                       "request project:<name>)")

    @property
    def enabled(self) -> bool:
        """Whether any control is configured; without one no guard is installed at all."""
        return bool(self.budgets or self.rate_limits or self.deployments or self.runaway.enabled
                    or self.default_max_cost_usd is not None or self.max_cost_usd_by_caller)
