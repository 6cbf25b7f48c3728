"""Router quality metrics: two-model gap recovery (APGR, CPT) and many-model cost-quality curves (AIQ).

Two-model (RouteLLM, Ong et al. 2024): route the share ``x`` of items with the highest router score to the
strong model; ``PGR(x) = (q(x) - q_weak) / (q_strong - q_weak)``; APGR is the area under PGR over x in [0, 1];
CPT(p) is the smallest x with PGR >= p. Items with tied router scores are routed as a random tie-break would
in expectation (linear interpolation inside each tie group), so a constant router scores exactly 0.5.

Many-model with costs (RouterBench, Hu et al. 2024): each operating point of a router is an (average cost,
average quality) pair; mixing two operating points at random achieves any point on the segment between them,
so a router's curve is the upper convex hull of its points. The zero router is that hull over the single
models; the oracle sweeps the same trade-off with true scores. AIQ is the mean of a curve over the cost range
spanned by the single models (flat to the right of a curve's last point, absent to the left of its first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..policies.objective import Objective, choose_many

# Wide enough that the dear end is pure quality (0) and the cheap end is the cheapest model alone: lambda x the
# smallest relative price step must exceed any predicted quality difference, or the curve never reaches the
# cheap end and loses to the zero router there (RouterBench ARC: price steps of 1% of the dearest model).
LAMBDA_SWEEP = np.concatenate(([0.0], np.geomspace(1e-3, 1e4, 120)))


def quality_by_strong_share(router_score: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Average quality when the top-k items by ``router_score`` go to strong, for k = 0..n (tie-aware)."""
    order = np.argsort(-router_score, kind="stable")
    s = router_score[order]
    gain = (strong - weak)[order]
    n = s.size
    cum = np.concatenate(([0.0], np.cumsum(gain)))
    # Inside each tie group, replace the cumulative gain by the straight line between the group's endpoints,
    # every group at once, with np.linspace's arithmetic (start + k * step), so the figures match it to the bit.
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    width = np.diff(np.append(starts, n))
    lo, w = starts[width > 1], width[width > 1]
    out = cum.copy()
    if lo.size:
        inner = w - 1
        group = np.repeat(np.arange(lo.size), inner)
        k = np.arange(inner.sum()) - np.repeat(np.cumsum(inner) - inner, inner) + 1
        step = (cum[lo + w] - cum[lo]) / w
        out[lo[group] + k] = k * step[group] + cum[lo[group]]
    return (weak.sum() + out) / n


@dataclass(frozen=True)
class TwoModelReport:
    """Gap-recovery figures for one router on two-model data."""

    apgr: float
    cpt50: float
    cpt80: float
    strong_share_for_95pct: float
    q_strong: float
    q_weak: float
    pgr_curve: tuple[tuple[float, float], ...]

    def as_dict(self) -> dict[str, float]:
        return {"apgr": self.apgr, "cpt50": self.cpt50, "cpt80": self.cpt80,
                "strong_share_for_95pct_quality": self.strong_share_for_95pct,
                "q_strong": self.q_strong, "q_weak": self.q_weak}


def strong_and_weak(scores: np.ndarray) -> tuple[int, int]:
    """Two-model data's columns: strong = the model with the higher mean score (a tie: the first), then weak."""
    strong = int(np.argmax(scores.mean(axis=0)))
    return strong, 1 - strong


def two_model_report(router_score: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> TwoModelReport:
    """APGR, CPT(50%), CPT(80%) and the strong share needed for 95% of the strong model's quality."""
    router_score = np.asarray(router_score, dtype=np.float64)
    q = quality_by_strong_share(router_score, strong.astype(np.float64), weak.astype(np.float64))
    x = np.linspace(0.0, 1.0, q.size)
    q_s, q_w = float(strong.mean()), float(weak.mean())
    gap = q_s - q_w
    pgr = (q - q_w) / gap if gap != 0 else np.zeros_like(q)
    apgr = float(np.sum((pgr[1:] + pgr[:-1]) * 0.5 * np.diff(x)))

    def first_share(mask: np.ndarray) -> float:
        hit = np.flatnonzero(mask)
        return float(x[hit[0]]) if hit.size else 1.0

    step = max(1, q.size // 200)
    curve = tuple((float(a), float(b)) for a, b in zip(x[::step], pgr[::step]))
    return TwoModelReport(apgr=apgr, cpt50=first_share(pgr >= 0.5 - 1e-12), cpt80=first_share(pgr >= 0.8 - 1e-12),
                          strong_share_for_95pct=first_share(q >= 0.95 * q_s - 1e-12), q_strong=q_s, q_weak=q_w,
                          pgr_curve=curve)


def upper_hull(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-decreasing upper convex hull of (cost, quality) points, cheapest first.

    Points that cost more without adding quality are dropped: paying more for less is never chosen.
    """
    pts = sorted(set((float(c), float(q)) for c, q in points), key=lambda p: (p[0], -p[1]))
    best: list[tuple[float, float]] = []
    for p in pts:  # keep only points improving quality as cost rises
        if not best or p[1] > best[-1][1]:
            best.append(p)
    hull: list[tuple[float, float]] = []
    for p in best:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (p[0] - x1) <= (p[1] - y1) * (x2 - x1):
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def curve_at(hull: Sequence[tuple[float, float]], cost: np.ndarray) -> np.ndarray:
    """Quality of a hull at each cost: interpolated, flat right of its end, NaN left of its start."""
    xs = np.array([p[0] for p in hull])
    ys = np.array([p[1] for p in hull])
    out = np.interp(cost, xs, ys, left=np.nan, right=ys[-1])
    return out


def aiq(hull: Sequence[tuple[float, float]], lo: float, hi: float, n: int = 2001) -> float:
    """Average quality of a curve over costs [lo, hi] (a curve starting above ``lo`` scores 0 below it)."""
    grid = np.linspace(lo, hi, n)
    q = np.nan_to_num(curve_at(hull, grid), nan=0.0)
    return float(np.mean(q))


def oracle_picks(scores: np.ndarray, costs: np.ndarray, n_lambdas: int = 200) -> np.ndarray:
    """The oracle's choice per item (columns) at each lambda (rows): the model maximising true score - lambda * cost."""
    scale = float(np.nanmax(costs)) or 1.0
    lambdas = np.concatenate(([0.0], np.geomspace(1e-4, 1e4, n_lambdas)))
    # cheaper wins exact ties
    return np.array([np.argmax(scores - lam * costs / scale - 1e-9 * costs / scale, axis=1) for lam in lambdas])


def oracle_points(scores: np.ndarray, costs: np.ndarray, n_lambdas: int = 200) -> list[tuple[float, float]]:
    """Operating points of the oracle (``oracle_picks``) as (mean cost, mean quality)."""
    rows = np.arange(scores.shape[0])
    return [(float(costs[rows, pick].mean()), float(scores[rows, pick].mean()))
            for pick in oracle_picks(scores, costs, n_lambdas)]


def lambda_picks(pred: np.ndarray, mean_costs: np.ndarray,
                 lambdas: Sequence[float] = tuple(LAMBDA_SWEEP)) -> np.ndarray:
    """The router's choice per item (columns) at each ``lambda`` (rows): what ``choose_many`` picks from ``pred``."""
    return np.array([choose_many(pred, mean_costs, Objective("lambda", float(lam))) for lam in lambdas])


def lambda_points(pred: np.ndarray, mean_costs: np.ndarray, scores: np.ndarray, costs: np.ndarray,
                  lambdas: Sequence[float] = tuple(LAMBDA_SWEEP)) -> list[tuple[float, float]]:
    """A router's (mean cost, mean quality) at each ``lambda`` (``lambda_picks``).

    Every point is reachable by configuration (``Objective("lambda", value)``); the hull between two of them is
    reachable by sending a random share of requests to each setting, as for the zero router's mixes.
    """
    rows = np.arange(scores.shape[0])
    return [(float(costs[rows, pick].mean()), float(scores[rows, pick].mean()))
            for pick in lambda_picks(pred, mean_costs, lambdas)]


@dataclass(frozen=True)
class CostQualityReport:
    """Many-model figures: router, zero router and oracle curves, AIQ of each, and the gap closed."""

    router_hull: tuple[tuple[float, float], ...]
    zero_hull: tuple[tuple[float, float], ...]
    oracle_hull: tuple[tuple[float, float], ...]
    singles: dict[str, tuple[float, float]]
    aiq_router: float
    aiq_zero: float
    aiq_oracle: float
    gap_closed: float
    min_margin_over_zero: float
    cost_share_for_best_single: float | None
    best_single: str

    def at_model_costs(self) -> dict[str, dict[str, float | None]]:
        """Per single model, at its mean cost: its own quality, and the zero router's, the router's and the
        oracle's curves there (None where a curve has not started yet)."""
        out: dict[str, dict[str, float | None]] = {}
        for m, (c, q) in sorted(self.singles.items(), key=lambda kv: kv[1][0]):
            row: dict[str, float | None] = {"cost": c, "quality": q}
            for name, hull in (("zero", self.zero_hull), ("router", self.router_hull), ("oracle", self.oracle_hull)):
                v = float(curve_at(hull, np.array([c]))[0])
                row[name] = None if np.isnan(v) else v
            out[m] = row
        return out

    def as_dict(self) -> dict[str, object]:
        return {"aiq_router": self.aiq_router, "aiq_zero": self.aiq_zero, "aiq_oracle": self.aiq_oracle,
                "gap_closed": self.gap_closed, "min_margin_over_zero": self.min_margin_over_zero,
                "best_single": self.best_single,
                "cost_share_for_best_single_quality": self.cost_share_for_best_single,
                "singles": {m: {"cost": c, "quality": q} for m, (c, q) in self.singles.items()},
                "at_model_costs": self.at_model_costs(),
                "curves": {"router": [list(p) for p in self.router_hull], "zero": [list(p) for p in self.zero_hull],
                           "oracle": [list(p) for p in self.oracle_hull]}}


def cost_quality_report(router_points: Sequence[tuple[float, float]], models: Sequence[str], scores: np.ndarray,
                        costs: np.ndarray) -> CostQualityReport:
    """Compare a router's operating points with the zero router and the oracle on the same items."""
    singles = {m: (float(costs[:, j].mean()), float(scores[:, j].mean())) for j, m in enumerate(models)}
    return compare_points(router_points, singles, oracle_points(scores, costs))


def compare_points(router_points: Sequence[tuple[float, float]], singles: dict[str, tuple[float, float]],
                   oracle: Sequence[tuple[float, float]]) -> CostQualityReport:
    """``cost_quality_report`` from the points themselves (the bootstrap reweights the points, not the items)."""
    lo = min(c for c, _ in singles.values())
    hi = max(c for c, _ in singles.values())
    zero = upper_hull(list(singles.values()))
    oracle_hull = upper_hull(oracle)
    router = upper_hull(router_points)
    a_r, a_z, a_o = aiq(router, lo, hi), aiq(zero, lo, hi), aiq(oracle_hull, lo, hi)
    grid = np.linspace(lo, hi, 401)
    rq, zq = curve_at(router, grid), curve_at(zero, grid)
    margin = float(np.nanmin(np.nan_to_num(rq, nan=-1.0) - zq))
    best_model = max(singles, key=lambda m: (singles[m][1], -singles[m][0]))
    best_cost, best_q = singles[best_model]
    share = None
    if router and router[-1][1] >= best_q - 1e-12 and best_cost > 0:
        xs, ys = np.array([p[0] for p in router]), np.array([p[1] for p in router])
        share = float(np.interp(best_q, ys, xs)) / best_cost if ys[0] < best_q else xs[0] / best_cost
    gap = (a_r - a_z) / (a_o - a_z) if a_o > a_z else 0.0
    return CostQualityReport(tuple(router), tuple(zero), tuple(oracle_hull), singles, a_r, a_z, a_o, gap, margin,
                             share, best_model)


def routing_summary(pred: np.ndarray, scores: np.ndarray, costs: np.ndarray, mean_costs: np.ndarray,
                    models: Sequence[str]) -> dict[str, float]:
    """The headline figures of predictions on complete outcomes: APGR and CPT(50%) for two models; AIQ against
    the zero router and the oracle, the gap closed and the worst margin with costs and three or more models;
    nothing for other shapes (no routing curve to score)."""
    if scores.shape[1] == 2:
        strong, weak = strong_and_weak(scores)
        rep = two_model_report(pred[:, strong] - pred[:, weak], scores[:, strong], scores[:, weak])
        return {"apgr": rep.apgr, "cpt50": rep.cpt50}
    if scores.shape[1] > 2 and np.isfinite(costs).all():
        cq = cost_quality_report(lambda_points(pred, mean_costs, scores, costs), models, scores, costs)
        return {"aiq_router": cq.aiq_router, "aiq_zero": cq.aiq_zero, "aiq_oracle": cq.aiq_oracle,
                "gap_closed": cq.gap_closed, "min_margin_over_zero": cq.min_margin_over_zero}
    return {}
