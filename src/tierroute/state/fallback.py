"""What happens when the shared store is down: fail closed (refuse with 503) or fail open (local limits).

Failing open keeps serving with per-process in-memory counters, so each replica enforces the limits on its
own share of traffic until the shared store answers again; it is retried every ``retry_after_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from .._exceptions import StateUnavailable
from .base import Counter, Refusal, StateStore
from .memory import MemoryStore

log = logging.getLogger("tierroute.state")


class FallbackStore:
    def __init__(self, primary: StateStore, *, on_error: Literal["closed", "open"], retry_after_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.primary = primary
        self.local = MemoryStore()
        self._fail_open = on_error == "open"
        self._retry_after = retry_after_seconds
        self._clock = clock
        self._down_until = 0.0
        self._local_holds: set[str] = set()
        self._counted_locally: set[str] = set()  # shared holds whose settlement waits for the store

    def _use_local(self) -> bool:
        return self._fail_open and self._clock() < self._down_until

    def _failed(self, exc: StateUnavailable) -> None:
        if not self._fail_open:
            raise exc
        if self._clock() >= self._down_until:
            log.warning("%s; failing open to local limits for %.0f s", exc.message, self._retry_after)
        self._down_until = self._clock() + self._retry_after

    async def reserve(self, hold_id: str | None, counters: Sequence[Counter], amounts: Sequence[int], *,
                      now: float, hold_seconds: float) -> Refusal | None:
        if not self._use_local() and (hold_id is None or hold_id not in self._local_holds):
            try:
                return await self.primary.reserve(hold_id, counters, amounts, now=now, hold_seconds=hold_seconds)
            except StateUnavailable as exc:
                self._failed(exc)
        if hold_id is not None:
            self._local_holds.add(hold_id)
        return await self.local.reserve(hold_id, counters, amounts, now=now, hold_seconds=hold_seconds)

    async def settle(self, hold_id: str, counters: Sequence[Counter], amounts: Sequence[int], *, now: float) -> bool:
        if hold_id in self._local_holds:
            self._local_holds.discard(hold_id)
            return await self.local.settle(hold_id, counters, amounts, now=now)
        try:
            charged = await self.primary.settle(hold_id, counters, amounts, now=now)
        except StateUnavailable as exc:
            self._failed(exc)  # raises when failing closed
            # Failing open: count the spend locally (once) so this replica's own limits see it meanwhile.
            if hold_id not in self._counted_locally:
                self._counted_locally.add(hold_id)
                self.local.add_used(counters, amounts)
            raise  # either way the guard keeps the settlement until the shared store takes it
        self._counted_locally.discard(hold_id)
        return charged

    async def levels(self, keys: Sequence[str]) -> list[int]:
        if not self._use_local():
            try:
                return await self.primary.levels(keys)
            except StateUnavailable as exc:
                self._failed(exc)
        return await self.local.levels(keys)

    async def seen(self, key: str, member: str, *, now: float, window_seconds: float) -> int:
        if not self._use_local():
            try:
                return await self.primary.seen(key, member, now=now, window_seconds=window_seconds)
            except StateUnavailable as exc:
                self._failed(exc)
        return await self.local.seen(key, member, now=now, window_seconds=window_seconds)

    async def aclose(self) -> None:
        await self.primary.aclose()
