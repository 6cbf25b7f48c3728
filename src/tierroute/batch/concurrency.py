"""Adaptive concurrency: how many lines are in flight, raised until the providers push back, then halved.

AIMD, as TCP does it. Start at ``initial``; each answered line adds 1 while in slow start (so the limit
doubles per round trip) and ``1/limit`` after the first congestion signal (one more per round trip). A
congestion signal halves the limit, at most once per ``cooldown_seconds`` (the 429s of one burst are one
signal), and ends slow start. Signals are: a rate limit from a provider or from tierroute's own deployment
limits (429), and latency: answers taking ``latency_factor`` times longer than the fastest recently seen
(queues building up upstream) shrink the limit by 10%, again at most once per cooldown.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

DEFAULT_INITIAL = 8
DEFAULT_MAXIMUM = 256
DEFAULT_COOLDOWN_SECONDS = 1.0
DEFAULT_LATENCY_FACTOR = 2.0
_RECENT = 16  # answers in the recent median
_SLOW = 0.01  # EWMA weight of the long-run latency
_LATENCY_FLOOR_SECONDS = 0.05  # below this, latency is the event loop's noise, not an upstream queue


class AdaptiveLimit:
    def __init__(self, *, initial: int = DEFAULT_INITIAL, maximum: int = DEFAULT_MAXIMUM, minimum: int = 1,
                 cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS, latency_factor: float = DEFAULT_LATENCY_FACTOR,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.limit = float(min(max(initial, self.minimum), self.maximum))
        self.in_flight = 0
        self.slow_start = True
        self.decreases = 0
        self._cooldown = cooldown_seconds
        self._latency_factor = latency_factor
        self._clock = clock
        self._last_decrease = -1e18
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._long_run = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.in_flight >= int(self.limit):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the slot we were given on
                raise
        self.in_flight += 1

    async def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        free = int(self.limit) - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def answered(self, latency_seconds: float) -> None:
        recent = self._recent
        recent.append(latency_seconds)
        self._long_run += _SLOW * (latency_seconds - self._long_run) if self._long_run else latency_seconds
        if len(recent) == _RECENT:
            median = sorted(recent)[_RECENT // 2]
            if (median > _LATENCY_FLOOR_SECONDS and median > self._latency_factor * self._long_run
                    and self._decrease(0.9, self._clock())):
                return
        step = 1.0 if self.slow_start else 1.0 / self.limit
        self._set(self.limit + step)

    def congested(self) -> None:
        """A 429: halve (once per cooldown) and leave slow start."""
        if self._decrease(0.5, self._clock()):
            self.slow_start = False

    def _decrease(self, factor: float, now: float) -> bool:
        if now - self._last_decrease < self._cooldown:
            return False
        self._last_decrease = now
        self.decreases += 1
        self.slow_start = False
        self._set(self.limit * factor)
        return True

    def _set(self, value: float) -> None:
        grew = int(value) > int(self.limit)
        self.limit = min(max(value, float(self.minimum)), float(self.maximum))
        if grew:
            self._wake()
