"""The batch engine: lines in, results out as they complete, through the same Router the gateway uses.

Concurrency adapts (:mod:`.concurrency`), a line that fails for a passing reason (a provider's 429, a 5xx,
a timeout, a rate limit of tierroute's own) is tried again with exponential backoff, and with a budget each
try reserves what it may cost first (:mod:`.budget`). Memory is bounded by the concurrency limit: a line is
read only when there is room to send it.

Backoff before try ``n + 1``: ``min(max_backoff_seconds, backoff_seconds * 2 ** (n - 1))`` scaled by a random
factor in [0.5, 1), or the provider's Retry-After when it gave one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import (AllAttemptsFailed, LimitExceeded, RequestError, StateUnavailable, TierrouteError,
                           UpstreamError, UpstreamRateLimited)
from .budget import BatchBudget
from .concurrency import AdaptiveLimit
from .lines import BatchItem, parse_item
from .result import BatchResult, failure

if TYPE_CHECKING:
    from ..router import Router

DEFAULT_MAX_TRIES = 6
DEFAULT_BACKOFF_SECONDS = 0.5
DEFAULT_MAX_BACKOFF_SECONDS = 30.0


@dataclass(slots=True)
class EngineStats:
    retried: int = 0  # tries beyond each line's first
    rate_limited: int = 0  # 429s seen (upstream or tierroute's own rate limits)


def _items(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[BatchItem]:
    async def from_async(source: AsyncIterable[Any]) -> AsyncIterator[BatchItem]:
        n = 0
        async for obj in source:
            n += 1
            yield obj if isinstance(obj, BatchItem) else parse_item(n, obj)

    async def from_sync(source: Iterable[Any]) -> AsyncIterator[BatchItem]:
        for n, obj in enumerate(source, 1):
            yield obj if isinstance(obj, BatchItem) else parse_item(n, obj)

    return from_async(items) if isinstance(items, AsyncIterable) else from_sync(items)


def _rate_limited(exc: BaseException) -> bool:
    if isinstance(exc, UpstreamRateLimited):
        return True
    if isinstance(exc, AllAttemptsFailed):
        return any("rate_limited" in str(e) or "429" in str(e) for _, e in exc.attempts)
    return isinstance(exc, LimitExceeded)


class BatchEngine:
    def __init__(self, router: Router, *, job: str = "batch", limit: AdaptiveLimit | None = None,
                 budget: BatchBudget | None = None, max_tries: int = DEFAULT_MAX_TRIES,
                 backoff_seconds: float = DEFAULT_BACKOFF_SECONDS, max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, rng: random.Random | None = None) -> None:
        self.router = router
        self.job = job
        self.limit = limit or AdaptiveLimit()
        self.budget = budget
        self.max_tries = max(1, max_tries)
        self.stats = EngineStats()
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._baseline = router.catalog.strongest()
        self._instance = f"{self._rng.getrandbits(48):012x}"  # hold ids stay unique when a line moves between workers

    async def run(self, items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[BatchResult]:
        """Results in completion order. Closing the iterator early cancels the lines in flight."""
        done: asyncio.Queue[BatchResult | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def one(item: BatchItem) -> None:
            try:
                result = await self.process(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in one line must not stop the batch; it is reported on that line
                result = failure(item.line, item.custom_id, "internal_error", f"{type(exc).__name__}: {exc}",
                                 error_type="server_error")
            try:
                await done.put(result)
            finally:
                await self.limit.release()

        async def feed() -> None:
            try:
                async for item in _items(items):
                    await self.limit.acquire()
                    task = asyncio.create_task(one(item))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                while tasks:
                    await asyncio.gather(*list(tasks))
            finally:
                done.put_nowait(None)

        feeder = asyncio.create_task(feed())
        try:
            while True:
                result = await done.get()
                if result is None:
                    break
                yield result
            await feeder  # raises what the input iterator raised, if anything
        finally:
            for task in (feeder, *tasks):
                task.cancel()
            await asyncio.gather(feeder, *tasks, return_exceptions=True)

    def _body(self, item: BatchItem) -> dict[str, Any]:
        """The line's body, tagged with the job and carrying its custom_id as tierroute's request id, so the
        ledger and runaway protection see a re-sent line as the same request."""
        body = dict(item.body or {})
        options = body.get("tierroute")
        options = dict(options) if isinstance(options, dict) else {}
        tags = options.get("tags")
        options["tags"] = [*(tags if isinstance(tags, list) else []), f"batch:{self.job}"]
        options.setdefault("request_id", f"{self.job}:{item.custom_id}")
        body["tierroute"] = options
        return body

    async def process(self, item: BatchItem) -> BatchResult:
        """Answer one line, trying again after passing failures; never raises for the line's own errors."""
        if item.error is not None or item.body is None:
            return failure(item.line, item.custom_id, "invalid_line", item.error or "no body")
        body = self._body(item)
        try:
            ceiling = self.budget.ceiling_usd(body) if self.budget is not None else 0.0
        except TierrouteError as exc:
            return failure(item.line, item.custom_id, exc.code or "invalid_request", exc.message,
                           status_code=exc.http_status)
        tries = 0
        while True:
            tries += 1
            hold = f"{self.job}:{self._instance}:{item.line}:{tries}"
            try:
                room = self.budget is None or await self.budget.reserve(hold, ceiling)
            except StateUnavailable as exc:  # the shared store is briefly unreachable: try the line again later
                retry, wait = self._after_failure(exc, tries)
                if not retry:
                    return failure(item.line, item.custom_id, exc.code or "state_unavailable", exc.message,
                                   tries=tries - 1, status_code=exc.http_status, error_type=exc.error_type)
                self.stats.retried += 1
                await self._sleep(wait)
                continue
            if not room:
                assert self.budget is not None
                return failure(item.line, item.custom_id, "budget_exceeded",
                               f"the spend cap of ${self.budget.max_cost_usd:g} is reached: "
                               f"this line may cost up to ${ceiling:.6f}", tries=tries - 1, error_type="rate_limit_error")
            started = self._clock()
            try:
                routed = await self.router.acompletion(body)
            except BaseException as exc:
                if self.budget is not None:
                    # A failed call costs nothing; one cancelled mid-call may have been paid: count the most.
                    paid = 0.0 if isinstance(exc, TierrouteError) else ceiling
                    await asyncio.shield(self.budget.settle(hold, paid))
                if not isinstance(exc, TierrouteError):
                    raise
                if isinstance(exc, RequestError) and not isinstance(exc, LimitExceeded):
                    return failure(item.line, item.custom_id, exc.code or "invalid_request", exc.message, tries=tries,
                                   status_code=exc.http_status, error_type=exc.error_type)
                retry, wait = self._after_failure(exc, tries)
                if not retry:
                    return failure(item.line, item.custom_id, exc.code or "error", exc.message, tries=tries,
                                   status_code=exc.http_status, error_type=exc.error_type)
                self.stats.retried += 1
                await self._sleep(wait)
                continue
            cost = sum(a.cost_usd for a in routed.attempts)
            if self.budget is not None:
                await self.budget.settle(hold, cost)
            self.limit.answered(self._clock() - started)
            if any(a.error is not None and a.error.kind == "rate_limited" for a in routed.attempts):
                self.stats.rate_limited += 1
                self.limit.congested()
            return self._answered(item, routed, cost, tries)

    def _after_failure(self, exc: TierrouteError, tries: int) -> tuple[bool, float]:
        """(try again?, seconds to wait first)."""
        if isinstance(exc, LimitExceeded) and "budget" in (exc.scope or ""):
            return False, 0.0  # a configured budget is spent; trying again cannot help
        if _rate_limited(exc):
            self.stats.rate_limited += 1
            self.limit.congested()
        retryable = (isinstance(exc, (LimitExceeded, StateUnavailable, AllAttemptsFailed))
                     or (isinstance(exc, UpstreamError) and exc.retryable))
        if not retryable or tries >= self.max_tries:
            return False, 0.0
        hint = getattr(exc, "retry_after_seconds", None) or getattr(exc, "reset_seconds", None)
        backoff = min(self._max_backoff, self._backoff * 2 ** (tries - 1)) * (0.5 + self._rng.random() / 2)
        return True, min(self._max_backoff, float(hint)) if hint else backoff

    def _answered(self, item: BatchItem, routed: Any, cost: float, tries: int) -> BatchResult:
        answered = routed.attempts[-1]
        usage = answered.usage
        baseline = self._baseline.cost_usd(usage.prompt_tokens, usage.completion_tokens) if self._baseline else 0.0
        return BatchResult(line=item.line, custom_id=item.custom_id, status_code=200, response=routed.response,
                           request_id=routed.plan.request_id, model=answered.model.id, cost_usd=cost,
                           baseline_cost_usd=baseline, tries=tries)


def run_items(router: Router, items: Iterable[Any] | AsyncIterable[Any], *, concurrency: int,
              max_cost_usd: float | None = None, max_tries: int = DEFAULT_MAX_TRIES, job: str = "batch",
              store: Any = None) -> AsyncIterator[BatchResult]:
    """What :meth:`Router.batch` runs: an engine with an adaptive limit up to ``concurrency`` and, with
    ``max_cost_usd``, a hard cap over ``store`` (a fresh in-memory store unless given: pass a Redis store to
    share the cap between processes)."""
    from ..state.memory import MemoryStore

    budget = None
    if max_cost_usd is not None:
        budget = BatchBudget(store if store is not None else MemoryStore(), key=f"batch:{job}:usd",
                             max_cost_usd=max_cost_usd, catalog=router.catalog,
                             cascade=router.cascade.models if router.cascade is not None else ())
    limit = AdaptiveLimit(initial=min(8, concurrency), maximum=concurrency)
    return BatchEngine(router, job=job, limit=limit, budget=budget, max_tries=max_tries).run(items)
