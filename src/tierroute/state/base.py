"""The state-store interface: atomic counters with reservations, shared by every limit.

Every amount is an integer (USD are counted in nano-dollars, see ``budgets.windows.to_units``), so the
stores add and compare exactly. A *counter* holds ``used`` (settled) and ``reserved`` (held by requests in
flight). A *hold* is one request's reservation over several counters; it carries an expiry, so the holds of
a process that died are released by whichever process touches the store next.

Settlement is exactly once per hold id: settling a live hold, or one that expired unsettled (the store
keeps a *tombstone* for ``TOMBSTONE_SECONDS``), charges the real amounts; settling it again charges
nothing. So a settlement that may or may not have reached the store (a timeout, a process that died
before noting it) is simply settled again when the journal is replayed (``tierroute.journal``).

Each method is one atomic step in every backend: in Redis one Lua script, never read-then-write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable



# How long an expired, unsettled hold is remembered, so a late settlement (a replica replaying its journal
# after a long outage) still charges it once. Only holds that expire leave one: crashes and outages.
TOMBSTONE_SECONDS = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Counter:
    """One limit's counter for one window. ``expires_at`` (epoch seconds) lets the store forget old windows."""

    key: str
    limit: int
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The first counter without room: its index in the request, and its level (used + reserved) before it."""

    index: int
    level: int


@runtime_checkable
class StateStore(Protocol):
    async def reserve(self, hold_id: str | None, counters: Sequence[Counter], amounts: Sequence[int], *,
                      now: float, hold_seconds: float) -> Refusal | None:
        """If every counter has room for its amount, add them all and return None; else change nothing.

        With a ``hold_id`` the amounts are *reserved* under that hold (adding to it if it exists) until
        ``settle`` or until ``now + hold_seconds``; without one they are *used* at once (plain counting).
        Expired holds are released first.
        """
        ...

    async def settle(self, hold_id: str, counters: Sequence[Counter], amounts: Sequence[int], *, now: float) -> bool:
        """Release the hold (whatever is left of it) and add the real amounts to ``used``, once: True if this
        call charged, False if the hold was already settled (or never existed) and nothing changed."""
        ...

    async def levels(self, keys: Sequence[str]) -> list[int]:
        """used + reserved for each key (0 for unknown keys)."""
        ...

    async def seen(self, key: str, member: str, *, now: float, window_seconds: float) -> int:
        """Record ``member`` under ``key`` (once: a member already present keeps its first time) and return
        how many distinct members were recorded within the last ``window_seconds``."""
        ...

    async def aclose(self) -> None: ...
