"""Dispatch a routed request to a deployment and report every attempt."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .._exceptions import UpstreamError
from ..providers.base import Completion, Provider
from ..types import Decision, Deployment, JSONDict, ModelSpec, Usage


@dataclass(slots=True)
class Attempt:
    """One try at one deployment. ``error`` is None when it answered."""

    number: int
    model: ModelSpec
    deployment: Deployment
    started: float
    ended: float = 0.0
    ttft: float | None = None
    usage: Usage = field(default_factory=Usage)
    error: UpstreamError | None = None

    @property
    def latency_ms(self) -> float:
        return (self.ended - self.started) * 1000


BodyFor = Callable[[ModelSpec, Deployment], JSONDict]


class Dispatcher:
    """Calls the first ranked model's first deployment. (Failover and balancing live in later layers.)"""

    def __init__(self, providers: Mapping[str, Provider], deployments: Mapping[str, Sequence[Deployment]],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._providers = providers
        self._deployments = deployments
        self._clock = clock

    def _target(self, decision: Decision) -> tuple[ModelSpec, Deployment]:
        model = decision.chosen.model
        return model, self._deployments[model.id][0]

    async def complete(self, decision: Decision, body_for: BodyFor, attempts: list[Attempt]) -> Completion:
        """Answer the request; ``attempts`` is filled in place so the caller can record every try."""
        model, deployment = self._target(decision)
        attempt = Attempt(number=1, model=model, deployment=deployment, started=self._clock())
        attempts.append(attempt)
        try:
            completion = await self._providers[deployment.provider].complete(deployment, body_for(model, deployment))
        except UpstreamError as exc:
            attempt.error = exc
            raise
        finally:
            attempt.ended = self._clock()
        attempt.ttft = attempt.ended
        attempt.usage = completion.usage
        return completion

    async def stream(self, decision: Decision, body_for: BodyFor, attempts: list[Attempt]) -> AsyncIterator[JSONDict]:
        """Yield chunks; ``attempts`` is filled as attempts start and end, so the caller can record them."""
        model, deployment = self._target(decision)
        attempt = Attempt(number=1, model=model, deployment=deployment, started=self._clock())
        attempts.append(attempt)
        try:
            async for chunk in self._providers[deployment.provider].stream(deployment, body_for(model, deployment)):
                if attempt.ttft is None:
                    attempt.ttft = self._clock()
                yield chunk
        except UpstreamError as exc:
            attempt.error = exc
            raise
        finally:
            attempt.ended = self._clock()
