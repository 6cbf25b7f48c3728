"""The batch's hard spend cap: each line reserves the most it can cost before it is sent, and settles to
its real cost after, over a :class:`~tierroute.state.StateStore` (memory for one process, Redis for workers
on several machines), so the cap holds however many lines are in flight.

The most a line can cost is its prompt (with a margin for tokenizers that count more) plus its
``max_tokens`` (else the model's output limit) on the most expensive model that could answer it: failover
and escalation may move a line to any configured model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..budgets.windows import units_to_usd, usd_to_units
from .._exceptions import StateUnavailable
from ..catalog import Catalog
from ..chat_request import parse_chat_request
from ..state.base import Counter, StateStore
from ..types import ModelSpec

HOLD_SECONDS = 900.0  # a dead worker's reservations are released after this
PROMPT_MARGIN = 1.5
OTHERS_POLL_SECONDS = 0.05
SETTLE_WAIT_SECONDS = 1.0
SETTLE_TRIES = 5

log = logging.getLogger("tierroute.batch")


class BatchBudget:
    def __init__(self, store: StateStore, *, key: str, max_cost_usd: float, catalog: Catalog,
                 clock: Callable[[], float] = time.time, cascade: Sequence[ModelSpec] = ()) -> None:
        self.store = store
        self.max_cost_usd = max_cost_usd
        self._counter = Counter(key=key, limit=usd_to_units(max_cost_usd))
        # Settled spend alone (the counter above also holds reservations): tells "the cap is reached" from
        # "other workers' reservations are in the way for now".
        self._used = Counter(key=f"{key}:settled", limit=2**62)
        self._models = tuple(catalog.models.values())
        # A cascaded line may call every model of the cascade (router.cascade): its worst case is their sum.
        self._cascade = tuple(cascade)
        self._clock = clock
        self._in_flight = 0
        self._settled = asyncio.Event()
        self._short = asyncio.Lock()

    def ceiling_usd(self, body: dict[str, Any]) -> float:
        features = parse_chat_request(body)
        # The prompt count is tierroute's estimate; a provider's tokenizer may count more, hence the margin.
        prompt = int(features.prompt_tokens * PROMPT_MARGIN) + 16
        def worst(m: ModelSpec) -> float:
            return m.cost_usd(prompt, min(features.max_tokens or m.max_output_tokens, m.max_output_tokens))

        return max(max((worst(m) for m in self._models), default=0.0), sum(worst(m) for m in self._cascade))

    async def precharge(self, cost_usd: float) -> None:
        """Count spend from an earlier run of the same job (when the store does not keep it itself)."""
        if cost_usd > 0:
            await self.store.reserve(None, [Counter(self._counter.key, 2**62), self._used],
                                     [usd_to_units(cost_usd)] * 2, now=self._clock(), hold_seconds=0)

    async def reserve(self, hold_id: str, ceiling_usd: float) -> bool:
        """Hold ``ceiling_usd``. When it does not fit but would once the reservations in flight settle (theirs
        exceed their cost), wait for that; False when the settled spend itself leaves no room."""
        amount = usd_to_units(ceiling_usd)
        if await self._try(hold_id, amount):
            return True
        async with self._short:  # room is short: one line at a time waits and asks, not every line in flight
            while not await self._try(hold_id, amount):
                if self._in_flight == 0:
                    settled = (await self.store.levels([self._used.key]))[0]
                    if self._counter.limit - settled < amount:
                        return False
                    await asyncio.sleep(OTHERS_POLL_SECONDS)  # other workers' reservations: they settle soon
                    continue
                self._settled.clear()
                with contextlib.suppress(TimeoutError):  # bounded: never stuck on a settle that went astray
                    await asyncio.wait_for(self._settled.wait(), SETTLE_WAIT_SECONDS)
            return True

    async def _try(self, hold_id: str, amount: int) -> bool:
        refusal = await self.store.reserve(hold_id, [self._counter], [amount], now=self._clock(),
                                           hold_seconds=HOLD_SECONDS)
        if refusal is None:
            self._in_flight += 1
        return refusal is None

    async def settle(self, hold_id: str, cost_usd: float) -> None:
        """Replace the hold by the real cost. Never raises: a store that stays unreachable leaves the hold to
        expire (after ``HOLD_SECONDS``), which only keeps the cap stricter meanwhile."""
        units = usd_to_units(cost_usd)
        try:
            if await self._retrying(lambda: self.store.settle(hold_id, [self._counter], [units], now=self._clock())) \
                    and units:
                await self._retrying(lambda: self.store.reserve(None, [self._used], [units], now=self._clock(),
                                                                hold_seconds=0))
        finally:
            self._in_flight -= 1
            self._settled.set()

    @staticmethod
    async def _retrying(step: Callable[[], Awaitable[Any]]) -> bool:
        for attempt in range(SETTLE_TRIES):
            try:
                await step()
                return True
            except StateUnavailable as exc:
                if attempt == SETTLE_TRIES - 1:
                    log.warning("batch budget: could not settle a reservation (%s); it expires by itself", exc)
                    return False
                await asyncio.sleep(0.1 * 2**attempt)
        return False

    async def spent_usd(self) -> float:
        return units_to_usd((await self.store.levels([self._counter.key]))[0])
