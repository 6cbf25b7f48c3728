"""Progress of a batch: counters, a live line on a terminal (a plain line per interval elsewhere), and the
final summary (cost, savings against sending every line to the strongest model, failures by reason, time)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from .engine import EngineStats
from .result import BatchResult


@dataclass(slots=True)
class Progress:
    total: int | None  # input lines, when known
    already_done: int = 0  # answered by an earlier run of the same job
    done: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    prior_cost_usd: float = 0.0
    prior_baseline_cost_usd: float = 0.0
    prior_failed: int = 0
    models: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    stats: EngineStats | None = None
    limit: Any = None  # the AdaptiveLimit, for the current concurrency

    def add(self, result: BatchResult) -> None:
        self.done += 1
        self.cost_usd += result.cost_usd
        self.baseline_cost_usd += result.baseline_cost_usd
        if result.ok:
            self.models[result.model or "?"] += 1
        else:
            self.failed += 1
            self.reasons[result.reason] += 1

    def elapsed(self) -> float:
        return max(1e-9, time.monotonic() - self.started)

    def remaining(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.already_done - self.done)

    def snapshot(self) -> dict[str, Any]:
        rate = self.done / self.elapsed()
        remaining = self.remaining()
        answered = self.done - self.failed
        projected = None
        if remaining is not None and answered:
            projected = self.prior_cost_usd + self.cost_usd + self.cost_usd / answered * remaining
        return {
            "done": self.already_done + self.done, "total": self.total, "failed": self.failed,
            "retried": self.stats.retried if self.stats else 0, "rate_per_second": rate,
            "eta_seconds": (remaining / rate) if remaining is not None and rate > 0 else None,
            "spent_usd": self.prior_cost_usd + self.cost_usd, "projected_usd": projected,
            "concurrency": int(self.limit.limit) if self.limit is not None else None,
            "models": dict(self.models.most_common()),
        }

    def line(self) -> str:
        s = self.snapshot()
        total = f"/{s['total']}" if s["total"] is not None else ""
        eta = f" eta {_duration(s['eta_seconds'])}" if s["eta_seconds"] is not None else ""
        projected = f" (projected ${s['projected_usd']:.4f})" if s["projected_usd"] is not None else ""
        mix = ", ".join(f"{m} {n / max(1, self.done - self.failed):.0%}" for m, n in self.models.most_common(3))
        return (f"{s['done']}{total} done, {s['failed']} failed, {s['retried']} retried | {s['rate_per_second']:.1f}/s{eta}"
                f" | ${s['spent_usd']:.4f}{projected} | x{s['concurrency']} | {mix}")

    def summary(self) -> dict[str, Any]:
        spent = self.prior_cost_usd + self.cost_usd
        baseline = self.prior_baseline_cost_usd + self.baseline_cost_usd
        return {
            "lines": self.already_done + self.done, "answered_now": self.done - self.failed,
            "answered_before": self.already_done - self.prior_failed, "failed": self.prior_failed + self.failed,
            "failed_now": self.failed, "failures": dict(self.reasons.most_common()),
            "retried": self.stats.retried if self.stats else 0, "seconds": round(self.elapsed(), 3),
            "cost_usd": round(spent, 8), "cost_this_run_usd": round(self.cost_usd, 8),
            "strongest_model_cost_usd": round(baseline, 8), "savings_usd": round(baseline - spent, 8),
            "models": dict(self.models.most_common()),
        }


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def render_summary(summary: dict[str, Any]) -> str:
    lines = [f"batch: {summary['lines']} lines ({summary['answered_now']} answered now, "
             f"{summary['answered_before']} before, {summary['failed']} failed) in {summary['seconds']:.1f} s",
             f"cost ${summary['cost_usd']:.6f} (this run ${summary['cost_this_run_usd']:.6f}); all on the strongest model: "
             f"${summary['strongest_model_cost_usd']:.6f}; saved ${summary['savings_usd']:.6f}"]
    if summary["models"]:
        lines.append("models: " + ", ".join(f"{m} {n}" for m, n in summary["models"].items()))
    if summary["failures"]:
        lines.append("failures: " + ", ".join(f"{r} {n}" for r, n in summary["failures"].items()))
    if summary["retried"]:
        lines.append(f"retried: {summary['retried']} tries after passing failures")
    return "\n".join(lines)


async def report(progress: Progress, out: TextIO, *, interval_seconds: float, live: bool,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
    """Until cancelled: rewrite one line on a terminal, or print a line per interval."""
    while True:
        await sleep(interval_seconds)
        text = progress.line()
        out.write(f"\r\x1b[2K{text}" if live else text + "\n")
        out.flush()
