"""Per-route quality figures from the ledger's judgments and the guard's states: what ``tierroute evals``
prints and what other interfaces (the operator console) read through :func:`route_quality`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..ledger.base import Judgment
from .judges.base import SCORE
from .sequential import confidence_interval


@dataclass(slots=True)
class RouteQuality:
    """One route's evaluation. ``interval`` bounds the mean of loss minus win (each judgment -1, 0 or 1) at
    the configured confidence, valid however often it is read; ``verdict`` reads it against the margin."""

    route: str
    samples: int = 0
    judged: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    skipped: int = 0
    feedback_good: int = 0
    feedback_bad: int = 0
    interval: tuple[float, float] = (-1.0, 1.0)
    verdict: str = "undecided"
    guard_state: str = "holding"
    guard_reason: str | None = None
    spend_usd: float = 0.0
    scores: list[int] = field(default_factory=list, repr=False)


def route_quality(judgments: Sequence[Judgment], states: Mapping[str, Mapping[str, Any]], *, margin: float,
                  confidence: float) -> list[RouteQuality]:
    """Figures per route, from judgments in ledger order and the guard states (``Evaluator.store.states()``)."""
    routes: dict[str, RouteQuality] = {}

    def get(route: str) -> RouteQuality:
        found = routes.get(route)
        if found is None:
            found = routes[route] = RouteQuality(route=route)
        return found

    for j in judgments:
        if j.route is None:
            continue
        q = get(j.route)
        q.spend_usd += j.judge_cost_usd + j.reference_cost_usd
        if j.judge == "guard":  # the last decision recorded, unless a live state says otherwise (below)
            q.guard_state = "degraded" if j.verdict == "degraded" else "holding"
            q.guard_reason = (orjson.loads(j.detail) if j.detail else {}).get("reason")
            continue
        if j.judge == "feedback":
            if j.verdict == "good":
                q.feedback_good += 1
            else:
                q.feedback_bad += 1
            continue
        q.samples += 1
        if j.verdict in SCORE:
            q.judged += 1
            q.scores.append(SCORE[j.verdict])
            if j.verdict == "win":
                q.wins += 1
            elif j.verdict == "tie":
                q.ties += 1
            else:
                q.losses += 1
        else:
            q.skipped += 1
    for route, state in states.items():
        q = get(route)
        q.guard_state = str(state.get("phase", "holding"))
        q.guard_reason = state.get("reason")
    alpha = 1.0 - confidence
    for q in routes.values():
        if q.scores:
            q.interval = confidence_interval(q.scores[-2000:], alpha)  # the most recent, bounded work
        lo, hi = q.interval
        q.verdict = "worse than margin" if lo > margin else ("holds" if hi <= margin else "undecided")
    return sorted(routes.values(), key=lambda q: q.route)


def as_dict(q: RouteQuality) -> dict[str, Any]:
    return {"route": q.route, "samples": q.samples, "judged": q.judged, "wins": q.wins, "ties": q.ties,
            "losses": q.losses, "skipped": q.skipped, "feedback_good": q.feedback_good,
            "feedback_bad": q.feedback_bad, "interval": list(q.interval), "verdict": q.verdict,
            "guard_state": q.guard_state, "guard_reason": q.guard_reason, "spend_usd": q.spend_usd}


def render_table(rows: Sequence[RouteQuality], *, margin: float, confidence: float) -> str:
    """The text ``tierroute evals`` prints."""
    if not rows:
        return "no judgments yet (is evals.enabled on, and has traffic been sampled?)"
    lines = [f"interval: {confidence:.0%} confidence sequence on mean(loss - win); margin {margin:g}",
             f"{'route':<40} {'samples':>7} {'judged':>6} {'win':>5} {'tie':>5} {'loss':>5} {'skip':>5} "
             f"{'interval':>15} {'verdict':<18} {'guard':<9} {'spend $':>10}"]
    for q in rows:
        lo, hi = q.interval
        lines.append(f"{q.route:<40} {q.samples:>7} {q.judged:>6} {q.wins:>5} {q.ties:>5} {q.losses:>5} "
                     f"{q.skipped:>5} {f'[{lo:+.2f}, {hi:+.2f}]':>15} {q.verdict:<18} {q.guard_state:<9} "
                     f"{q.spend_usd:>10.6f}")
    for q in rows:
        if q.feedback_good or q.feedback_bad:
            lines.append(f"feedback on {q.route}: {q.feedback_good} good, {q.feedback_bad} bad")
        if q.guard_reason:
            lines.append(f"guard on {q.route}: {q.guard_reason}")
    return "\n".join(lines)


async def shared_states(settings: Any) -> dict[str, dict[str, Any]]:
    """The guard's live states from the shared store (Redis); empty with a memory store (per process)."""
    state = settings.limits.state
    if state.backend != "redis":
        return {}
    from .store import RedisGuardStore

    store = RedisGuardStore(state.url, prefix=state.prefix)
    try:
        return await store.states()
    finally:
        await store.aclose()
