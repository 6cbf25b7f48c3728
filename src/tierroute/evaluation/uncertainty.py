"""Bootstrap intervals for the evaluation's figures: how far each would move on another sample of items.

The evaluated items are resampled with replacement and every figure is recomputed on each resample from the
same predictions. The routers are not retrained, so an interval covers which items happened to be evaluated
(the larger part of the noise on files of a few hundred to a few thousand items), not what another training
set would have given. Percentile intervals from seeded resamples: the same command prints the same interval.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .metrics import LAMBDA_SWEEP, compare_points, lambda_picks, oracle_picks, two_model_report

LEVEL = 0.95
DEFAULT_RESAMPLES = 1000
TWO_MODEL_FIGURES = ("apgr", "cpt50", "cpt80", "strong_share_for_95pct_quality")
COST_QUALITY_FIGURES = ("aiq_router", "gap_closed", "min_margin_over_zero", "cost_share_for_best_single_quality")

Interval = tuple[float, float] | None  # None: the figure is undefined ("never") on too many resamples to bound


def resample_rows(n: int, resamples: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``resamples`` seeded draws of ``n`` row indices with replacement (the same sequence for the same seed)."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(0, n, n)


def _intervals(names: Sequence[str], values: list[tuple[float, ...]]) -> dict[str, Interval]:
    """Central ``LEVEL`` percentile interval of each column. NaN (undefined: "never") ranks above every value; if
    it reaches the upper percentile the interval is None. It stands in as the largest float, not infinity, so
    interpolating next to it stays finite."""
    table = np.array(values, dtype=np.float64)
    tail = 100 * (1 - LEVEL) / 2
    never = np.finfo(np.float64).max
    out: dict[str, Interval] = {}
    for name, column in zip(names, table.T):
        lo, hi = np.percentile(np.where(np.isnan(column), never, column), [tail, 100 - tail])
        out[name] = None if hi > never / 2 else (float(lo), float(hi))
    return out


def two_model_intervals(router_score: np.ndarray, strong: np.ndarray, weak: np.ndarray,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Interval]:
    """Intervals for APGR, CPT(50%), CPT(80%) and the strong share for 95% of strong quality."""
    values = []
    for rows in resample_rows(len(router_score), resamples, seed):
        rep = two_model_report(router_score[rows], strong[rows], weak[rows])
        values.append((rep.apgr, rep.cpt50, rep.cpt80, rep.strong_share_for_95pct))
    return _intervals(TWO_MODEL_FIGURES, values)


def cost_quality_intervals(pred: np.ndarray, mean_costs: np.ndarray, models: Sequence[str], scores: np.ndarray,
                           costs: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                           lambdas: Sequence[float] = tuple(LAMBDA_SWEEP)) -> dict[str, Interval]:
    """Intervals for the router's AIQ, the gap it closes, its worst margin over the zero router and the share of
    the best single model's cost at which it reaches that model's quality.

    Each item's choice at each lambda, the router's and the oracle's, does not depend on which other items are
    drawn, so the choices are made once and a resample only reweights them; the zero router, the oracle and the
    router are all rescored on the same resample.
    """
    n, k = scores.shape
    router, oracle = lambda_picks(pred, mean_costs, lambdas), oracle_picks(scores, costs)
    singles = np.repeat(np.arange(k)[:, None], n, axis=1)
    # Every point is a row of per-item choices. Identical rows (many lambdas choose alike; the router's cheapest
    # point is a single model) are summed once, so they come out bit-identical: a router point that is a single
    # model's point must not land a rounding error to the right of it, where the router's curve is undefined.
    picks, which = np.unique(np.vstack([router, oracle, singles]), axis=0, return_inverse=True)
    which = which.ravel()
    item_cost, item_quality = np.take_along_axis(costs.T, picks, axis=0), np.take_along_axis(scores.T, picks, axis=0)
    ends = np.cumsum([len(router), len(oracle)])
    values = []
    for drawn in resample_rows(n, resamples, seed):
        count = np.bincount(drawn, minlength=n)
        cost, quality = item_cost @ count / n, item_quality @ count / n
        points = list(zip(cost[which], quality[which]))
        rep = compare_points(points[:ends[0]], dict(zip(models, points[ends[1]:])), points[ends[0]:ends[1]])
        share = np.nan if rep.cost_share_for_best_single is None else rep.cost_share_for_best_single
        values.append((rep.aiq_router, rep.gap_closed, rep.min_margin_over_zero, share))
    return _intervals(COST_QUALITY_FIGURES, values)
