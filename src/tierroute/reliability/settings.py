"""Settings for retries, fallbacks, health and balancing (``reliability:`` in the config).

Each concern is a small frozen value object with its defaults in one place::

    reliability:
      request_timeout_seconds: 600        # bounds every attempt of a request together
      max_attempts: 6
      escalate_to_tier_above: false
      fallbacks: {gpt-4o-mini: [claude-haiku, llama-70b]}
      retry:    {retries: 2, initial_seconds: 0.1, max_seconds: 5, multiplier: 2, jitter: 0.5,
                 max_retry_after_seconds: 5}
      breaker:  {consecutive_failures: 5, error_rate: 0.5, min_requests: 10, window_seconds: 10,
                 cooldown_seconds: 10, rate_limit_cooldown_seconds: 1, max_rate_limit_cooldown_seconds: 60}
      balancer: {decay_seconds: 2, failure_penalty_seconds: 5}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_REQUEST_TIMEOUT_SECONDS = 600.0
DEFAULT_MAX_ATTEMPTS = 6


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Frozen):
    """How often and how patiently failed deployments are tried again within one request.

    ``retries`` counts extra passes over the deployments that failed with a retryable error; the first pass
    fails over between deployments without waiting.
    """

    retries: int = Field(default=2, ge=0)
    initial_seconds: float = Field(default=0.1, ge=0)
    max_seconds: float = Field(default=5.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    jitter: float = Field(default=0.5, ge=0, le=1)
    max_retry_after_seconds: float = Field(default=5.0, ge=0)


class BreakerSettings(_Frozen):
    """When a deployment is taken out of rotation, and for how long."""

    consecutive_failures: int = Field(default=5, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    min_requests: int = Field(default=10, ge=1)
    window_seconds: float = Field(default=10.0, gt=0)
    cooldown_seconds: float = Field(default=10.0, gt=0)
    rate_limit_cooldown_seconds: float = Field(default=1.0, ge=0)
    # The longest a 429's Retry-After keeps a deployment out of rotation; then it is asked again.
    max_rate_limit_cooldown_seconds: float = Field(default=60.0, gt=0)


class BalancerSettings(_Frozen):
    """Latency tracking: ``decay_seconds`` is the EWMA time constant, and how fast an idle estimate fades
    so a deployment that was slow gets re-measured."""

    decay_seconds: float = Field(default=2.0, gt=0)
    # A failed attempt (one that blames the deployment) counts as a first-token sample at least this slow,
    # so a deployment that fails fast never looks fast. It decays like any sample: re-measured soon after.
    failure_penalty_seconds: float = Field(default=5.0, ge=0)


class ReliabilitySettings(_Frozen):
    request_timeout_seconds: float = Field(default=DEFAULT_REQUEST_TIMEOUT_SECONDS, gt=0)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1)
    escalate_to_tier_above: bool = False
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    balancer: BalancerSettings = Field(default_factory=BalancerSettings)
