"""Dispatch a routed request: try deployments along the fallback plan until one answers.

The attempt loop, per request:

* the first pass walks the fallback plan (``fallbacks.py``) once, skipping deployments whose breaker is open
  or that are cooling down after a 429, and lets the balancer choose among the healthy deployments of each
  model; moving on to another deployment does not wait;
* each further pass (``retry.retries`` of them) first waits the backoff (``retry.py``), then tries again what
  failed with a retryable error;
* if every candidate is unhealthy, one request still goes to the least recently failed deployment rather
  than being refused, and the attempt says so;
* ``max_attempts`` and the request deadline bound everything; an attempt never outlives the deadline;
* who a failure blames (``retry.Fault``) decides whether the breaker and the balancer hear of it, and whether
  the request moves on: a deployment's fault fails over, a request's fault is returned, and an unsure one
  (a 400, an empty stream) is tried on one more deployment or model before it is believed.

Every attempt is appended to the caller's ``attempts`` list as it starts, so the ledger sees all of them.
Health (``health.py``) and latency (``balancer.py``) live on the Dispatcher, one per Router.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._exceptions import (
    AllAttemptsFailed,
    DeadlineExceeded,
    UpstreamEmptyAnswer,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from ..catalog import Catalog
from ..config import ProviderSettings
from ..policies.base import expected_completion_tokens
from ..providers.base import Completion, Provider
from ..types import Decision, Deployment, JSONDict, ModelSpec, RequestFeatures, Usage
from .balancer import Balancer
from .fallbacks import check_fallbacks, fallback_models, wider_models
from .health import Health
from .retry import Backoff, Deadline, Fault, counts_against_deployment, fault_of
from .settings import ReliabilitySettings

log = logging.getLogger("tierroute.reliability")

ALL_UNHEALTHY_NOTE = "every candidate deployment was unhealthy; tried the least recently failed"
DEFAULT_OUTPUT_TOKENS = 256
# Chunks held back while waiting for a stream's first content or finish reason (a role-only opening chunk,
# Anthropic's message_start ...). A server that sends more than this without saying anything is streaming.
MAX_LEADING_CHUNKS = 16


@dataclass(slots=True)
class Attempt:
    """One try at one deployment. ``error`` is None when it answered."""

    number: int
    model: ModelSpec
    deployment: Deployment
    started: float
    ended: float = 0.0
    ttft: float | None = None
    usage: Usage = field(default_factory=Usage)
    error: UpstreamError | None = None
    note: str | None = None
    trace: Any = None  # this attempt's span, when traces are on (observability/tracing.py)

    @property
    def latency_ms(self) -> float:
        return (self.ended - self.started) * 1000

    @property
    def cost_usd(self) -> float:
        return self.model.usage_cost_usd(self.usage)


BodyFor = Callable[[ModelSpec, Deployment], JSONDict]
# One upstream call of a non-streamed request: chat completion by default, embeddings for /v1/embeddings.
Call = Callable[[Provider, Deployment, JSONDict], Awaitable[Completion]]


def _complete(provider: Provider, deployment: Deployment, body: JSONDict) -> Awaitable[Completion]:
    return provider.complete(deployment, body)
Sleep = Callable[[float], Awaitable[None]]


class DeploymentLimiter(Protocol):
    """Counts a request against a deployment's own per-minute limits (``limits.deployments``): False when
    it is full this minute, so the request goes elsewhere before the provider answers 429."""

    async def try_acquire(self, deployment_id: str, tokens: int) -> bool: ...


class Dispatcher:
    """Answers a decision from the healthiest, fastest deployment that can, failing over along the plan."""

    def __init__(self, providers: Mapping[str, Provider], catalog: Catalog, *,
                 settings: ReliabilitySettings | None = None,
                 provider_settings: Mapping[str, ProviderSettings] | None = None,
                 clock: Callable[[], float] = time.perf_counter, sleep: Sleep = asyncio.sleep,
                 rng: random.Random | None = None, limiter: DeploymentLimiter | None = None) -> None:
        self.settings = settings or ReliabilitySettings()
        self.limiter = limiter
        check_fallbacks(self.settings.fallbacks, catalog)
        self.catalog = catalog
        self._providers = providers
        self._provider_settings = provider_settings or {}
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._backoff = Backoff.from_settings(self.settings.retry)
        self.health = Health(self.settings.breaker, clock)
        self.balancer = Balancer(self.settings.balancer, clock, self._rng)
        # Called with each attempt as it starts (the router's observer opens its span); None: nothing to do.
        self.on_attempt: Callable[[Attempt], None] | None = None

    # -- reading -------------------------------------------------------------------------------------
    def unavailable(self) -> frozenset[str]:
        """Deployment ids skipped right now, plus the ids of models none of whose deployments is available."""
        deployments = self.health.unavailable()
        models = {m for m, deps in self.catalog.deployments.items() if deps and all(d.id in deployments for d in deps)}
        return deployments | frozenset(models)

    def _first_token_timeout(self, deployment: Deployment) -> float | None:
        settings = self._provider_settings.get(deployment.provider)
        return settings.first_token_timeout_seconds if settings is not None else None

    def _first_byte_timeout(self, deployment: Deployment) -> float | None:
        settings = self._provider_settings.get(deployment.provider)
        return settings.first_byte_timeout_seconds if settings is not None else None

    def _idle_timeout(self, deployment: Deployment) -> float | None:
        settings = self._provider_settings.get(deployment.provider)
        return settings.stream_idle_timeout_seconds if settings is not None else None

    # -- answering -----------------------------------------------------------------------------------
    async def complete(self, decision: Decision, body_for: BodyFor, attempts: list[Attempt], *,
                       features: RequestFeatures | None = None, timeout_seconds: float | None = None,
                       call: Call = _complete) -> Completion:
        """Answer the request; ``attempts`` is filled in place so the caller can record every try."""
        run = _Run(self, decision, features, attempts, timeout_seconds)
        while True:
            attempt = await run.next_attempt()
            deployment = attempt.deployment
            # One timer for both bounds (a timer per request is measurable at thousands of requests/s). Servers
            # send a plain answer's JSON at once when it is generated, so its first byte is in practice the
            # whole answer: a deployment that accepts the request and stalls is given up on here.
            limit = run.deadline.remaining_seconds()
            first_byte_timeout = self._first_byte_timeout(deployment)
            if first_byte_timeout is not None and first_byte_timeout < limit:
                limit = first_byte_timeout
            try:
                async with asyncio.timeout(limit):
                    completion = await call(self._providers[deployment.provider], deployment,
                                            body_for(attempt.model, deployment))
            except (UpstreamError, TimeoutError) as exc:
                run.failed(attempt, exc, phase="answer" if limit != first_byte_timeout else
                           f"first byte (limit {limit:.1f}s)")
                continue
            except BaseException:
                run.abandoned(attempt)
                raise
            attempt.usage = completion.usage
            run.answered(attempt, streamed=False)
            return completion

    async def stream(self, decision: Decision, body_for: BodyFor, attempts: list[Attempt], *,
                     features: RequestFeatures | None = None, timeout_seconds: float | None = None) -> AsyncIterator[JSONDict]:
        """Yield chunks. Until the stream's first content or finish reason a failure moves on to the next
        deployment (the chunks before it are held back); after it, the error ends the stream (recorded on the
        attempt). A stream that ends before saying anything is an :class:`UpstreamEmptyAnswer`, never an answer."""
        run = _Run(self, decision, features, attempts, timeout_seconds)
        while True:
            attempt = await run.next_attempt()
            deployment = attempt.deployment
            upstream = self._providers[deployment.provider].stream(deployment, body_for(attempt.model, deployment))
            first_token_timeout = self._first_token_timeout(deployment)
            limit = run.deadline.remaining_seconds()
            if first_token_timeout is not None:
                limit = min(limit, first_token_timeout)
            leading: list[JSONDict] = []
            try:
                async with asyncio.timeout(limit):
                    while True:
                        chunk = await upstream.__anext__()
                        leading.append(chunk)
                        _count_usage(attempt, chunk)
                        if _says_something(chunk) or len(leading) >= MAX_LEADING_CHUNKS:
                            break
            except StopAsyncIteration:
                await _close(upstream)
                run.failed(attempt, UpstreamEmptyAnswer(
                    f"{deployment.id}: the stream ended with no content and no finish reason",
                    provider=deployment.provider, deployment=deployment.id))
                continue
            except (UpstreamError, TimeoutError) as exc:
                await _close(upstream)
                run.failed(attempt, exc, phase=f"first token (limit {limit:.1f}s)")
                continue
            except BaseException:
                await _close(upstream)
                run.abandoned(attempt)
                raise
            run.first_token(attempt)
            break
        idle_timeout = self._idle_timeout(deployment)
        phase = "stream"
        try:
            for chunk in leading:
                yield chunk
            while True:
                limit = run.deadline.remaining_seconds()
                phase = "stream"
                if idle_timeout is not None and idle_timeout < limit:
                    limit, phase = idle_timeout, f"stream: stalled, no chunk for {idle_timeout:.1f}s"
                try:
                    async with asyncio.timeout(limit):
                        chunk = await upstream.__anext__()
                except StopAsyncIteration:
                    break
                _count_usage(attempt, chunk)
                yield chunk
        except (UpstreamError, TimeoutError) as exc:
            error = run.failed(attempt, exc, final=True, phase=phase)
            raise error from exc
        except BaseException:
            run.abandoned(attempt)
            raise
        finally:
            await _close(upstream)
        run.answered(attempt, streamed=True)


def _says_something(chunk: JSONDict) -> bool:
    """Whether a chunk carries output (content, a tool call, a refusal ...) or a finish reason."""
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(v for k, v in delta.items() if k != "role"):
            return True
    return False


def _count_usage(attempt: Attempt, chunk: JSONDict) -> None:
    usage = chunk.get("usage")
    if isinstance(usage, dict) and usage:
        attempt.usage = Usage.from_openai(usage)


async def _close(upstream: AsyncIterator[JSONDict]) -> None:
    aclose = getattr(upstream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # noqa: BLE001 - closing a broken upstream must not mask the real error
            log.debug("error closing an upstream stream", exc_info=True)


class _Run:
    """The attempt loop's state for one request."""

    def __init__(self, dispatcher: Dispatcher, decision: Decision, features: RequestFeatures | None,
                 attempts: list[Attempt], timeout_seconds: float | None) -> None:
        self.d = dispatcher
        settings = dispatcher.settings
        self.features = features
        self.attempts = attempts
        self.models = fallback_models(decision, dispatcher.catalog, settings, features)
        self.deadline = Deadline.after(
            timeout_seconds if timeout_seconds is not None else settings.request_timeout_seconds, dispatcher._clock)
        self.tries: dict[str, int] = {}
        self.excluded: set[str] = set()
        self.pass_number = 0
        self.wait_before_next = 0.0
        self.forced = False
        self.at_limit: set[str] = set()  # deployments full this minute (limits.deployments)
        self.unsure: Attempt | None = None  # the attempt whose UNSURE failure awaits a second opinion

    # -- choosing ------------------------------------------------------------------------------------
    def _targets(self) -> list[tuple[ModelSpec, Deployment]]:
        deployments = self.d.catalog.deployments
        return [(m, dep) for m in self.models for dep in deployments.get(m.id, ()) if dep.id not in self.excluded]

    def _output_tokens(self, model: ModelSpec) -> int:
        if self.features is None:
            return DEFAULT_OUTPUT_TOKENS
        return expected_completion_tokens(self.features, model)

    async def next_attempt(self) -> Attempt:
        """Start the next attempt (waiting first if the plan says so), or raise the request's failure."""
        health = self.d.health
        while True:
            if len(self.attempts) >= self.d.settings.max_attempts or self.deadline.expired:
                raise self.failure()
            pending = [t for t in self._targets() if self.tries.get(t[1].id, 0) <= self.pass_number]
            if not pending:
                if self.pass_number >= self.d.settings.retry.retries or not self._targets():
                    raise self.failure()
                self.pass_number += 1
                self.wait_before_next = self.d._backoff.delay_seconds(self.pass_number, rng=self.d._rng)
                continue
            note = None
            choice = self._healthy(pending)
            wait = self.wait_before_next
            if choice is None:
                choice, ready_at = self._soonest_cooled(pending)
                if choice is not None:
                    wait = max(wait, ready_at - self.d._clock())
                elif not self.forced and (choice := self._least_recently_failed(pending)) is not None:
                    self.forced = True
                    note = ALL_UNHEALTHY_NOTE
                    log.warning("%s: %s (%s)", self.features.requested_model if self.features else "request",
                                note, choice[1].id)
                else:
                    raise self.failure()
            if wait > 0:
                if wait >= self.deadline.remaining_seconds():
                    raise self.failure()
                await self.d._sleep(wait)
                self.wait_before_next = 0.0
                if choice is not None and note is None and not health.available(choice[1].id):
                    continue  # its state changed while we slept: choose again
            if not await self._has_room(*choice):
                continue  # full this minute: it leaves this request's targets, choose again
            return self._begin(*choice, note=note)

    async def _has_room(self, model: ModelSpec, deployment: Deployment) -> bool:
        limiter = self.d.limiter
        if limiter is None:
            return True
        tokens = (self.features.prompt_tokens if self.features is not None else 0) + self._output_tokens(model)
        if await limiter.try_acquire(deployment.id, tokens):
            return True
        self.at_limit.add(deployment.id)
        self.excluded.add(deployment.id)
        return False

    def _healthy(self, pending: Sequence[tuple[ModelSpec, Deployment]]) -> tuple[ModelSpec, Deployment] | None:
        """The first model in plan order with an available deployment; the balancer picks which one."""
        health = self.d.health
        for model in self.models:
            group = [dep for m, dep in pending if m is model and health.available(dep.id)]
            if group:
                return model, self.d.balancer.choose(group, self._output_tokens(model))
        return None

    def _soonest_cooled(self, pending: Sequence[tuple[ModelSpec, Deployment]]
                        ) -> tuple[tuple[ModelSpec, Deployment] | None, float]:
        """A deployment cooling down after a 429 whose Retry-After we are willing to wait for."""
        health = self.d.health
        now = self.d._clock()
        cap = self.d.settings.retry.max_retry_after_seconds
        cooled = [(health.ready_at(t[1].id), t) for t in pending
                  if health.cooling_until(t[1].id) > now and health.ready_at(t[1].id) - now <= cap]
        if not cooled:
            return None, 0.0
        ready_at, target = min(cooled, key=lambda c: c[0])
        return target, ready_at

    def _least_recently_failed(self, pending: Sequence[tuple[ModelSpec, Deployment]]
                               ) -> tuple[ModelSpec, Deployment] | None:
        """The last resort when every candidate is unhealthy. A deployment cooling down after a 429 is only
        chosen before this request has tried anything: its Retry-After is never ignored by a retry."""
        health = self.d.health
        now = self.d._clock()
        open_ = [t for t in pending if health.cooling_until(t[1].id) <= now]
        if open_:
            return min(open_, key=lambda t: health.last_failure(t[1].id))
        if self.attempts:
            return None
        return min(pending, key=lambda t: health.ready_at(t[1].id))

    def _begin(self, model: ModelSpec, deployment: Deployment, *, note: str | None) -> Attempt:
        self.tries[deployment.id] = self.tries.get(deployment.id, 0) + 1
        self.d.health.acquire(deployment.id)
        self.d.balancer.begin(deployment.id)
        attempt = Attempt(number=len(self.attempts) + 1, model=model, deployment=deployment,
                          started=self.d._clock(), note=note)
        self.attempts.append(attempt)
        if self.d.on_attempt is not None:
            self.d.on_attempt(attempt)
        return attempt

    # -- outcomes ------------------------------------------------------------------------------------
    def first_token(self, attempt: Attempt) -> None:
        attempt.ttft = self.d._clock()
        self.d.balancer.observe(attempt.deployment.id, ttft_seconds=attempt.ttft - attempt.started)

    def answered(self, attempt: Attempt, *, streamed: bool) -> None:
        now = self.d._clock()
        attempt.ended = now
        dep = attempt.deployment.id
        self.d.balancer.end(dep)
        self.d.health.record_success(dep)
        unsure = self.unsure
        if unsure is not None and unsure.model is attempt.model and unsure.error is not None:
            # Another deployment of the same model answered what that one refused: the refusal was its fault.
            self._blame(unsure, unsure.error)
        tokens = attempt.usage.completion_tokens
        if not streamed:
            attempt.ttft = now
            self.d.balancer.observe_total(dep, latency_seconds=now - attempt.started, output_tokens=tokens)
        elif attempt.ttft is not None and tokens > 0:
            per_token = (now - attempt.ttft) / tokens
            self.d.balancer.observe(dep, seconds_per_token=per_token)  # its ttft was observed at the first chunk

    def failed(self, attempt: Attempt, exc: BaseException, *, final: bool = False,
               phase: str = "answer") -> UpstreamError:
        """Record a failed attempt. Returns the error when ``final``; otherwise raises it unless another
        attempt may succeed (``retry.Fault`` says which)."""
        attempt.ended = self.d._clock()
        dep = attempt.deployment
        error = exc if isinstance(exc, UpstreamError) else self._timeout(attempt, phase)
        attempt.error = error
        self.d.balancer.end(dep.id)
        if counts_against_deployment(error):
            self._blame(attempt, error)
        else:
            self.d.health.release(dep.id)  # the request may be at fault: one bad prompt marks nothing down
        if final:
            return error
        fault = fault_of(error)
        if fault is Fault.REQUEST:
            raise error
        if fault is not Fault.TRANSIENT:
            self.excluded.add(dep.id)
        if fault is Fault.UNSURE:
            if self.unsure is not None or not self._alternative():
                raise error  # a second opinion agreed (or there is none): the request is at fault
            self.unsure = attempt
        elif fault is Fault.MODEL:
            self.models = wider_models(attempt.model, self.models, self.d.catalog, self.features)
        return error

    def _blame(self, attempt: Attempt, error: UpstreamError) -> None:
        dep = attempt.deployment.id
        self.d.health.record_failure(dep, error)
        if not isinstance(error, UpstreamRateLimited):  # a 429 cools the deployment instead
            self.d.balancer.observe_failure(dep, elapsed_seconds=attempt.ended - attempt.started)

    def _alternative(self) -> bool:
        """Whether a healthy deployment not yet ruled out could give a second opinion."""
        return any(self.d.health.available(dep.id) for _, dep in self._targets())

    def abandoned(self, attempt: Attempt) -> None:
        """The caller went away (cancelled) mid-attempt: free the slot, say nothing about health."""
        attempt.ended = self.d._clock()
        self.d.balancer.end(attempt.deployment.id)
        self.d.health.release(attempt.deployment.id)

    def _timeout(self, attempt: Attempt, phase: str) -> UpstreamTimeout:
        dep = attempt.deployment
        waited = attempt.ended - attempt.started
        if self.deadline.expired:
            phase = f"{phase}; request deadline reached"
        return UpstreamTimeout(f"{dep.id}: timed out after {waited:.1f}s ({phase})",
                               provider=dep.provider, deployment=dep.id)

    def failure(self) -> UpstreamError:
        """The error the caller sees when nothing answered.

        When every failure was about the request (a context window too small, a 400 nothing else could
        check), that error. Otherwise one answer whatever the number of attempts, so the status does not flip
        during an outage: 429 if everything tried was rate limited, 504 once the deadline passed, else 503
        ``all_attempts_failed`` naming every deployment tried and every candidate skipped as unhealthy."""
        failed = [a for a in self.attempts if a.error is not None]
        if not failed:
            return self._nothing_tried()
        if not any(counts_against_deployment(a.error) for a in failed):  # type: ignore[arg-type]
            return failed[-1].error  # type: ignore[return-value]
        tried = [(a.deployment.id, f"{a.error.kind}: {a.error.message}") for a in failed]  # type: ignore[union-attr]
        summary = "; ".join(f"#{a.number} {d} -> {why}" for a, (d, why) in zip(failed, tried))
        if all(isinstance(a.error, UpstreamRateLimited) for a in failed):
            now = self.d._clock()
            wait = min(self.d.health.ready_at(a.deployment.id) for a in failed) - now
            return UpstreamRateLimited(f"every deployment tried is rate limited: {summary}",
                                       retry_after_seconds=max(0.0, wait))
        seen = {a.deployment.id for a in self.attempts}
        skipped = [(dep.id, f"skipped: {self.d.health.state(dep.id)}") for _, dep in self._targets()
                   if dep.id not in seen and not self.d.health.available(dep.id)]
        if skipped:
            summary += "; skipped as unhealthy: " + ", ".join(d for d, _ in skipped)
        if self.deadline.expired:
            return DeadlineExceeded(f"request deadline reached after {len(failed)} failed attempts: {summary}",
                                    attempts=tried + skipped)
        return AllAttemptsFailed(f"all {len(failed)} attempts failed: {summary}", attempts=tried + skipped)

    def _nothing_tried(self) -> UpstreamError:
        now = self.d._clock()
        targets = self._targets()
        if self.at_limit and not targets:
            full = ", ".join(sorted(self.at_limit))
            return UpstreamRateLimited(f"every candidate deployment is at its configured rate limit "
                                       f"(limits.deployments): {full}", retry_after_seconds=60 - time.time() % 60)
        names = ", ".join(dep.id for _, dep in targets) or "none"
        cooling = [self.d.health.ready_at(dep.id) - now for _, dep in targets
                   if self.d.health.cooling_until(dep.id) > now]
        if cooling and len(cooling) == len(targets):
            return UpstreamRateLimited(f"every deployment is rate limited: {names}", retry_after_seconds=min(cooling))
        attempts = [(dep.id, self.d.health.state(dep.id)) for _, dep in targets]
        if self.deadline.expired:
            return DeadlineExceeded(f"request deadline reached before any attempt; candidates: {names}",
                                    attempts=attempts)
        return AllAttemptsFailed(f"no deployment could be tried; candidates: {names}", attempts=attempts)
