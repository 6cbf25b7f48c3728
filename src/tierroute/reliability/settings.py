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

    retries: int = Field(default=2, ge=0, description="extra passes over the deployments that failed retryably")
    initial_seconds: float = Field(default=0.1, ge=0, description="backoff before the first retry pass")
    max_seconds: float = Field(default=5.0, ge=0, description="longest backoff")
    multiplier: float = Field(default=2.0, ge=1, description="backoff growth per pass")
    jitter: float = Field(default=0.5, ge=0, le=1, description="fraction of each backoff that is random")
    max_retry_after_seconds: float = Field(default=5.0, ge=0, description="a longer Retry-After is returned as a "
                                                                          "429 instead of waited for")


class BreakerSettings(_Frozen):
    """When a deployment is taken out of rotation, and for how long."""

    consecutive_failures: int = Field(default=5, ge=1, description="failures in a row that open the breaker")
    error_rate: float = Field(default=0.5, gt=0, le=1, description="failure rate in the window that opens it")
    min_requests: int = Field(default=10, ge=1, description="attempts in the window before error_rate applies")
    window_seconds: float = Field(default=10.0, gt=0, description="the error-rate window")
    cooldown_seconds: float = Field(default=10.0, gt=0, description="open time before one probe is let through")
    rate_limit_cooldown_seconds: float = Field(default=1.0, ge=0, description="rest after a 429 without "
                                                                              "Retry-After")
    max_rate_limit_cooldown_seconds: float = Field(default=60.0, gt=0, description="the longest a 429's "
                                                    "Retry-After keeps a deployment out of rotation")


class BalancerSettings(_Frozen):
    """Latency tracking: ``decay_seconds`` is the EWMA time constant, and how fast an idle estimate fades
    so a deployment that was slow gets re-measured."""

    decay_seconds: float = Field(default=2.0, gt=0, description="latency EWMA time constant")
    failure_penalty_seconds: float = Field(default=5.0, ge=0, description="a failure blamed on a deployment "
                                           "counts as a first-token sample at least this slow, so failing fast "
                                           "never looks fast")


class ReliabilitySettings(_Frozen):
    request_timeout_seconds: float = Field(default=DEFAULT_REQUEST_TIMEOUT_SECONDS, gt=0,
                                           description="deadline for all attempts of a request together")
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, description="attempts per request, across "
                                                                              "deployments and models")
    escalate_to_tier_above: bool = Field(default=False, description="after the tier's models, try the tier above")
    fallbacks: dict[str, list[str]] = Field(default_factory=dict, description="model -> models tried after it, in "
                                                                              "order (replaces the ranking's)")
    retry: RetrySettings = Field(default_factory=RetrySettings, description="retry passes and backoff")
    breaker: BreakerSettings = Field(default_factory=BreakerSettings, description="per-deployment circuit breaker")
    balancer: BalancerSettings = Field(default_factory=BalancerSettings, description="latency-aware balancing")
