"""The guard interface: spend and abuse controls that wrap each request (budgets, rate limits, loops).

A guard sees a request three times: before routing (``snapshot``, so policies can shift toward cheaper
models as a budget fills), after the decision (``admit``, which may refuse with :class:`LimitExceeded` and
reserves what the request may cost), and when the answer is complete (``settle``, with the real cost).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .types import Decision, RequestFeatures, StateSnapshot, Usage


@runtime_checkable
class Guard(Protocol):
    async def snapshot(self, features: RequestFeatures) -> StateSnapshot | None:
        """Live state that should influence routing, or None."""
        ...

    async def admit(self, features: RequestFeatures, decision: Decision, request_id: str) -> Any:
        """Refuse with LimitExceeded, or return a token handed back to ``settle``."""
        ...

    async def settle(self, token: Any, *, cost_usd: float, usage: Usage, ok: bool) -> None:
        """Record the real cost and release what was reserved beyond it. Must not raise."""
        ...

    async def aclose(self) -> None: ...
