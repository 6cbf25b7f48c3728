"""Backoff between retry passes, what may be retried, and the per-request deadline."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .._exceptions import UpstreamAuthError, UpstreamContextTooLong, UpstreamError
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


def may_retry(exc: UpstreamError) -> bool:
    """Whether the same deployment may answer if asked again: 429, 5xx, connection failures, timeouts."""
    return exc.retryable


def may_fail_over(exc: UpstreamError) -> bool:
    """Whether another deployment or model may answer. A malformed or filtered request fails everywhere;
    a rejected key or a too-small context window is specific to where it was sent."""
    return exc.retryable or isinstance(exc, (UpstreamAuthError, UpstreamContextTooLong))


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
