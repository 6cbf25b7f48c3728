"""Summaries of the ledger for ``tierroute stats``: spend, savings and latency percentiles per model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .base import StatsRow


@dataclass(frozen=True, slots=True)
class ModelStats:
    model: str
    requests: int
    errors: int
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
    requests: int
    errors: int
    attempts: int
    cost_usd: float
    baseline_cost_usd: float
    overhead_p50_ms: float | None
    overhead_p99_ms: float | None
    models: tuple[ModelStats, ...]
    estimated: int = 0

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
    requests = errors = attempts = 0
    cost = baseline = 0.0
    overheads: list[float] = []
    estimated = 0
    for row in rows:
        attempts += 1
        estimated += row.usage_estimated
        cost += row.cost_usd
        if row.final:
            requests += 1
            baseline += row.baseline_cost_usd
            errors += row.status != "ok"
            if row.overhead_ms is not None:
                overheads.append(row.overhead_ms)
        by_model[row.chosen_model or "(none)"].append(row)
    models = []
    for model, items in sorted(by_model.items(), key=lambda kv: -sum(r.cost_usd for r in kv[1])):
        ok = [r for r in items if r.status == "ok"]
        latencies = [r.latency_ms for r in ok]
        ttfts = [r.ttft_ms for r in ok if r.ttft_ms is not None]
        models.append(ModelStats(
            model=model,
            requests=len(items),
            errors=len(items) - len(ok),
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
        estimated=estimated,
    )
