"""The guard interface: spend and abuse controls that wrap each request (budgets, rate limits, loops).

A guard sees a request at four points: before routing (``snapshot``, so policies can shift toward cheaper
models as a budget fills, and loops can be spotted in the raw conversation), after the decision (``admit``,
which may refuse with :class:`LimitExceeded` and reserves what the request may cost), as a stream grows
(``meter``, which may reserve more or cut the stream), and when the answer is complete (``settle``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .types import Decision, JSONDict, ModelSpec, RequestFeatures, StateSnapshot, Usage


@runtime_checkable
class Guard(Protocol):
    async def snapshot(self, features: RequestFeatures, body: JSONDict) -> StateSnapshot | None:
        """Live state that should influence routing, or None. May refuse with LimitExceeded."""
        ...

    async def admit(self, features: RequestFeatures, decision: Decision, request_id: str) -> Any:
        """Refuse with LimitExceeded, or return a token handed back to ``settle``."""
        ...

    async def meter(self, token: Any, model: ModelSpec, completion_tokens: int) -> None:
        """Called as a stream grows; raise LimitExceeded to cut it with an error event."""
        ...

    async def settle(self, token: Any, *, cost_usd: float, usage: Usage, ok: bool) -> None:
        """Record the real cost and release what was reserved beyond it. Must not raise."""
        ...

    async def aclose(self) -> None: ...
