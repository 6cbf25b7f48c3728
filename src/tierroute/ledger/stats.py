"""Summaries of the ledger for ``tierroute stats``: spend, savings and latency percentiles per model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .base import StatsRow


# Refusals (no model fitted, a budget said no ...) have no model; they are listed under this name.
REFUSED = "(refused)"


@dataclass(frozen=True, slots=True)
class ModelStats:
    """One model's share. ``requests`` and ``errors`` count requests whose final attempt went to this model
    (as the summary's header does); ``attempts`` and ``failed_attempts`` count every upstream attempt sent to
    it, failovers included. Tokens and cost count every attempt; latencies count answered requests."""

    model: str
    requests: int
    errors: int
    attempts: int
    failed_attempts: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    estimated: int = 0  # attempts whose token counts tierroute counted (the server reported no usage)


@dataclass(frozen=True, slots=True)
class Summary:
    """``requests`` counts requests (refused ones included, in ``refused`` too); ``errors`` those that did not
    end ``ok``; ``attempts`` the upstream attempts made for them."""

    requests: int
    errors: int
    attempts: int
    cost_usd: float
    baseline_cost_usd: float
    overhead_p50_ms: float | None
    overhead_p99_ms: float | None
    models: tuple[ModelStats, ...]
    estimated: int = 0
    refused: int = 0

    @property
    def savings_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd

    @property
    def savings_share(self) -> float | None:
        return self.savings_usd / self.baseline_cost_usd if self.baseline_cost_usd > 0 else None


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarize(rows: Iterable[StatsRow]) -> Summary:
    """Spend counts every attempt; request counts and latency count only the attempt the caller saw."""
    by_model: dict[str, list[StatsRow]] = defaultdict(list)
    requests = errors = attempts = refused = 0
    cost = baseline = 0.0
    overheads: list[float] = []
    estimated = 0
    for row in rows:
        is_refusal = row.status == "refused"
        attempts += not is_refusal
        refused += is_refusal
        estimated += row.usage_estimated
        cost += row.cost_usd
        if row.final:
            requests += 1
            baseline += row.baseline_cost_usd
            errors += row.status != "ok"
            if row.overhead_ms is not None:
                overheads.append(row.overhead_ms)
        by_model[REFUSED if is_refusal else (row.chosen_model or "(none)")].append(row)
    models = []
    for model, items in sorted(by_model.items(), key=lambda kv: -sum(r.cost_usd for r in kv[1])):
        ok = [r for r in items if r.status == "ok"]
        finals = [r for r in items if r.final]
        sent = [r for r in items if r.status != "refused"]
        latencies = [r.latency_ms for r in ok if r.final]
        ttfts = [r.ttft_ms for r in ok if r.final and r.ttft_ms is not None]
        models.append(ModelStats(
            model=model,
            requests=len(finals),
            errors=sum(r.status != "ok" for r in finals),
            attempts=len(sent),
            failed_attempts=sum(r.status != "ok" for r in sent),
            prompt_tokens=sum(r.prompt_tokens for r in items),
            completion_tokens=sum(r.completion_tokens for r in items),
            cost_usd=sum(r.cost_usd for r in items),
            latency_p50_ms=_pct(latencies, 50),
            latency_p95_ms=_pct(latencies, 95),
            latency_p99_ms=_pct(latencies, 99),
            ttft_p50_ms=_pct(ttfts, 50),
            estimated=sum(r.usage_estimated for r in items),
        ))
    return Summary(
        requests=requests, errors=errors, attempts=attempts, cost_usd=cost, baseline_cost_usd=baseline,
        overhead_p50_ms=_pct(overheads, 50), overhead_p99_ms=_pct(overheads, 99), models=tuple(models),
        estimated=estimated, refused=refused,
    )
