"""Bootstrap intervals for the evaluation's figures: how far each would move on another sample of items.

The evaluated items are resampled with replacement and every figure is recomputed on each resample from the
same predictions. The routers are not retrained, so an interval covers which items happened to be evaluated
(the larger part of the noise on files of a few hundred to a few thousand items), not what another training
set would have given. Percentile intervals from seeded resamples: the same command prints the same interval.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .metrics import (LAMBDA_SWEEP, CostQualityReport, compare_points, lambda_picks, oracle_picks,
                      two_model_report)
from .operating_point import mix_quality, zero_hull, zero_mix_at

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


def _two_model_figures(router_score: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> tuple[float, ...]:
    rep = two_model_report(router_score, strong, weak)
    return rep.apgr, rep.cpt50, rep.cpt80, rep.strong_share_for_95pct


def _cost_quality_figures(rep: CostQualityReport) -> tuple[float, ...]:
    share = np.nan if rep.cost_share_for_best_single is None else rep.cost_share_for_best_single
    return rep.aiq_router, rep.gap_closed, rep.min_margin_over_zero, share


def two_model_intervals(router_score: np.ndarray, strong: np.ndarray, weak: np.ndarray,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Interval]:
    """Intervals for APGR, CPT(50%), CPT(80%) and the strong share for 95% of strong quality."""
    values = [_two_model_figures(router_score[rows], strong[rows], weak[rows])
              for rows in resample_rows(len(router_score), resamples, seed)]
    return _intervals(TWO_MODEL_FIGURES, values)


class _ResampledCurves:
    """Routers', the oracle's and the single models' operating points, rescored on resamples of the items.

    Each item's choice at each lambda, a router's or the oracle's, does not depend on which other items are
    drawn, so the choices are made once and a resample only reweights them. Every point is a row of per-item
    choices; identical rows (many lambdas choose alike; a router's cheapest point is often a single model's) are
    summed once, so they come out bit-identical: a router point that is a single model's point must not land a
    rounding error to the right of it, where the router's curve is undefined.
    """

    def __init__(self, preds: Sequence[tuple[np.ndarray, np.ndarray]], models: Sequence[str], scores: np.ndarray,
                 costs: np.ndarray, lambdas: Sequence[float]) -> None:
        n, k = scores.shape
        blocks = [lambda_picks(pred, mean_costs, lambdas) for pred, mean_costs in preds]
        blocks += [oracle_picks(scores, costs), np.repeat(np.arange(k)[:, None], n, axis=1)]
        picks, which = np.unique(np.vstack(blocks), axis=0, return_inverse=True)
        self._which = which.ravel()
        self._cost = np.take_along_axis(costs.T, picks, axis=0)
        self._quality = np.take_along_axis(scores.T, picks, axis=0)
        self._ends = np.cumsum([len(block) for block in blocks])[:-1]
        self._models = list(models)

    def reports(self, drawn: np.ndarray) -> list[CostQualityReport]:
        """Each router's report on the items ``drawn`` (indices, with repeats)."""
        n = self._cost.shape[1]
        count = np.bincount(drawn, minlength=n)
        cost, quality = self._cost @ count / n, self._quality @ count / n
        points = list(zip(cost[self._which], quality[self._which]))
        *routers, oracle, singles = (points[a:b] for a, b in zip([0, *self._ends], [*self._ends, len(points)]))
        return [compare_points(router, dict(zip(self._models, singles)), oracle) for router in routers]


def cost_quality_intervals(pred: np.ndarray, mean_costs: np.ndarray, models: Sequence[str], scores: np.ndarray,
                           costs: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                           lambdas: Sequence[float] = tuple(LAMBDA_SWEEP)) -> dict[str, Interval]:
    """Intervals for the router's AIQ, the gap it closes, its worst margin over the zero router and the share of
    the best single model's cost at which it reaches that model's quality (the zero router, the oracle and the
    router all rescored on the same resample)."""
    curves = _ResampledCurves([(pred, mean_costs)], models, scores, costs, lambdas)
    values = [_cost_quality_figures(curves.reports(drawn)[0]) for drawn in resample_rows(len(scores), resamples, seed)]
    return _intervals(COST_QUALITY_FIGURES, values)


def operating_point_intervals(pick: np.ndarray, scores: np.ndarray, costs: np.ndarray,
                              resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Interval]:
    """Intervals for the deployed point's quality, cost, and its margin over the zero router at its cost (the
    single models' hull recomputed on each resample, as the point is)."""
    rows = np.arange(len(pick))
    chosen_quality, chosen_cost = scores[rows, pick], costs[rows, pick]
    values = []
    for drawn in resample_rows(len(pick), resamples, seed):
        s, c = scores[drawn], costs[drawn]
        cost, quality = float(chosen_cost[drawn].mean()), float(chosen_quality[drawn].mean())
        single_cost = c.mean(axis=0)
        zero = float(mix_quality(*zero_mix_at(zero_hull(single_cost, s.mean(axis=0)), single_cost, cost), s).mean())
        values.append((quality, cost, quality - zero))
    return _intervals(("quality", "cost", "margin_over_zero"), values)


def paired_two_model(first: np.ndarray, second: np.ndarray, strong: np.ndarray, weak: np.ndarray,
                     resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Interval]:
    """Intervals for ``second`` minus ``first`` in each two-model figure, both router scores on the same resamples
    (paired: far narrower than either figure's own interval when the routers agree on most items)."""
    values = [tuple(np.subtract(_two_model_figures(second[rows], strong[rows], weak[rows]),
                                _two_model_figures(first[rows], strong[rows], weak[rows])))
              for rows in resample_rows(len(first), resamples, seed)]
    return _intervals(TWO_MODEL_FIGURES, values)


def paired_cost_quality(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray],
                        models: Sequence[str], scores: np.ndarray, costs: np.ndarray,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                        lambdas: Sequence[float] = tuple(LAMBDA_SWEEP)) -> dict[str, Interval]:
    """Intervals for ``second`` minus ``first`` in each cost-quality figure; each router is (predictions, the
    expected cost per model it priced with). A figure undefined for either router on a resample is undefined."""
    curves = _ResampledCurves([first, second], models, scores, costs, lambdas)
    values = []
    for drawn in resample_rows(len(scores), resamples, seed):
        a, b = curves.reports(drawn)
        values.append(tuple(np.subtract(_cost_quality_figures(b), _cost_quality_figures(a))))
    return _intervals(COST_QUALITY_FIGURES, values)


def paired_mean(first: np.ndarray, second: np.ndarray, resamples: int = DEFAULT_RESAMPLES,
                seed: int = 0) -> Interval:
    """Interval for the mean of ``second`` minus ``first``, two per-item figures (a squared error, say) on the
    same resampled items."""
    diff = second - first
    values = [(float(diff[rows].mean()),) for rows in resample_rows(len(diff), resamples, seed)]
    return _intervals(("mean",), values)["mean"]
