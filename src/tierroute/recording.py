"""What the router writes down about each request: one ledger row per attempt (and one for a request refused
before any upstream call), the metrics, and the observer's access-log line and trace.

Usage is bounded here before anything counts it (``usage_check``), so the budget settlement that follows charges
exactly what the ledger records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ._exceptions import TierrouteError, UpstreamError
from .chat_request import MAX_USER_CHARS
from .journal import Journal
from .ledger.base import Ledger, LedgerEntry
from .metering import counted_prompt_tokens
from .metrics import Metrics
from .observability.observer import Observer
from .reliability.dispatch import Attempt
from .types import ModelSpec, Usage
from .usage_check import checked_usage

if TYPE_CHECKING:
    from .router import Plan


class Recorder:
    """Records requests for one :class:`~tierroute.router.Router`; ``baseline`` is the savings reference."""

    def __init__(self, *, metrics: Metrics, ledger: Ledger | None, journal: Journal | None,
                 observer: Observer | None, baseline: ModelSpec | None, store_prompts: bool,
                 clock: Callable[[], float], wall_clock: Callable[[], float]) -> None:
        self.metrics = metrics
        self.ledger = ledger
        self.journal = journal
        self.observer = observer
        self._baseline = baseline
        self._store_prompts = store_prompts
        self._clock = clock
        self._wall = wall_clock

    def attempts(self, plan: Plan, attempts: list[Attempt], started: float, *, error: UpstreamError | None = None,
                overhead_ms: float | None = None, status: str | None = None, cascade: bool = False) -> None:
        """One ledger row per attempt, and the metrics. ``cascade``: the attempts are a cascade's calls, not
        retries or fallbacks, so they are not counted as such."""
        features = plan.features
        metrics = self.metrics
        now_wall = self._wall()
        total_ms = (self._clock() - started) * 1000
        final_status = status or ("error" if error is not None else "ok")
        if self.journal is not None:
            self.journal.maybe_adopt()  # a sibling's journal, if it died; one clock read otherwise
        prompt = None
        if self._store_prompts:
            prompt = orjson.dumps(plan.body.get("messages")).decode()
        tried: set[str] | None = None
        arm = plan.decision.details.get("arm")  # the router.experiment arm, if any
        for attempt in attempts:
            final = attempt is attempts[-1]
            # Bounded before anything counts it: _settle then charges what the ledger records.
            usage, usage_note = checked_usage(attempt.usage, attempt.model)
            if usage_note is not None:
                metrics.suspect_usage(attempt.model.id)
            if final and final_status == "ok" and usage.prompt_tokens == 0:
                usage = Usage(counted_prompt_tokens(features, attempt.model), usage.completion_tokens, estimated=True)
            attempt.usage = usage
            cost = attempt.cost_usd
            reference = self._baseline if attempt.model.mode == "chat" else attempt.model  # embeddings save nothing
            baseline = reference.usage_cost_usd(usage) if (final and reference) else 0.0
            err = attempt.error
            outcome = final_status if final else ("error" if err is not None else "ok")
            deployment_id = attempt.deployment.id
            metrics.attempt(deployment_id, err.kind if err is not None else "ok")
            if attempt.ended:
                ttft = attempt.ttft - attempt.started if features.stream and attempt.ttft is not None else None
                metrics.upstream(deployment_id, seconds=attempt.ended - attempt.started, ttft_seconds=ttft)
            if tried is not None and not cascade:  # a later attempt: a retry of a model tried before, or a fallback
                if attempt.model.id in tried:
                    metrics.retried(deployment_id)
                else:
                    metrics.fell_back(attempts[0].model.id, attempt.model.id)
                tried.add(attempt.model.id)
            elif len(attempts) > 1 and not cascade:  # a cascade's calls are neither retries nor fallbacks
                tried = {attempt.model.id}
            if final:
                metrics.answered(attempt.model.id, outcome, seconds=total_ms / 1000,
                                 overhead_seconds=overhead_ms / 1000 if overhead_ms is not None else None)
            metrics.spent(attempt.model.id, cost_usd=cost, prompt_tokens=usage.prompt_tokens,
                          completion_tokens=usage.completion_tokens)
            if self.ledger is None:
                continue
            self.ledger.record(LedgerEntry(
                request_id=plan.request_id,
                ts=now_wall,
                requested_model=features.requested_model,
                chosen_model=attempt.model.id,
                deployment=attempt.deployment.id,
                attempt=attempt.number,
                final=final,
                caller=features.caller,
                user=features.user,
                reason=plan.decision.reason,
                policy=plan.decision.policy,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost_usd=cost,
                baseline_cost_usd=baseline,
                latency_ms=total_ms if final else attempt.latency_ms,
                ttft_ms=((attempt.ttft - started) * 1000) if (attempt.ttft is not None and final) else None,
                overhead_ms=overhead_ms if final else None,
                status=outcome,
                error_kind=err.kind if err is not None else None,
                # the final row says what the caller got (e.g. 503 after attempts that each failed with 502)
                http_status=error.http_status if (final and error is not None) else (
                    err.http_status if err is not None else 200),
                stream=features.stream,
                tags=",".join(features.tags) or None,
                prompt=prompt,
                usage_estimated=usage.estimated,
                usage_note=usage_note,
                arm=arm,
            ))
        if self.observer is not None:
            self.observer.request_done(plan, attempts, status=final_status, error=error, overhead_ms=overhead_ms)

    def refusal(self, request_id: str, body: Any, caller: str | None, plan: Plan | None,
                        exc: TierrouteError, started: float) -> None:
        """One ledger row (attempt 0, no model or deployment) for a request refused before any upstream call."""
        if self.ledger is None:
            return
        fields = body if isinstance(body, dict) else {}
        features = plan.features if plan is not None else None
        # A request refused for its own fields may carry anything there (a 900 KB "user"): the row keeps
        # at most a bounded prefix, so refusals cannot fill the ledger or memory.
        requested = features.requested_model if features is not None else _bounded(fields.get("model"))
        user = features.user if features is not None else _bounded(fields.get("user"))
        self.ledger.record(LedgerEntry(
            request_id=request_id,
            ts=self._wall(),
            requested_model=requested if isinstance(requested, str) else "",
            attempt=0,
            final=True,
            caller=caller,
            user=user if isinstance(user, str) else None,
            reason=plan.decision.reason if plan is not None else None,
            policy=plan.decision.policy if plan is not None else None,
            latency_ms=(self._clock() - started) * 1000,
            status="refused",
            error_kind=exc.code or "error",
            http_status=exc.http_status,
            stream=fields.get("stream") is True,
            tags=(",".join(features.tags) or None) if features is not None else None,
            arm=plan.decision.details.get("arm") if plan is not None else None,
        ))


def _bounded(value: Any) -> str | None:
    """A client-supplied label as recorded with a refusal: a string of at most ``MAX_USER_CHARS`` characters."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= MAX_USER_CHARS else value[:MAX_USER_CHARS - 1] + "…"
