"""An in-process Provider whose answers are scripted per deployment, with simulated latency on a fake clock.

For unit tests of retries, failover and balancing: nothing listens on a socket and nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from tierroute._exceptions import UpstreamError
from tierroute.providers.base import Completion
from tierroute.types import Deployment, JSONDict, Usage

Outcome = UpstreamError | None  # None answers; an error is raised


@dataclass
class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def answer(text: str = "ok") -> JSONDict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


class ScriptedProvider:
    """``script[deployment_id]`` is consumed one outcome per call; the last outcome repeats.

    ``latency_seconds[deployment_id]`` advances ``clock`` before answering, and ``fail_after_chunks`` makes a
    stream raise after that many chunks.
    """

    def __init__(self, name: str, clock: FakeClock | None = None) -> None:
        self.name = name
        self.clock = clock
        self.script: dict[str, list[Outcome]] = {}
        self.latency_seconds: dict[str, float | Callable[[], float]] = {}
        self.fail_after_chunks: dict[str, tuple[int, UpstreamError]] = {}
        self.empty_streams: set[str] = set()  # these deployments' streams send a role chunk, then end
        self.calls: list[str] = []

    def _next(self, deployment: Deployment) -> Outcome:
        self.calls.append(deployment.id)
        latency = self.latency_seconds.get(deployment.id, 0.0)
        if self.clock is not None:
            self.clock.advance(latency() if callable(latency) else latency)
        outcomes = self.script.get(deployment.id) or [None]
        return outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]

    async def complete(self, deployment: Deployment, body: JSONDict) -> Completion:
        outcome = self._next(deployment)
        if outcome is not None:
            raise outcome
        return Completion(response=answer(deployment.id), usage=Usage(3, 2))

    async def stream(self, deployment: Deployment, body: JSONDict) -> AsyncIterator[JSONDict]:
        outcome = self._next(deployment)
        if outcome is not None:
            raise outcome
        if deployment.id in self.empty_streams:
            yield {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
            return
        cut = self.fail_after_chunks.get(deployment.id)
        for i, word in enumerate(["Hello", " from", " " + deployment.id]):
            if cut is not None and i >= cut[0]:
                raise cut[1]
            yield {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word}}]}

    async def aclose(self) -> None:
        pass
