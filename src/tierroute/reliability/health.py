"""Per-deployment health: circuit breakers and rate-limit cool-downs.

A breaker is *closed* (in rotation) until either ``consecutive_failures`` attempts in a row fail, or at least
``min_requests`` attempts in the last ``window_seconds`` failed at ``error_rate`` or more. It is then *open*
(skipped) for ``cooldown_seconds``, after which it is *half-open*: exactly one request is let through as a
probe. The probe's success closes the breaker; its failure opens it for another cool-down.

A 429 is not sickness: it cools the deployment for exactly its Retry-After (or ``rate_limit_cooldown_seconds``
without one), at most ``max_rate_limit_cooldown_seconds``, and leaves the breaker alone. The cap keeps one
absurd Retry-After (an hour, or ``inf``) from taking a deployment out of rotation for good: after the cap it
gets a request again, and a provider that still means it answers 429 again.

Only failures that blame the deployment are recorded here (``retry.counts_against_deployment``); an attempt
that failed because of its request (a bad prompt) ends with :meth:`Health.release`, which says nothing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .._exceptions import UpstreamError, UpstreamRateLimited
from .settings import BreakerSettings

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
COOLING = "cooling"


@dataclass(slots=True)
class _Breaker:
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, failed) inside the window
    failures: int = 0  # failed outcomes inside the window
    consecutive: int = 0
    open_until: float | None = None
    probing: bool = False
    cooling_until: float = 0.0
    last_failure: float = -math.inf
    last_error: str | None = None


class Health:
    """Breakers for every deployment seen so far; state lives on the instance, one per Dispatcher."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}

    def _get(self, deployment: str) -> _Breaker:
        breaker = self._breakers.get(deployment)
        if breaker is None:
            breaker = self._breakers[deployment] = _Breaker()
        return breaker

    # -- reading -------------------------------------------------------------------------------------
    def state(self, deployment: str) -> str:
        b = self._breakers.get(deployment)
        if b is None:
            return CLOSED
        now = self._clock()
        if b.open_until is not None:
            return OPEN if now < b.open_until else HALF_OPEN
        if now < b.cooling_until:
            return COOLING
        return CLOSED

    def available(self, deployment: str) -> bool:
        """Whether a request may go there now (a half-open breaker admits one probe at a time)."""
        state = self.state(deployment)
        if state == HALF_OPEN:
            b = self._breakers[deployment]
            return not b.probing and self._clock() >= b.cooling_until
        return state == CLOSED

    def ready_at(self, deployment: str) -> float:
        """When ``deployment`` may next be tried (now or earlier if it is available)."""
        b = self._breakers.get(deployment)
        if b is None:
            return -math.inf
        return max(b.open_until or -math.inf, b.cooling_until)

    def cooling_until(self, deployment: str) -> float:
        b = self._breakers.get(deployment)
        return b.cooling_until if b is not None else -math.inf

    def last_failure(self, deployment: str) -> float:
        b = self._breakers.get(deployment)
        return b.last_failure if b is not None else -math.inf

    def unavailable(self) -> frozenset[str]:
        """Deployments that are skipped right now (open breaker or cooling down)."""
        return frozenset(d for d in self._breakers if self.state(d) in (OPEN, COOLING))

    def snapshot(self) -> dict[str, dict[str, object]]:
        """State of every deployment seen, for health endpoints and tests."""
        return {d: {"state": self.state(d), "consecutive_failures": b.consecutive,
                    "window_failures": b.failures, "window_attempts": len(b.outcomes), "last_error": b.last_error}
                for d, b in self._breakers.items()}

    # -- writing -------------------------------------------------------------------------------------
    def acquire(self, deployment: str) -> None:
        """Call when an attempt starts; claims the probe slot of a half-open breaker."""
        if self.state(deployment) == HALF_OPEN:
            self._get(deployment).probing = True

    def release(self, deployment: str) -> None:
        """The attempt ended without saying anything about health (e.g. it was cancelled)."""
        b = self._breakers.get(deployment)
        if b is not None:
            b.probing = False

    def record_success(self, deployment: str) -> None:
        b = self._get(deployment)
        self._observe(b, failed=False)
        b.consecutive = 0
        b.probing = False
        if b.open_until is not None:
            b.open_until = None
            b.outcomes.clear()
            b.failures = 0

    def record_failure(self, deployment: str, error: UpstreamError) -> None:
        now = self._clock()
        b = self._get(deployment)
        b.probing = False
        b.last_error = f"{error.kind}: {error.message}"[:300]
        if isinstance(error, UpstreamRateLimited):
            wait = error.retry_after_seconds
            wait = self._settings.rate_limit_cooldown_seconds if wait is None or not math.isfinite(wait) else wait
            b.cooling_until = now + min(max(0.0, wait), self._settings.max_rate_limit_cooldown_seconds)
            return
        b.last_failure = now
        self._observe(b, failed=True)
        b.consecutive += 1
        s = self._settings
        if b.open_until is not None:  # a failed probe (or a last-resort try): another full cool-down
            b.open_until = now + s.cooldown_seconds
        elif b.consecutive >= s.consecutive_failures or (
                len(b.outcomes) >= s.min_requests and b.failures >= s.error_rate * len(b.outcomes)):
            b.open_until = now + s.cooldown_seconds

    def _observe(self, b: _Breaker, *, failed: bool) -> None:
        now = self._clock()
        b.outcomes.append((now, failed))
        b.failures += failed
        horizon = now - self._settings.window_seconds
        while b.outcomes and b.outcomes[0][0] < horizon:
            _, old_failed = b.outcomes.popleft()
            b.failures -= old_failed
