"""Latency-aware choice among the healthy deployments of one model: peak-EWMA costs, power of two choices.

Each deployment keeps two estimates, time to first token and seconds per output token, as *peak* EWMAs: a
sample above the estimate replaces it at once (a slowdown is believed immediately), a sample below is blended
in with weight ``1 - exp(-dt / decay_seconds)`` (a recovery is believed once it persists). Reading an
estimate decays it toward zero by the same factor, so a deployment that stopped getting traffic because it
was slow looks cheap again after a few time constants and receives one request that re-measures it.

A failed attempt that blames the deployment (``observe_failure``) is a first-token sample of at least
``failure_penalty_seconds``, blended in (never believed at once, except as a first sample): without it, a deployment failing every request in a millisecond gives no samples,
its estimate decays to zero, and it wins nearly every draw (two thirds of the traffic with three deployments).

The expected latency of a request is ``ttft + seconds_per_token * output_tokens``; its cost multiplies that
by ``in_flight + 1`` and divides by the deployment's weight. Two deployments are drawn at random (weighted)
and the cheaper one wins: herd-free, and the slow or overloaded one loses almost every draw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..types import Deployment
from .settings import BalancerSettings

# Added to every estimate so unmeasured deployments still spread load by requests in flight.
FLOOR_SECONDS = 0.001


@dataclass(slots=True)
class PeakEwma:
    value: float | None = None
    stamp: float = 0.0

    def _decay(self, now: float, tau: float) -> float:
        elapsed = max(0.0, now - self.stamp)
        self.stamp = now
        return math.exp(-elapsed / tau)

    def observe(self, sample: float, now: float, tau: float) -> None:
        keep = self._decay(now, tau)
        if self.value is None or sample > self.value:
            self.value = sample
        else:
            self.value = self.value * keep + sample * (1 - keep)

    def blend(self, sample: float, now: float, tau: float) -> None:
        """Like ``observe``, but a sample above the estimate is blended in too (only a first one replaces it)."""
        keep = self._decay(now, tau)
        self.value = sample if self.value is None else self.value * keep + sample * (1 - keep)

    def read(self, now: float, tau: float) -> float:
        if self.value is None:
            return 0.0
        self.value *= self._decay(now, tau)
        return self.value


@dataclass(slots=True)
class _Stats:
    ttft: PeakEwma
    per_token: PeakEwma
    in_flight: int = 0
    samples: int = 0


class Balancer:
    """Latency estimates and requests in flight for every deployment; one per Dispatcher."""

    def __init__(self, settings: BalancerSettings, clock: Callable[[], float], rng: random.Random) -> None:
        self._tau = settings.decay_seconds
        self._failure_penalty = settings.failure_penalty_seconds
        self._clock = clock
        self._rng = rng
        self._stats: dict[str, _Stats] = {}

    def _get(self, deployment: str) -> _Stats:
        stats = self._stats.get(deployment)
        if stats is None:
            stats = self._stats[deployment] = _Stats(PeakEwma(), PeakEwma())
        return stats

    def begin(self, deployment: str) -> None:
        self._get(deployment).in_flight += 1

    def end(self, deployment: str) -> None:
        stats = self._get(deployment)
        stats.in_flight = max(0, stats.in_flight - 1)

    def observe(self, deployment: str, *, ttft_seconds: float | None = None,
                seconds_per_token: float | None = None) -> None:
        now = self._clock()
        stats = self._get(deployment)
        if ttft_seconds is not None:
            stats.ttft.observe(ttft_seconds, now, self._tau)
        if seconds_per_token is not None:
            stats.per_token.observe(seconds_per_token, now, self._tau)
        stats.samples += 1

    def observe_failure(self, deployment: str, *, elapsed_seconds: float) -> None:
        """A failed attempt: as slow as it took, and never faster than the failure penalty.

        Blended in rather than believed at once, so the penalty grows with the failure rate: a deployment
        failing every request soon looks ``failure_penalty_seconds`` slow, while one failing 1% of a busy
        stream of requests only looks a little slower, instead of being pushed out after every failure."""
        stats = self._get(deployment)
        stats.ttft.blend(max(elapsed_seconds, self._failure_penalty), self._clock(), self._tau)
        stats.samples += 1

    def observe_total(self, deployment: str, *, latency_seconds: float, output_tokens: int) -> None:
        """A non-streamed answer: the generation time is unseen, so attribute it with the per-token estimate."""
        stats = self._get(deployment)
        per_token = stats.per_token.value or 0.0
        self.observe(deployment, ttft_seconds=max(0.0, latency_seconds - per_token * output_tokens))

    def expected_seconds(self, deployment: str, output_tokens: int) -> float:
        now = self._clock()
        stats = self._get(deployment)
        return stats.ttft.read(now, self._tau) + stats.per_token.read(now, self._tau) * output_tokens

    def cost(self, deployment: Deployment, output_tokens: int) -> float:
        stats = self._get(deployment.id)
        expected = self.expected_seconds(deployment.id, output_tokens) + FLOOR_SECONDS
        return expected * (stats.in_flight + 1) / deployment.weight

    def choose(self, deployments: Sequence[Deployment], output_tokens: int) -> Deployment:
        """Power of two choices over ``deployments`` (drawn by weight), the lower cost wins."""
        if len(deployments) == 1:
            return deployments[0]
        first = self._draw(deployments)
        second = self._draw([d for d in deployments if d is not first])
        return second if self.cost(second, output_tokens) < self.cost(first, output_tokens) else first

    def _draw(self, deployments: Sequence[Deployment]) -> Deployment:
        return self._rng.choices(deployments, weights=[d.weight for d in deployments])[0]

    def snapshot(self) -> dict[str, dict[str, float | int | None]]:
        return {d: {"ttft_seconds": s.ttft.value, "seconds_per_token": s.per_token.value,
                    "in_flight": s.in_flight, "samples": s.samples} for d, s in self._stats.items()}
