"""Backoff between retry passes, what may be retried, and the per-request deadline."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from .._exceptions import (
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamContextTooLong,
    UpstreamEmptyAnswer,
    UpstreamError,
    UpstreamNotFound,
)
from .settings import RetrySettings


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter.

    The wait before retry pass ``n`` (1-based) is::

        base  = min(max_seconds, initial_seconds * multiplier ** (n - 1))
        delay = base * uniform(1 - jitter, 1)
        wait  = max(delay, retry_after_seconds)     # a Retry-After is a floor, never shortened

    so with the defaults (0.1 s, x2, jitter 0.5) the waits are 0.05-0.1 s, 0.1-0.2 s, 0.2-0.4 s ...
    """

    initial_seconds: float = 0.1
    max_seconds: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> Backoff:
        return cls(initial_seconds=settings.initial_seconds, max_seconds=settings.max_seconds,
                   multiplier=settings.multiplier, jitter=settings.jitter)

    def delay_seconds(self, retry: int, *, rng: random.Random, retry_after_seconds: float | None = None) -> float:
        base = min(self.max_seconds, self.initial_seconds * self.multiplier ** max(0, retry - 1))
        delay = base * rng.uniform(1 - self.jitter, 1)
        if retry_after_seconds is not None:
            delay = max(delay, retry_after_seconds)
        return delay


class Fault(enum.Enum):
    """Who a failed attempt blames; dispatch (``dispatch.py``) acts on it.

    ========== ================================== ============ ==================== ===================
    fault      errors                             breaker      same deployment      other deployments
    ========== ================================== ============ ==================== ===================
    TRANSIENT  429, 5xx, timeouts, connections    counts [1]_  retried after backoff tried
    DEPLOYMENT 401/403 (our key), 404 (bad URL    counts       never again          tried
               or upstream model name)
    MODEL      context window too small           untouched    never again          larger models only
    UNSURE     other 400s, an empty stream        untouched    never again          one more; a second
                                                  [2]_                              UNSURE is returned
    REQUEST    content filter                     untouched    never again          none: returned
    ========== ================================== ============ ==================== ===================

    .. [1] a 429 cools the deployment for its Retry-After instead of counting.
    .. [2] counted against the deployment once another deployment of the same model answers the request.
    """

    TRANSIENT = "transient"
    DEPLOYMENT = "deployment"
    MODEL = "model"
    UNSURE = "unsure"
    REQUEST = "request"


def fault_of(exc: UpstreamError) -> Fault:
    if exc.retryable:
        return Fault.TRANSIENT
    if isinstance(exc, (UpstreamAuthError, UpstreamNotFound)):
        return Fault.DEPLOYMENT
    if isinstance(exc, UpstreamContextTooLong):
        return Fault.MODEL
    if isinstance(exc, (UpstreamBadRequest, UpstreamEmptyAnswer)):
        return Fault.UNSURE
    return Fault.REQUEST


def may_retry(exc: UpstreamError) -> bool:
    """Whether the same deployment may answer if asked again: 429, 5xx, connection failures, timeouts."""
    return exc.retryable


def may_fail_over(exc: UpstreamError) -> bool:
    """Whether another deployment or model may answer (an UNSURE error: just one more, see ``Fault``)."""
    return fault_of(exc) is not Fault.REQUEST


def counts_against_deployment(exc: UpstreamError) -> bool:
    """Whether the failure says the deployment, not the request, is broken (breaker and balancer hear it)."""
    return fault_of(exc) in (Fault.TRANSIENT, Fault.DEPLOYMENT)


# With less than this left, a request is out of time. No upstream answers in a few milliseconds, and asyncio
# may fire a timer up to one clock tick early, so an attempt cut off "at" the deadline can end just before it.
# Without the slack, such an attempt was followed by a second one with ~0 s to live. Its instant timeout turned
# the caller's 504 into a 503 "all 2 attempts failed".
DEADLINE_SLACK_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point on ``clock`` by which the whole request must be answered."""

    at: float
    clock: Callable[[], float]

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float]) -> Deadline:
        return cls(at=clock() + seconds, clock=clock)

    def remaining_seconds(self) -> float:
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at - DEADLINE_SLACK_SECONDS
