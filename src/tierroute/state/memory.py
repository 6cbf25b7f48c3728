"""In-memory state: the default, for one process. Exact, and atomic because no method awaits."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

from .base import TOMBSTONE_SECONDS, Counter, Refusal

# How often (in calls) old windows and stale runaway keys are swept, so memory stays bounded.
_SWEEP_EVERY = 1024
# Runaway detection is best effort: past this many keys the least recently seen are dropped (LRU).
MAX_SEEN_KEYS = 100_000


@dataclass(slots=True)
class _Level:
    used: int = 0
    reserved: int = 0
    expires_at: float | None = None


@dataclass(slots=True)
class _Seen:
    window_seconds: float
    last: float
    members: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Hold:
    expires_at: float
    amounts: dict[str, int] = field(default_factory=dict)


class MemoryStore:
    """Counters, holds and seen-sets in dicts; time comes from the caller, so tests never sleep."""

    def __init__(self) -> None:
        self._levels: dict[str, _Level] = {}
        self._holds: dict[str, _Hold] = {}
        self._expiries: list[tuple[float, str]] = []  # (expires_at, hold id); stale entries are skipped
        self._seen: dict[str, _Seen] = {}  # in least recently seen order
        self._tombstones: dict[str, float] = {}  # expired, unsettled hold id -> when it is forgotten
        self._calls = 0

    async def reserve(self, hold_id: str | None, counters: Sequence[Counter], amounts: Sequence[int], *,
                      now: float, hold_seconds: float) -> Refusal | None:
        self._release_expired(now)
        self._maybe_sweep(now)
        for index, (counter, amount) in enumerate(zip(counters, amounts)):
            level = self._levels.get(counter.key)
            current = 0 if level is None else level.used + level.reserved
            if current + amount > counter.limit:
                return Refusal(index=index, level=current)
        hold = None
        if hold_id is not None:
            hold = self._holds.get(hold_id)
            if hold is None:
                hold = self._holds[hold_id] = _Hold(expires_at=now + hold_seconds)
            hold.expires_at = now + hold_seconds
            heapq.heappush(self._expiries, (hold.expires_at, hold_id))
        for counter, amount in zip(counters, amounts):
            level = self._level(counter)
            if hold is None:
                level.used += amount
            else:
                level.reserved += amount
                hold.amounts[counter.key] = hold.amounts.get(counter.key, 0) + amount
        return None

    async def settle(self, hold_id: str, counters: Sequence[Counter], amounts: Sequence[int], *, now: float) -> bool:
        hold = self._holds.pop(hold_id, None)
        tombstone = self._tombstones.pop(hold_id, None)
        if hold is None and tombstone is None:
            return False  # settled already: a replay charges nothing
        if hold is not None:
            self._release(hold)
        for counter, amount in zip(counters, amounts):
            if amount:
                self._level(counter).used += amount
        return True

    def add_used(self, counters: Sequence[Counter], amounts: Sequence[int]) -> None:
        """Count spend with no hold and no limit check: a settlement the shared store could not take."""
        for counter, amount in zip(counters, amounts):
            if amount:
                self._level(counter).used += amount

    async def levels(self, keys: Sequence[str]) -> list[int]:
        out = []
        for key in keys:
            level = self._levels.get(key)
            out.append(0 if level is None else level.used + level.reserved)
        return out

    async def seen(self, key: str, member: str, *, now: float, window_seconds: float) -> int:
        self._maybe_sweep(now)
        entry = self._seen.pop(key, None)  # re-inserted below: the dict's order is least recently seen first
        if entry is None:
            entry = _Seen(window_seconds=window_seconds, last=now)
        entry.window_seconds, entry.last = window_seconds, now
        self._seen[key] = entry
        members = entry.members
        horizon = now - window_seconds
        for old in [m for m, ts in members.items() if ts <= horizon]:
            del members[old]
        members.setdefault(member, now)
        while len(self._seen) > MAX_SEEN_KEYS:
            del self._seen[next(iter(self._seen))]
        return len(members)

    async def aclose(self) -> None:
        return None

    # -- internals -----------------------------------------------------------------------------------
    def _level(self, counter: Counter) -> _Level:
        level = self._levels.get(counter.key)
        if level is None:
            level = self._levels[counter.key] = _Level(expires_at=counter.expires_at)
        return level

    def _release(self, hold: _Hold) -> None:
        for key, amount in hold.amounts.items():
            level = self._levels.get(key)
            if level is not None:
                level.reserved -= amount

    def _release_expired(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, hold_id = heapq.heappop(self._expiries)
            hold = self._holds.get(hold_id)
            if hold is not None and hold.expires_at <= now:
                del self._holds[hold_id]
                self._release(hold)
                self._tombstones[hold_id] = now + TOMBSTONE_SECONDS

    def _maybe_sweep(self, now: float) -> None:
        self._calls += 1
        if self._calls % _SWEEP_EVERY:
            return
        for key in [k for k, v in self._levels.items() if v.expires_at is not None and v.expires_at <= now and not v.reserved]:
            del self._levels[key]
        for key in [k for k, v in self._seen.items() if v.last <= now - v.window_seconds]:
            del self._seen[key]
        for hold_id in [h for h, until in self._tombstones.items() if until <= now]:
            del self._tombstones[hold_id]
