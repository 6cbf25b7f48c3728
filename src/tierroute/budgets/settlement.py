"""Settling budget holds so that every answered request is charged exactly once.

Each settlement is first appended to the journal (when the store is shared; a process-local store dies
with its process, so there is nothing to replay into), then sent to the store. A settlement the store
cannot take now (Redis down, a timeout) is kept and retried, at most every ``retry_every_seconds``, on
the next request, until the store takes it; if the process dies first, the next process replays it from
the journal. The store settles a hold id at most once (``state.base``), so a settlement that did reach the
store before a timeout or a crash is never charged twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._exceptions import StateUnavailable
from ..journal import SETTLEMENT, Journal, Segment
from ..state.base import Counter, StateStore

log = logging.getLogger("tierroute.budgets")


@dataclass(slots=True)
class Pending:
    hold_id: str
    counters: Sequence[Counter]
    amounts: Sequence[int]
    mark: Segment | None


class Settlements:
    def __init__(self, store: StateStore, *, journal: Journal | None = None, retry_every_seconds: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._journal = journal
        self._retry_every = retry_every_seconds
        self._clock = clock
        self._pending: deque[Pending] = deque()
        self._next_retry = 0.0
        if journal is not None:
            journal.on(SETTLEMENT, self._replayed)

    @property
    def pending(self) -> int:
        """Settlements the store has not taken yet."""
        return len(self._pending)

    async def settle(self, hold_id: str, counters: Sequence[Counter], amounts: Sequence[int]) -> None:
        mark = None
        if self._journal is not None:
            try:
                mark = self._journal.append(SETTLEMENT, (hold_id, [(c.key, c.limit, c.expires_at) for c in counters],
                                                         amounts))
            except OSError as exc:  # a full disk must not fail the answer; this settlement is just not durable
                log.error("could not journal the settlement of %s: %s", hold_id, exc)
        pending = Pending(hold_id, counters, amounts, mark)
        if self._pending:
            self._pending.append(pending)  # behind the earlier ones, which go first
            await self.retry()
        else:
            await self._send(pending)

    def _replayed(self, payload: Any, mark: Segment) -> None:
        hold_id, counters, amounts = payload
        self._pending.append(Pending(hold_id, [Counter(*c) for c in counters], amounts, mark))
        self._next_retry = 0.0

    async def _send(self, pending: Pending) -> bool:
        try:
            await self.store.settle(pending.hold_id, pending.counters, pending.amounts, now=self._clock())
        except StateUnavailable as exc:
            self._keep(pending, exc.message)
            return False
        except Exception as exc:  # noqa: BLE001 - settle must never raise into the response path
            log.exception("settling %s failed", pending.hold_id)
            self._keep(pending, f"{type(exc).__name__}: {exc}")
            return False
        if pending.mark is not None:
            self._journal.done(pending.mark)  # type: ignore[union-attr]
        return True

    def _keep(self, pending: Pending, why: str) -> None:
        if not self._pending:
            log.warning("could not settle %s (%s); kept%s and retried until the store takes it", pending.hold_id,
                        why, " in the journal" if pending.mark is not None else " in memory")
            self._next_retry = self._clock() + self._retry_every
        self._pending.append(pending)

    async def retry(self, *, now: bool = False) -> None:
        """Send what is waiting, oldest first, stopping at the first failure. Cheap when nothing waits."""
        if not self._pending or (not now and self._clock() < self._next_retry):
            return
        self._next_retry = self._clock() + self._retry_every
        waiting, self._pending = self._pending, deque()
        while waiting:
            pending = waiting.popleft()
            if not await self._send(pending):
                self._pending.extend(waiting)
                return
        log.info("settled every kept settlement")
