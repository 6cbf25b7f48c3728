"""The operating point a trained router deploys: chosen on out-of-fold cost and quality, never below not routing.

Routed settings are ``lambda`` settings on priced data (each choice weighs the models' mean recorded costs, so
the setting is chosen with the prices in view, not only their order) and ``margin`` settings on unpriced data
(whose stand-in prices only say which model is strongest). Each setting's out-of-fold point (mean cost, mean
quality on the training items) is set against the zero router at the same cost: the best mix of single models,
the upper convex hull of their (cost, quality) points on the same items. A routed setting counts only when it
beats that mix out of fold (by ``BEAT_SE`` standard errors of the paired per-item difference). The goal then
picks among the settings that count and the zero router's own mixes, the zero router winning ties. When it wins, the router serves its
mix (``Objective("mix")``: one model, or two split by a stable hash of the prompt) and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..policies.calibration import Goal
from ..policies.objective import Objective, choose_many
from .metrics import LAMBDA_SWEEP

# Standard errors of the paired out-of-fold difference a routed setting must beat the zero router by. Measured
# at 0, 1, 1.5, 2, 2.5 and 3 in 5-fold CV inside RouterBench ARC's train split (8 goals): stricter thresholds
# served the zero router's mix more often, and a mix fixed on training items lands 0.004-0.007 below the held-out
# items' own zero router (which picks its mix in hindsight), so 0 did as well or better for 7 of the 8 goals
# (docs/routing-quality.md, "Operating point").
BEAT_SE = 0.0
MARGIN_GRID = np.linspace(0.0, 1.0, 201)
MIX_STEPS = 100  # zero-router mixes tried on each hull segment (1% steps of the share)


@dataclass(frozen=True)
class Candidate:
    """One deployable operating point and its out-of-fold figures."""

    objective: Objective
    cost: float
    quality: float
    strong_share: float
    margin: float = 0.0  # quality - the zero router's at this cost (0 for the zero router's own mixes)
    se: float = 0.0  # standard error of ``margin`` (paired per-item difference)

    @property
    def routed(self) -> bool:
        return self.objective.mode != "mix"

    @property
    def counts(self) -> bool:
        """A routed setting that beats the zero router clearly enough to deploy; the zero router's mixes always do."""
        return not self.routed or self.margin > max(BEAT_SE * self.se, 1e-12)


def zero_hull(single_cost: np.ndarray, single_quality: np.ndarray) -> list[int]:
    """Columns of the single models on the upper convex hull of their (cost, quality) points, cheapest first."""
    order = sorted(range(len(single_cost)), key=lambda j: (single_cost[j], -single_quality[j]))
    rising: list[int] = []
    for j in order:  # a dearer model that adds no quality is never part of the best mix
        if not rising or single_quality[j] > single_quality[rising[-1]]:
            rising.append(j)
    hull: list[int] = []
    for j in rising:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if ((single_quality[b] - single_quality[a]) * (single_cost[j] - single_cost[a])
                    <= (single_quality[j] - single_quality[a]) * (single_cost[b] - single_cost[a])):
                hull.pop()
            else:
                break
        hull.append(j)
    return hull


def zero_mix_at(hull: Sequence[int], single_cost: np.ndarray, cost: float) -> tuple[tuple[int, ...], float]:
    """The zero router's mix at ``cost``: (columns, share to the second); flat beyond the hull's ends."""
    xs = [float(single_cost[j]) for j in hull]
    if cost <= xs[0]:
        return (hull[0],), 0.0
    if cost >= xs[-1]:
        return (hull[-1],), 0.0
    k = int(np.searchsorted(xs, cost, side="right")) - 1
    share = (cost - xs[k]) / (xs[k + 1] - xs[k])
    return (hull[k], hull[k + 1]), float(share)


def mix_quality(columns: Sequence[int], share: float, scores: np.ndarray) -> np.ndarray:
    """Each item's expected quality under a mix (what a random split achieves in expectation)."""
    if len(columns) == 1:
        return scores[:, columns[0]]
    return (1 - share) * scores[:, columns[0]] + share * scores[:, columns[1]]


def _mix_objective(columns: Sequence[int], share: float, models: Sequence[str]) -> Objective:
    if len(columns) == 1 or share <= 0:
        return Objective("mix", 0.0, (models[columns[0]],))
    if share >= 1:
        return Objective("mix", 0.0, (models[columns[1]],))
    return Objective("mix", share, (models[columns[0]], models[columns[1]]))


def _mix_candidate(columns: Sequence[int], share: float, single_cost: np.ndarray, single_quality: np.ndarray,
                   strongest: int, models: Sequence[str]) -> Candidate:
    weights = [1.0] if len(columns) == 1 else [1.0 - share, share]
    return Candidate(_mix_objective(columns, share, models),
                     float(sum(w * single_cost[j] for w, j in zip(weights, columns))),
                     float(sum(w * single_quality[j] for w, j in zip(weights, columns))),
                     float(sum(w * (j == strongest) for w, j in zip(weights, columns))))


def _zero_candidates(hull: Sequence[int], single_cost: np.ndarray, single_quality: np.ndarray, strongest: int,
                     models: Sequence[str]) -> list[Candidate]:
    """The zero router's mixes along its hull, cheapest first."""
    out = [_mix_candidate((hull[0],), 0.0, single_cost, single_quality, strongest, models)]
    for a, b in zip(hull, hull[1:]):
        out += [_mix_candidate((a, b), float(share), single_cost, single_quality, strongest, models)
                for share in np.linspace(0.0, 1.0, MIX_STEPS + 1)[1:]]
    return out


def _routed(objective: Objective, pred: np.ndarray, scores: np.ndarray, costs: np.ndarray, mean_costs: np.ndarray,
            hull: Sequence[int], single_cost: np.ndarray, strongest: int) -> Candidate:
    rows = np.arange(scores.shape[0])
    pick = choose_many(pred, mean_costs, objective)
    quality, cost = scores[rows, pick], float(costs[rows, pick].mean())
    diff = quality - mix_quality(*zero_mix_at(hull, single_cost, cost), scores)
    return Candidate(objective, cost, float(quality.mean()), float(np.mean(pick == strongest)), float(diff.mean()),
                     float(np.std(diff) / np.sqrt(len(diff))))


def _select(goal: Goal, candidates: list[Candidate], best_quality: float) -> tuple[Candidate, bool]:
    """The candidate meeting ``goal`` (the zero router's mixes come first in ``candidates``, so they win ties),
    and whether any candidate meets it (else the nearest one is returned)."""
    if goal.kind == "quality":
        ok = [c for c in candidates if c.quality >= goal.value * best_quality - 1e-12]
        return (min(ok, key=lambda c: c.cost) if ok else max(candidates, key=lambda c: c.quality)), bool(ok)
    column = "cost" if goal.kind == "cost" else "strong_share"
    ok = [c for c in candidates if getattr(c, column) <= goal.value + 1e-12]
    if ok:
        return max(ok, key=lambda c: (c.quality, -c.cost)), True
    return min(candidates, key=lambda c: (getattr(c, column), -c.quality)), False


def choose_operating_point(pred: np.ndarray, scores: np.ndarray, costs: np.ndarray, mean_costs: np.ndarray,
                           models: Sequence[str], goal: Goal, *, priced: bool) -> tuple[Objective, dict[str, Any]]:
    """The objective to deploy for ``goal`` from out-of-fold predictions ``pred`` (n x m), true ``scores`` and
    per-item ``costs`` (n x m), and the per-model ``mean_costs`` the router prices with.

    ``lambda=X`` deploys that setting if it counts (``Candidate.counts``), else the zero router's mix at its
    cost. The other goals choose among the settings that count and the zero router's mixes: the cheapest
    reaching ``quality`` x the best single model's, or the best quality within ``cost`` or ``strong_share``.
    Returns the objective and its out-of-fold figures (``met`` False: no candidate reaches the goal, the nearest
    is used; ``routed`` False: the zero router is served).
    """
    single_cost, single_quality = costs.mean(axis=0), scores.mean(axis=0)
    best_quality, strongest = float(single_quality.max()), int(np.argmax(single_quality))
    hull = zero_hull(single_cost, single_quality)
    mode = "lambda" if priced else "margin"
    knobs = [goal.value] if goal.kind == "lambda" else (LAMBDA_SWEEP if priced else MARGIN_GRID)
    settings = [_routed(Objective(mode, float(k)), pred, scores, costs, mean_costs, hull, single_cost, strongest)
                for k in knobs]
    counted = [s for s in settings if s.counts]
    if goal.kind == "lambda":
        setting = settings[0]
        chosen = setting if setting.counts else _mix_candidate(*zero_mix_at(hull, single_cost, setting.cost),
                                                                    single_cost, single_quality, strongest, models)
        met = True
    else:
        zero = _zero_candidates(hull, single_cost, single_quality, strongest, models)
        chosen, met = _select(goal, zero + counted, best_quality)
    return chosen.objective, {
        "cost": chosen.cost, "quality": chosen.quality, "strong_share": chosen.strong_share,
        "quality_vs_best": chosen.quality / best_quality if best_quality else 0.0, "met": met,
        "routed": chosen.routed, "margin_over_zero": chosen.margin, "margin_se": chosen.se,
        "settings": len(settings), "settings_beating_zero": len(counted),
        "deployed": chosen.objective.describe()}


def zero_router_note(goal: Goal, achieved: dict[str, Any]) -> str | None:
    """What the user must hear when the router will not route: nothing routed beat the zero router, or the zero
    router met the goal better."""
    if achieved["routed"]:
        return None
    if achieved["settings_beating_zero"] == 0:
        by = f" by {BEAT_SE:g} standard errors" if BEAT_SE else ""
        why = f"no routed setting beats the zero router (the best mix of single models) out of fold{by}"
    else:
        why = (f"the zero router (the best mix of single models) meets {goal} better out of fold than the "
               f"{achieved['settings_beating_zero']} routed settings that beat it")
    return (f"{why}: the router file serves {achieved['deployed']} (set router.options lambda or margin to route "
            "anyway)")
