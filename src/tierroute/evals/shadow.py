"""The evaluator: samples answered requests, replays them off the request path to the other arm, judges the
pair, records the judgment and feeds the quality guard.

The request path only calls ``steer`` (a dict test), ``offer`` / ``collector`` (a sampling draw; a queue put
when taken) and ``feedback``. Everything else runs in tasks on the router's event loop, started with the first
request and cancelled by ``aclose``. The queue is bounded: a full queue drops the sample and counts it. A
reference or judge call that fails, times out or answers garbage is a counted skip, never the caller's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from .._exceptions import ConfigError
from ..catalog import Catalog
from ..chat_request import upstream_body
from ..ledger.base import Judgment, Ledger
from ..reliability.dispatch import Attempt, Dispatcher
from ..types import Decision, JSONDict, Ranked
from .guard import QualityGuard
from .judges import SCORE, Answer, ChecksJudge, Judge, Pair, PairwiseJudge, Verdict
from .metrics import EvalMetrics
from .sampler import Sampler, route_scope
from .settings import EvalsSettings
from .store import GuardStore, MemoryGuardStore

log = logging.getLogger("tierroute.evals")

# Fields of the caller's body that must not reach a replay: it is never streamed, and asks one answer.
_NOT_REPLAYED = frozenset({"stream", "stream_options", "n"})
RECENT_ROUTES = 10_000  # request id -> route labels, so feedback can name the route; bounded


@dataclass(slots=True)
class Sample:
    request_id: str
    route: str
    body: JSONDict
    served: Answer
    shadow_model: str          # the arm to replay
    served_is_reference: bool  # a shifted route: the caller got the reference, the shadow replays the cheap model
    ts: float


class StreamCollector:
    """Assembles a sampled stream's answer from its chunks; ``finish`` offers it once the stream is complete."""

    __slots__ = ("_evaluator", "_plan", "_route", "_parts", "_calls")

    def __init__(self, evaluator: Evaluator, plan: Any, route: str) -> None:
        self._evaluator, self._plan, self._route = evaluator, plan, route
        self._parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, chunk: JSONDict) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self._parts.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = self._calls.setdefault(call.get("index", 0), {"id": None, "type": "function",
                                                                     "function": {"name": "", "arguments": ""}})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""

    def finish(self, answered_model: str) -> None:
        calls = tuple(self._calls[i] for i in sorted(self._calls))
        self._evaluator._enqueue(self._plan, self._route, answered_model, "".join(self._parts), calls)


class Evaluator:
    def __init__(self, settings: EvalsSettings, *, catalog: Catalog, dispatcher: Dispatcher, ledger: Ledger | None,
                 registry: CollectorRegistry, store: GuardStore | None = None, judges: list[Judge] | None = None,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.catalog = catalog
        self._dispatcher = dispatcher
        self._ledger = ledger
        self._clock = clock
        self.metrics = EvalMetrics(registry)
        self.store = store or MemoryGuardStore()
        self.guard = QualityGuard(settings.guard, self.store)
        self._check_models()
        judge_model = settings.judge_model or self._strongest_id()
        self.judges: list[Judge] = judges if judges is not None else [
            ChecksJudge(), PairwiseJudge(judge_model, self.call_model, rubric=settings.rubric,
                                         max_chars=settings.max_answer_chars)]
        self.sampler = Sampler(settings, rng=rng or random.Random(), clock=clock)
        self._queue: asyncio.Queue[Sample] = asyncio.Queue(maxsize=settings.queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._recent: OrderedDict[str, tuple[str, str | None, str]] = OrderedDict()
        self.queued = 0     # samples accepted into the queue
        self.processed = 0  # of those, judged or skipped
        self.dropped = 0    # samples refused because the queue was full
        self.skipped: dict[str, int] = {}

    def _check_models(self) -> None:
        for field in ("reference_model", "judge_model"):
            name = getattr(self.settings, field)
            if name is None:
                continue
            spec = self.catalog.models.get(name)
            if spec is None or spec.mode != "chat":
                raise ConfigError(f"evals.{field}: {name!r} is not an available chat model (unknown model, or its "
                                  f"provider is not configured)", param=f"evals.{field}")
        if self._strongest_id() is None:
            raise ConfigError("evals.enabled: there is no chat model to judge with", param="evals.enabled")

    def _strongest_id(self) -> str | None:
        strongest = self.catalog.strongest()
        return strongest.id if strongest is not None else None

    # -- the request path ---------------------------------------------------------------------------------
    def steer(self, resolved_as: str, decision: Decision) -> Decision:
        if not self._tasks:
            self._start()
        if not self.guard.any_shifted:
            return decision
        scope = route_scope(resolved_as)
        return decision if scope is None else self.guard.steer(scope, decision)

    def _route(self, plan: Any, answered_model: str) -> str | None:
        return _route_of(plan.resolved_as, plan.decision.details.get("quality_route"), answered_model)

    def offer(self, plan: Any, answered_model: str, response: JSONDict) -> None:
        """A non-streamed answer: sample it, maybe. Unsampled requests cost a draw and a dict insertion."""
        self._remember(plan, answered_model)
        route = self.sampler.take(lambda: self._route(plan, answered_model), plan.features)
        if route is None:
            return
        message = ((response.get("choices") or [{}])[0] or {}).get("message") or {}
        content = message.get("content")
        self._enqueue(plan, route, answered_model, content if isinstance(content, str) else "",
                      tuple(message.get("tool_calls") or ()))

    def collector(self, plan: Any, answering_model: str) -> StreamCollector | None:
        """A stream: a collector for its chunks when sampled (decided as it starts), else None."""
        self._remember(plan, answering_model)
        route = self.sampler.take(lambda: self._route(plan, answering_model), plan.features)
        return None if route is None else StreamCollector(self, plan, route)

    def _remember(self, plan: Any, answered_model: str) -> None:
        """What feedback needs to name the request's route later (computed then, not on every request)."""
        recent = self._recent  # labels only: the prompt is not kept for this
        recent[plan.request_id] = (plan.resolved_as, plan.decision.details.get("quality_route"), answered_model)
        if len(recent) > RECENT_ROUTES:
            recent.popitem(last=False)

    def _enqueue(self, plan: Any, route: str, answered_model: str, text: str, calls: tuple[JSONDict, ...]) -> None:
        cheap = plan.decision.details.get("quality_from")
        if cheap is not None:  # a shifted route: judge the cheap model against what the caller got
            shadow, served_is_reference = cheap, True
        else:
            shadow, served_is_reference = self._reference_for(plan), False
        if shadow is None or shadow == answered_model:
            return  # the routed arm is the reference: nothing to compare
        body = {k: v for k, v in plan.body.items() if k not in _NOT_REPLAYED}
        sample = Sample(request_id=plan.request_id, route=route, body=body,
                        served=Answer(model=answered_model, text=text, tool_calls=calls), shadow_model=shadow,
                        served_is_reference=served_is_reference, ts=self._clock())
        try:
            self._queue.put_nowait(sample)
        except asyncio.QueueFull:
            self.dropped += 1
            self.metrics.samples.labels(route, "dropped").inc()
            return
        self.queued += 1
        self.metrics.samples.labels(route, "queued").inc()

    def _reference_for(self, plan: Any) -> str | None:
        if self.settings.reference_model is not None:
            return self.settings.reference_model
        strongest = self.catalog.strongest([r.model for r in plan.decision.ranked])
        return strongest.id if strongest is not None else None

    def feedback(self, request_id: str, score: float) -> None:
        """User feedback (``/v1/feedback``) as a third signal: a judgment row on the request's route."""
        if self._ledger is None:
            return
        seen = self._recent.get(request_id)
        route = _route_of(*seen) if seen is not None else None
        routed = seen[2] if seen is not None else None
        self._ledger.record_judgment(Judgment(
            request_id=request_id, ts=self._clock(), route=route, routed_model=routed, reference_model=None,
            judge="feedback", verdict="good" if score >= 0.5 else "bad", detail=orjson.dumps({"score": score}).decode()))
        self.metrics.judgments.labels(route or "unknown", "feedback", "good" if score >= 0.5 else "bad").inc()

    # -- off the request path -----------------------------------------------------------------------------
    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(), name=f"tierroute-evals-{i}")
                       for i in range(self.settings.concurrency)]
        if not isinstance(self.store, MemoryGuardStore):
            self._tasks.append(loop.create_task(self._refresh(), name="tierroute-evals-refresh"))

    async def _refresh(self) -> None:
        """Adopt the guard states other replicas decided."""
        while True:
            try:
                states = await self.guard.refresh()
                for route, state in states.items():
                    self.metrics.degraded.labels(route).set(1 if state.get("phase") == "degraded" else 0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a store outage keeps the last known states
                log.warning("quality guard: cannot read the shared states: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.settings.guard.refresh_seconds)

    async def _work(self) -> None:
        while True:
            sample = await self._queue.get()
            try:
                await self.evaluate(sample)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - evaluation never takes the router down
                log.exception("evaluation of %s failed", sample.request_id)
                self._skip(sample, f"error: {type(exc).__name__}", 0.0, 0.0)
            finally:
                self.processed += 1
                self._queue.task_done()

    async def drain(self, timeout_seconds: float = 30.0) -> None:
        """Wait until every queued sample is judged (tests, benchmarks, a clean shutdown)."""
        if not self._tasks:
            self._start()
        await asyncio.wait_for(self._queue.join(), timeout_seconds)

    async def quality(self, since_ts: float | None = None) -> list[Any]:
        """Per-route figures (``report.RouteQuality``): the ledger's judgments and the guard's shared states."""
        from .report import route_quality

        judgments = await asyncio.to_thread(self._ledger.judgments, since_ts) if self._ledger is not None else []
        guard = self.settings.guard
        return route_quality(judgments, await self.store.states(), margin=guard.margin, confidence=guard.confidence)

    def _day(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self._clock()))

    async def evaluate(self, sample: Sample) -> Verdict | None:
        day = self._day()
        if await self.store.spend(day) >= self.settings.max_usd_per_day:
            self._skip(sample, "budget", 0.0, 0.0)
            return None
        try:
            shadow = await self.call_model(sample.shadow_model, sample.body)
        except Exception as exc:  # noqa: BLE001 - the shadow arm failing is a skip
            self._skip(sample, f"shadow call failed: {type(exc).__name__}", 0.0, 0.0)
            return None
        routed, reference = (shadow, sample.served) if sample.served_is_reference else (sample.served, shadow)
        pair = Pair(request_id=sample.request_id, route=sample.route, body=sample.body, routed=routed,
                    reference=reference)
        verdict = Verdict("none", None, skipped="no judge decided")
        judge_cost = 0.0
        for judge in self.judges:
            verdict = await judge.judge(pair)
            judge_cost += verdict.cost_usd
            if verdict.outcome is not None or verdict.skipped is not None:
                break
        total = await self.store.add_spend(day, shadow.cost_usd + judge_cost)
        self.metrics.spend.labels("reference").inc(shadow.cost_usd)
        self.metrics.spend.labels("judge").inc(judge_cost)
        if verdict.outcome is None:
            self._skip(sample, verdict.skipped or "undecided", judge_cost, shadow.cost_usd, pair, verdict)
            return verdict
        self._record(pair, verdict.judge, verdict.outcome, judge_cost, shadow.cost_usd, verdict.detail)
        self.metrics.judgments.labels(sample.route, verdict.judge.split(":")[0], verdict.outcome).inc()
        if self.settings.guard.action != "off":
            transition = await self.guard.observe(sample.route, SCORE[verdict.outcome], reference.model,
                                                  now=self._clock())
            if transition is not None:
                self.metrics.transitions.labels(sample.route, transition.phase).inc()
                self.metrics.degraded.labels(sample.route).set(1 if transition.phase == "degraded" else 0)
                self._record(pair, "guard", "degraded" if transition.phase == "degraded" else "restored", 0.0, 0.0,
                             {"reason": transition.reason, "action": self.settings.guard.action,
                              "target": transition.state.get("target")})
        log.debug("evaluation spend today: %.6f USD", total)
        return verdict

    async def call_model(self, model_id: str, body: JSONDict) -> Answer:
        """One call to a catalog model through the router's dispatcher (so failover applies), charged to the
        evaluation budget only: it passes no guard and records no request row."""
        spec = self.catalog.models[model_id]
        decision = Decision(ranked=(Ranked(model=spec, expected_cost_usd=0.0, predicted_quality=None),),
                            reason="evaluation", policy="evals")
        attempts: list[Attempt] = []
        try:
            completion = await self._dispatcher.complete(
                decision, lambda model, deployment: upstream_body(body, deployment.upstream), attempts,
                timeout_seconds=self.settings.timeout_seconds)
        finally:
            cost = sum(a.cost_usd for a in attempts)
        message = ((completion.response.get("choices") or [{}])[0] or {}).get("message") or {}
        content = message.get("content")
        return Answer(model=model_id, text=content if isinstance(content, str) else "",
                      tool_calls=tuple(message.get("tool_calls") or ()), cost_usd=cost)

    def _skip(self, sample: Sample, reason: str, judge_cost: float, reference_cost: float,
              pair: Pair | None = None, verdict: Verdict | None = None) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.metrics.skipped.labels(reason.split(":")[0]).inc()
        if self._ledger is None:
            return
        routed = sample.served.model if not sample.served_is_reference else sample.shadow_model
        reference = sample.shadow_model if not sample.served_is_reference else sample.served.model
        detail = {"reason": reason, **(verdict.detail if verdict is not None else {})}
        self._ledger.record_judgment(Judgment(
            request_id=sample.request_id, ts=self._clock(), route=sample.route, routed_model=routed,
            reference_model=reference, judge=verdict.judge if verdict is not None else "none", verdict="skipped",
            judge_cost_usd=judge_cost, reference_cost_usd=reference_cost, detail=orjson.dumps(detail).decode()))

    def _record(self, pair: Pair, judge: str, verdict: str, judge_cost: float, reference_cost: float,
                detail: dict[str, Any]) -> None:
        if self._ledger is None:
            return
        if self.settings.store_prompts:
            detail = {**detail, "messages": pair.body.get("messages"), "routed_answer": pair.routed.text,
                      "reference_answer": pair.reference.text}
        self._ledger.record_judgment(Judgment(
            request_id=pair.request_id, ts=self._clock(), route=pair.route, routed_model=pair.routed.model,
            reference_model=pair.reference.model, judge=judge, verdict=verdict, judge_cost_usd=judge_cost,
            reference_cost_usd=reference_cost, detail=orjson.dumps(detail).decode() if detail else None))

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.store.aclose()


def _route_of(resolved_as: str, shifted_route: str | None, answered_model: str) -> str | None:
    """A request's route: the guard's (when it shifted the request), else scope/model; None when not routed."""
    if shifted_route is not None:
        return shifted_route
    scope = route_scope(resolved_as)
    return None if scope is None else f"{scope}/{answered_model}"


def build_evaluator(settings: Any, *, catalog: Catalog, dispatcher: Dispatcher, ledger: Ledger | None,
                    registry: CollectorRegistry) -> Evaluator:
    """The evaluator for the router's settings: its guard state shared through Redis when the limits store is."""
    store: GuardStore | None = None
    state = settings.limits.state
    if state.backend == "redis":
        from .store import RedisGuardStore

        store = RedisGuardStore(state.url, prefix=state.prefix, timeout_seconds=max(state.timeout_seconds, 1.0))
    return Evaluator(settings.evals, catalog=catalog, dispatcher=dispatcher, ledger=ledger, registry=registry,
                     store=store)


__all__ = ["Evaluator", "Sample", "StreamCollector", "build_evaluator"]
