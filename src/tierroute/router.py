"""The facade: decide -> guard -> call -> record. Wiring only; every step lives in its own module.

The server and the library both go through :class:`Router`, so they behave identically.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._exceptions import ConfigError, InvalidRequest, TierrouteError, UpstreamError
from ._sync import LoopThread
from .cascade.runtime import Cascade
from .catalog import AUTO, Catalog
from .chat_request import parse_chat_request, upstream_body
from .config import Settings
from .embeddings_request import parse_embeddings_request, upstream_embeddings_body
from .guards import Guard
from .journal import Journal
from .ledger.base import Feedback, Ledger
from .metering import StreamUsage, response_usage
from .metrics import Metrics
from .observability.observer import Observer, build_observer
from .recording import Recorder
from .policies import Policy, build_router_policy, expected_cost_usd, screen
from .providers import Provider, build_provider
from .providers.base import Completion, EmbeddingProvider
from .reliability.dispatch import Attempt, Dispatcher
from .tokens import preload as preload_tokenizer
from .types import EMPTY_STATE, Decision, Deployment, JSONDict, ModelSpec, Ranked, RequestFeatures, StateSnapshot, Usage


@dataclass(frozen=True, slots=True)
class Plan:
    """A routing decision for one request, before any upstream call."""

    request_id: str
    body: JSONDict
    features: RequestFeatures
    decision: Decision
    resolved_as: str
    rejected: tuple[tuple[str, str], ...] = ()
    intent: Any = None


@dataclass(slots=True)
class Routed:
    """A complete answer plus what the router did."""

    response: JSONDict
    headers: dict[str, str]
    plan: Plan
    attempts: list[Attempt]
    cost_usd: float


@dataclass(slots=True)
class RoutedStream:
    """A streamed answer: ``headers`` are known before the first chunk; iterate ``chunks``, then ``aclose()``.

    ``aclose()`` is safe whether or not ``chunks`` was iterated: a stream dropped before its first chunk still
    frees its upstream connection, is recorded as cancelled, and releases its budget reservation.
    """

    headers: dict[str, str]
    plan: Plan
    chunks: AsyncGenerator[JSONDict, None]
    attempts: list[Attempt] = field(default_factory=list)
    _close_unstarted: Callable[[], Awaitable[None]] | None = None

    async def aclose(self) -> None:
        close, self._close_unstarted = self._close_unstarted, None
        if close is not None:
            await close()
        await self.chunks.aclose()


def new_request_id() -> str:
    """96 random bits, as hex. The random module reseeds itself in forked workers; unlike uuid4 this makes
    no getrandom syscall per request, which showed up at ~7% of the gateway's CPU under load."""
    return f"chatcmpl-tr-{random.getrandbits(96):024x}"


def _merge_states(states: Sequence[StateSnapshot | None]) -> StateSnapshot:
    present = [s for s in states if s is not None]
    if not present:
        return EMPTY_STATE
    top = max(present, key=lambda s: s.budget_pressure)
    unavailable = frozenset().union(*(s.unavailable for s in present))
    return replace(top, unavailable=unavailable)


class Router:
    """Routes OpenAI-shaped chat requests. Use ``async with Router(settings)`` or call ``aclose()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        providers: Mapping[str, Provider] | None = None,
        policy: Policy | None = None,
        ledger: Ledger | None = None,
        guards: Sequence[Guard] = (),
        dispatcher: Dispatcher | None = None,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        request_id: Callable[[], str] = new_request_id,
        journal: Journal | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog.build(settings)
        self.providers: Mapping[str, Provider] = providers or {
            name: build_provider(name, p) for name, p in settings.providers.items()
        }
        chat_models = [m for m in self.catalog.models.values() if m.mode == "chat"]
        self.policy = policy or build_router_policy(settings.router, chat_models)
        self.ledger = ledger
        self.journal = journal  # shared by the ledger and the guards; the router only closes it and adopts
        self.guards = tuple(guards)
        self.intents = self._build_intents(settings)
        self.dispatcher = dispatcher or Dispatcher(self.providers, self.catalog, settings=settings.reliability,
                                                   provider_settings=settings.providers, clock=clock,
                                                   limiter=self._deployment_limiter())
        self.metrics = Metrics()
        self.metrics.watch(breakers=self._breaker_states, budgets=self._budget_levels)
        # Access log and traces (observability/): None when both are off, and then no hook below does anything.
        self.observer: Observer | None = build_observer(settings.server.access_log, settings.telemetry)
        if self.observer is not None and self.observer.tracing is not None:
            self.dispatcher.on_attempt = self.observer.attempt_started
        self.evals = None  # continuous evaluation (tierroute.evals), when evals.enabled
        if settings.evals.enabled:
            from .evals.shadow import build_evaluator

            self.evals = build_evaluator(settings, catalog=self.catalog, dispatcher=self.dispatcher, ledger=ledger,
                                         registry=self.metrics.registry)
        self._clock = clock
        self._wall = wall_clock
        self._request_id = request_id
        self._recorder = Recorder(metrics=self.metrics, ledger=ledger, journal=journal, observer=self.observer,
                                  baseline=self.catalog.strongest(), store_prompts=settings.ledger.store_prompts,
                                  clock=clock, wall_clock=wall_clock)
        preload_tokenizer()  # the tokenizer's vocabularies load in the background, never on a request
        embedding_default = settings.router.default_embedding_model
        if embedding_default is not None:
            spec = self.catalog.models.get(embedding_default)
            if spec is None or spec.mode != "embedding":
                raise ConfigError(f"router.default_embedding_model: {embedding_default!r} is not an available embedding "
                                  "model (give it 'mode: embedding' under models:, and configure its provider)")
        self.cascade = Cascade.build(settings.router.cascade, self.catalog)  # None unless router.cascade.enabled
        self._sync = LoopThread()
        # An encoder-backed learned policy embeds the prompt before deciding, off the event loop; others: None.
        self._prepare = getattr(self.policy, "prepare", None)

    def _deployment_limiter(self) -> Any:
        """The guard enforcing ``limits.deployments``, if any; each of its ids must name a deployment."""
        for guard in self.guards:
            limited = getattr(guard, "limited_deployments", frozenset())
            if not limited:
                continue
            known = {dep.id for deps in self.catalog.deployments.values() for dep in deps}
            unknown = sorted(limited - known)
            if unknown:
                raise ConfigError(f"limits.deployments: unknown deployment {', '.join(map(repr, unknown))}; "
                                  f"deployment ids: {', '.join(sorted(known)) or 'none'}", param="limits.deployments")
            return guard
        return None

    def _breaker_states(self) -> list[tuple[str, str]]:
        health = self.dispatcher.health
        return [(dep.id, health.state(dep.id)) for deps in self.catalog.deployments.values() for dep in deps]

    def _budget_levels(self) -> list[tuple[str, str, str, str, float]]:
        return [level for guard in self.guards for level in getattr(guard, "budget_remaining", list)()]

    @staticmethod
    def _build_intents(settings: Settings) -> Any:
        if not settings.intents.routes:
            return None
        from .policies.intents import IntentClassifier

        return IntentClassifier.from_settings(settings.intents)

    # -- deciding ------------------------------------------------------------------------------------
    async def plan(self, body: JSONDict, *, caller: str | None = None, request_id: str | None = None) -> Plan:
        """Validate the request and decide who should answer it, without calling anyone."""
        features = parse_chat_request(body, caller=caller)
        candidates, resolved_as = self.catalog.resolve(features.requested_model)
        intent = None
        if features.requested_model == AUTO and self.intents is not None:
            intent = self.intents.classify(features.text)
            if intent.match is not None:
                candidates = self._intent_candidates(intent) or candidates
                resolved_as = f"intent {intent.match} ({intent.scores[intent.match]:.2f})"
        state = await self._snapshot(features, body) if self.guards else EMPTY_STATE
        if features.max_cost_usd is None and state.extra.get("max_cost_usd") is not None:
            features = replace(features, max_cost_usd=state.extra["max_cost_usd"])  # the key's default ceiling
        runaway = state.extra.get("runaway")
        if runaway:
            candidates, resolved_as = tuple(m for m in self.catalog.models.values() if m.mode == "chat"), "runaway"
        eligible, rejected = screen(features, candidates, state)
        if resolved_as == "requested":
            model = eligible[0]
            decision = Decision(
                ranked=(Ranked(model=model, expected_cost_usd=expected_cost_usd(features, model), predicted_quality=model.quality),),
                reason="requested", policy="none")
        else:
            if self._prepare is not None:
                features = await self._prepare(features)
            decision = self.policy.decide(features, eligible, state)
            decision = self._shift_for_limits(replace(decision, reason=f"{resolved_as}: {decision.reason}"), state, runaway)
            if self.evals is not None:
                decision = self.evals.steer(resolved_as, decision)  # the quality guard's shifted routes
        return Plan(request_id=request_id or self._request_id(), body=body, features=features,
                    decision=decision, resolved_as=resolved_as, rejected=rejected, intent=intent)

    def _intent_candidates(self, intent: Any) -> tuple[ModelSpec, ...]:
        if intent.models:
            return tuple(self.catalog.models[m] for m in intent.models if m in self.catalog.models)
        if intent.tier:
            return self.catalog.tiers.get(intent.tier, ())
        return ()

    # -- answering -----------------------------------------------------------------------------------
    async def acompletion(self, body: JSONDict, *, caller: str | None = None, started: float | None = None) -> Routed:
        """Route and answer a non-streamed request."""
        started = self._clock() if started is None else started
        plan, tokens = await self._plan_and_admit(body, caller, started)
        timeout = plan.features.timeout_seconds or self.settings.reliability.request_timeout_seconds
        attempts: list[Attempt] = []
        body_for = self._body_for(plan)
        cascaded = None
        cascading = self.cascade is not None and self.cascade.applies(plan.features, plan.resolved_as)
        try:
            if cascading:
                assert self.cascade is not None
                completion, cascaded = await self.cascade.complete(self.dispatcher, plan.decision, plan.features,
                                                                   body_for, attempts, timeout)
            else:
                completion = await self.dispatcher.complete(plan.decision, body_for, attempts,
                                                            features=plan.features, timeout_seconds=timeout)
        except UpstreamError as exc:
            exc.request_id = plan.request_id
            self._recorder.attempts(plan, attempts, started, error=exc, cascade=cascading)
            await self._settle(tokens, attempts, ok=False)
            raise
        except BaseException as exc:
            await self._abandoned(plan, attempts, started, tokens, exc)
            raise
        answered = attempts[-1]
        if answered.usage.prompt_tokens == 0 and answered.usage.completion_tokens == 0:  # no usage: count the answer
            answered.usage = response_usage(plan.features, answered.model, completion.response)
        overhead = self._overhead_ms(started, attempts)
        self._recorder.attempts(plan, attempts, started, overhead_ms=overhead, cascade=cascading)
        await self._settle(tokens, attempts, ok=True)
        if self.evals is not None:
            self.evals.offer(plan, answered.model.id, completion.response)  # maybe sampled; never waits
        cost = answered.cost_usd  # after the recorder, which bounds the provider's usage
        if cascaded is not None:  # the caller pays for every answer the cascade asked for
            cost = sum(a.cost_usd for a in attempts)
        headers = self._headers(plan, answered, cost, overhead, attempts)
        if cascaded is not None:
            headers["x-tierroute-cascade"] = cascaded
        return Routed(response=completion.response, headers=headers, plan=plan, attempts=attempts, cost_usd=cost)

    async def aembedding(self, body: JSONDict, *, caller: str | None = None, started: float | None = None) -> Routed:
        """Answer an OpenAI embeddings request from the model it names (or ``router.default_embedding_model``).

        Embeddings of different models live in different vector spaces, so there is no routing between models:
        failover stays among that model's deployments. Limits, budgets and the ledger apply as for chat."""
        started = self._clock() if started is None else started
        request_id = self._request_id()
        plan: Plan | None = None
        try:
            features = parse_embeddings_request(body, caller=caller)
            model = self.catalog.resolve_embedding(features.requested_model, self.settings.router.default_embedding_model)
            if not isinstance(self.providers.get(model.provider), EmbeddingProvider):
                raise InvalidRequest(f"model {model.id!r}: provider {model.provider!r} has no embeddings endpoint",
                                     param="model")
            ranked = Ranked(model=model, expected_cost_usd=model.cost_usd(features.prompt_tokens, 0), predicted_quality=None)
            reason = "requested" if features.requested_model == model.id else "router.default_embedding_model"
            plan = Plan(request_id=request_id, body=body, features=features,
                        decision=Decision(ranked=(ranked,), reason=reason, policy="none"), resolved_as=reason)
            tokens = await self._admit(plan)
        except TierrouteError as exc:
            self._refused(request_id, body, caller, plan, exc, started)
            raise
        attempts: list[Attempt] = []
        try:
            completion = await self.dispatcher.complete(
                plan.decision, lambda m, deployment: upstream_embeddings_body(body, deployment.upstream), attempts,
                features=features, timeout_seconds=self.settings.reliability.request_timeout_seconds, call=_embed)
        except UpstreamError as exc:
            exc.request_id = plan.request_id
            self._recorder.attempts(plan, attempts, started, error=exc)
            await self._settle(tokens, attempts, ok=False)
            raise
        except BaseException as exc:
            await self._abandoned(plan, attempts, started, tokens, exc)
            raise
        answered = attempts[-1]
        overhead = self._overhead_ms(started, attempts)
        self._recorder.attempts(plan, attempts, started, overhead_ms=overhead)
        await self._settle(tokens, attempts, ok=True)
        headers = self._headers(plan, answered, answered.cost_usd, overhead, attempts)
        return Routed(response=completion.response, headers=headers, plan=plan, attempts=attempts,
                      cost_usd=answered.cost_usd)

    async def astream(self, body: JSONDict, *, caller: str | None = None, started: float | None = None) -> RoutedStream:
        """Route a streamed request. The first chunk is fetched before returning, so routing and upstream
        errors raise here (where failover is still possible) rather than inside the stream."""
        started = self._clock() if started is None else started
        plan, tokens = await self._plan_and_admit(body, caller, started)
        timeout = plan.features.timeout_seconds or self.settings.reliability.request_timeout_seconds
        attempts: list[Attempt] = []
        include_usage = bool((plan.body.get("stream_options") or {}).get("include_usage"))
        upstream = self.dispatcher.stream(plan.decision, self._body_for(plan), attempts, features=plan.features,
                                          timeout_seconds=timeout)
        try:
            first = await upstream.__anext__()
        except StopAsyncIteration:
            first = None
        except UpstreamError as exc:
            exc.request_id = plan.request_id
            self._recorder.attempts(plan, attempts, started, error=exc)
            await self._settle(tokens, attempts, ok=False)
            raise
        except BaseException as exc:
            await upstream.aclose()  # type: ignore[attr-defined]
            await self._abandoned(plan, attempts, started, tokens, exc)
            raise
        overhead = self._overhead_ms(started, attempts)
        answered = attempts[-1]
        estimate = answered.model.cost_usd(plan.features.prompt_tokens, 0)
        headers = self._headers(plan, answered, estimate, overhead, attempts)
        relay_started = [False]
        chunks = self._relay(plan, upstream, first, attempts, started, overhead, include_usage, tokens, relay_started)

        async def close_unstarted() -> None:
            if relay_started[0]:
                return  # the relay's own cleanup records and settles
            await upstream.aclose()  # type: ignore[attr-defined]
            self._recorder.attempts(plan, attempts, started, overhead_ms=overhead, status="cancelled")
            await self._settle(tokens, attempts, ok=False)

        return RoutedStream(headers=headers, plan=plan, chunks=chunks, attempts=attempts,
                            _close_unstarted=close_unstarted)

    async def _relay(self, plan: Plan, upstream: AsyncIterator[JSONDict], first: JSONDict | None,
                     attempts: list[Attempt], started: float, overhead: float, include_usage: bool,
                     tokens: list[Any], relay_started: list[bool]) -> AsyncGenerator[JSONDict, None]:
        relay_started[0] = True
        error: BaseException | None = None
        used = StreamUsage(plan.features, attempts[-1].model)
        sampled = self.evals.collector(plan, attempts[-1].model.id) if self.evals is not None else None
        try:
            chunk = first
            while chunk is not None:
                used.observe(chunk)
                if sampled is not None:
                    sampled.add(chunk)
                if used.reported is not None:
                    attempts[-1].usage = used.reported
                if tokens:
                    await self._meter(tokens, attempts[-1], used.completion_tokens)
                if include_usage or chunk.get("choices") or not chunk.get("usage"):
                    yield chunk
                try:
                    chunk = await upstream.__anext__()
                except StopAsyncIteration:
                    chunk = None
            if used.reported is None:
                attempts[-1].usage = used.final()
                if include_usage:  # the server ignored include_usage: the client still gets its usage chunk
                    yield used.usage_chunk(attempts[-1].usage)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await upstream.aclose()  # type: ignore[attr-defined]  # frees the deployment's in-flight slot now
            answered = attempts[-1]
            if used.reported is None and not answered.usage.estimated:
                answered.usage = used.final()  # cut or cancelled: still charge what was streamed
            upstream_error = error if isinstance(error, UpstreamError) else None
            # The caller going away (the generator closed or cancelled, its socket gone) is a cancellation;
            # anything else that ended the stream early (a guard's LimitExceeded, a bug) is an error.
            status = None if error is None or upstream_error is not None else (
                "cancelled" if isinstance(error, (GeneratorExit, asyncio.CancelledError, OSError)) else "error")
            self._recorder.attempts(plan, attempts, started, error=upstream_error, overhead_ms=overhead, status=status)
            await self._settle(tokens, attempts, ok=error is None)
            if sampled is not None and error is None:
                sampled.finish(answered.model.id)

    async def _abandoned(self, plan: Plan, attempts: list[Attempt], started: float, tokens: list[Any],
                         exc: BaseException) -> None:
        """Record and settle a request that ended before any answer reached the caller, other than by an
        upstream error: cancelled (the caller went away, or the server is stopping), or an unexpected error.

        A cancelled attempt was sent the prompt, which the provider most likely processed, so it is charged the
        prompt's estimate and no completion (none was received), and the budget is settled for that.
        """
        status = "error" if isinstance(exc, Exception) else "cancelled"
        if status == "cancelled" and attempts and attempts[-1].usage.prompt_tokens == 0:
            attempts[-1].usage = Usage(plan.features.prompt_tokens, attempts[-1].usage.completion_tokens)
        self._recorder.attempts(plan, attempts, started, status=status)
        await self._settle(tokens, attempts, ok=False)

    # -- helpers -------------------------------------------------------------------------------------
    def _body_for(self, plan: Plan) -> Callable[[ModelSpec, Deployment], JSONDict]:
        def body_for(model: ModelSpec, deployment: Deployment) -> JSONDict:
            return upstream_body(plan.body, deployment.upstream)
        return body_for

    async def _plan_and_admit(self, body: JSONDict, caller: str | None, started: float) -> tuple[Plan, list[Any]]:
        """The request id is assigned first, so a refusal (bad request, no model fits, a budget) carries it and
        is recorded like any answered request."""
        request_id = self._request_id()
        plan: Plan | None = None
        try:
            plan = await self.plan(body, caller=caller, request_id=request_id)
            return plan, await self._admit(plan)
        except TierrouteError as exc:
            self._refused(request_id, body, caller, plan, exc, started)
            raise

    def _refused(self, request_id: str, body: Any, caller: str | None, plan: Plan | None, exc: TierrouteError,
                 started: float) -> None:
        """A request refused before any upstream call: the error carries its id, and it is counted, recorded
        and logged like any answered request."""
        exc.request_id = request_id
        self.metrics.refused(exc.code or "error")
        self._recorder.refusal(request_id, body, caller, plan, exc, started)
        if self.observer is not None:
            self.observer.refused(exc)

    async def _snapshot(self, features: RequestFeatures, body: JSONDict) -> StateSnapshot:
        return _merge_states([await guard.snapshot(features, body) for guard in self.guards])

    @staticmethod
    def _shift_for_limits(decision: Decision, state: StateSnapshot, runaway: str | None) -> Decision:
        """Cheapest eligible candidate first when a budget nears its limit or a caller is looping; says so."""
        threshold = state.extra.get("pressure_threshold")
        if not runaway and (threshold is None or state.budget_pressure < threshold):
            return decision
        ranked = tuple(sorted(decision.ranked, key=lambda r: r.expected_cost_usd))
        before, after = decision.chosen.model.id, ranked[0].model.id
        why = (f"runaway, {runaway}" if runaway else
               f"budget pressure: {state.budget_scope} at {state.budget_pressure:.0%} (>= {threshold:.0%})")
        change = f"shifted from {before} to cheaper {after}" if after != before else f"{after} is already the cheapest"
        return replace(decision, ranked=ranked, reason=f"{why}: {change}; {decision.reason}",
                       details={**decision.details, "budget_pressure": state.budget_pressure, "limits_shift": why})

    async def _meter(self, tokens: list[Any], attempt: Attempt, completion: int) -> None:
        """The stream hook: guards may reserve more as a stream grows, or cut it by raising LimitExceeded."""
        for guard, token in tokens:
            await guard.meter(token, attempt.model, completion)

    async def _admit(self, plan: Plan) -> list[Any]:
        tokens: list[Any] = []
        try:
            for guard in self.guards:
                tokens.append((guard, await guard.admit(plan.features, plan.decision, plan.request_id)))
        except BaseException:  # refused, or cancelled mid-admission: release what was already reserved
            for guard, token in tokens:
                await guard.settle(token, cost_usd=0.0, usage=Usage(), ok=False)
            raise
        return tokens

    async def _settle(self, tokens: list[Any], attempts: list[Attempt], *, ok: bool) -> None:
        cost = sum(a.cost_usd for a in attempts)
        usage = Usage(sum(a.usage.prompt_tokens for a in attempts), sum(a.usage.completion_tokens for a in attempts))
        for guard, token in tokens:
            await guard.settle(token, cost_usd=cost, usage=usage, ok=ok)
        if tokens and self.journal is not None:
            # A settlement the store did not take (Redis down) must be in the journal before the answer leaves:
            # that path does not yield to the loop, whose end-of-iteration write would come after the response.
            self.journal.flush()

    def _overhead_ms(self, started: float, attempts: list[Attempt]) -> float:
        """Router time before the first attempt and after the answer's first token. The dispatch window
        between them (upstream time, backoff waits) is the providers', not ours."""
        now = self._clock()
        if not attempts:
            return (now - started) * 1000
        first, last = attempts[0], attempts[-1]
        return max(0.0, ((first.started - started) + (now - (last.ttft or last.ended or now))) * 1000)

    def _headers(self, plan: Plan, answered: Attempt, cost: float, overhead_ms: float, attempts: list[Attempt]) -> dict[str, str]:
        return {
            "x-tierroute-request-id": plan.request_id,
            "x-tierroute-model": answered.model.id,
            "x-tierroute-deployment": answered.deployment.id,
            "x-tierroute-reason": plan.decision.reason.encode("ascii", "replace").decode()[:200],
            "x-tierroute-cost-usd": f"{cost:.8f}",
            "x-tierroute-overhead-ms": f"{overhead_ms:.3f}",
            "x-tierroute-attempt": str(answered.number),
            "x-tierroute-attempts": str(len(attempts)),
            **({"x-tierroute-health": "degraded: " + answered.note} if answered.note else {}),
            **({"x-tierroute-arm": arm} if (arm := plan.decision.details.get("arm")) else {}),
        }

    # -- batches -------------------------------------------------------------------------------------
    def batch(self, items: Any, *, concurrency: int = 64, max_cost_usd: float | None = None, max_tries: int = 6,
              job: str = "batch", store: Any = None) -> AsyncIterator[Any]:
        """Answer many requests (OpenAI batch lines or chat bodies), yielding a ``BatchResult`` for each as it
        completes: adaptive concurrency up to ``concurrency``, retries with backoff, and a hard spend cap
        ``max_cost_usd``. ``items`` may be an iterable or an async iterable; it is read only as fast as lines
        are sent. See docs/batch.md; the engine lives in :mod:`tierroute.batch`."""
        from .batch.engine import run_items

        return run_items(self, items, concurrency=concurrency, max_cost_usd=max_cost_usd, max_tries=max_tries,
                         job=job, store=store)

    # -- feedback ------------------------------------------------------------------------------------
    def record_feedback(self, body: Any) -> None:
        """Record a quality label for an answered request: ``{"request_id", "score" in [0, 1], "source"?}``.

        Labelled traffic exports in the outcome format (``tierroute export``) to train routers on it."""
        if not isinstance(body, dict):
            raise InvalidRequest("feedback body: expected a JSON object with request_id and score")
        request_id, score, source = body.get("request_id"), body.get("score"), body.get("source")
        if not isinstance(request_id, str) or not request_id:
            raise InvalidRequest(f"request_id: expected the x-tierroute-request-id of a request, got {request_id!r}", param="request_id")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not 0 <= score <= 1:
            raise InvalidRequest(f"score: expected a number from 0 to 1, got {score!r}", param="score")
        if source is not None and not isinstance(source, str):
            raise InvalidRequest(f"source: expected a string, got {source!r}", param="source")
        if self.ledger is None:
            raise InvalidRequest("feedback needs a ledger, and ledger.backend is 'none'")
        self.ledger.record_feedback(Feedback(request_id=request_id, ts=self._wall(), score=float(score), source=source))
        if self.evals is not None:
            self.evals.feedback(request_id, float(score))

    # -- lifecycle and sync API ----------------------------------------------------------------------
    async def aclose(self) -> None:
        if self.observer is not None:
            self.observer.close()
        if self.evals is not None:
            await self.evals.aclose()  # before the providers and the ledger its tasks use
        close_policy = getattr(self.policy, "aclose", None)  # an encoder-backed learned policy holds resources
        if close_policy is not None:
            await close_policy()
        for provider in self.providers.values():
            await provider.aclose()
        for guard in self.guards:
            await guard.aclose()
        if self.ledger is not None:
            self.ledger.close()
        if self.journal is not None:
            self.journal.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def completion(self, body: JSONDict, *, caller: str | None = None) -> Routed:
        """Synchronous :meth:`acompletion`."""
        return self._sync.run(self.acompletion(body, caller=caller))

    def stream(self, body: JSONDict, *, caller: str | None = None) -> Iterator[JSONDict]:
        """Synchronous streaming: an iterator of OpenAI chunk dicts."""
        routed = self._sync.run(self.astream(body, caller=caller))
        return self._sync.iterate(routed.chunks, close=routed.aclose)

    def embedding(self, body: JSONDict, *, caller: str | None = None) -> Routed:
        """Synchronous :meth:`aembedding`."""
        return self._sync.run(self.aembedding(body, caller=caller))

    def route(self, body: JSONDict, *, caller: str | None = None) -> Plan:
        """Synchronous :meth:`plan`: the decision only, no upstream call."""
        return self._sync.run(self.plan(body, caller=caller))

    def close(self) -> None:
        if self._sync.running:
            self._sync.run(self.aclose())
            self._sync.stop()
        else:
            if self.ledger is not None:
                self.ledger.close()
            if self.journal is not None:
                self.journal.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _embed(provider: Provider, deployment: Deployment, body: JSONDict) -> Awaitable[Completion]:
    return provider.embed(deployment, body)  # type: ignore[attr-defined]  # checked as an EmbeddingProvider

