"""Spend and abuse controls: budgets, rate limits and runaway-loop protection over a state store."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..journal import Journal
from ..state.base import StateStore
from ..state.memory import MemoryStore
from .guard import Hold, LimitsGuard
from .settings import LimitsSettings


def open_state_store(settings: LimitsSettings) -> StateStore:
    """The store named by ``limits.state.backend``; Redis is wrapped in the configured failure behaviour."""
    state = settings.state
    if state.backend == "memory":
        return MemoryStore()
    from ..state.fallback import FallbackStore
    from ..state.redis import RedisStore

    redis = RedisStore(state.url, prefix=state.prefix, timeout_seconds=state.timeout_seconds,
                       connect_timeout_seconds=state.connect_timeout_seconds, max_connections=state.max_connections)
    return FallbackStore(redis, on_error=state.on_error, retry_after_seconds=state.retry_after_seconds)


def build_limits_guard(settings: LimitsSettings, *, store: StateStore | None = None,
                       clock: Callable[[], float] = time.time, journal: Journal | None = None) -> LimitsGuard | None:
    """The guard for ``limits:``, or None when nothing is configured (so the hot path does no work).

    ``journal`` keeps settlements durable; it is used only with a shared (Redis) store, since a
    process-local store's counters die with the process that would replay them."""
    if not settings.enabled:
        return None
    if settings.state.backend == "memory":
        journal = None
    return LimitsGuard(settings, store if store is not None else open_state_store(settings), clock=clock,
                       journal=journal)


__all__ = ["Hold", "LimitsGuard", "LimitsSettings", "build_limits_guard", "open_state_store"]
