import warnings

import numpy as np

from tierroute.evaluation.metrics import cost_quality_report, lambda_points, quality_by_strong_share, two_model_report
from tierroute.evaluation.uncertainty import cost_quality_intervals, resample_rows, two_model_intervals

RNG = np.random.default_rng(0)


def _tie_loop(score: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """The straightforward per-group loop that ``quality_by_strong_share`` replaced with array arithmetic."""
    order = np.argsort(-score, kind="stable")
    s, gain = score[order], (strong - weak)[order]
    cum = np.concatenate(([0.0], np.cumsum(gain)))
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(s) != 0) + 1, [s.size]))
    out = cum.copy()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi - lo > 1:
            out[lo:hi + 1] = np.linspace(cum[lo], cum[hi], hi - lo + 1)
    return (weak.sum() + out) / s.size


def test_tie_groups_match_the_per_group_loop_to_the_bit() -> None:
    for trial in range(60):
        n = int(RNG.integers(1, 2000))
        score = [RNG.normal(size=n), RNG.integers(0, 4, n).astype(float), np.zeros(n),
                 np.round(RNG.normal(size=n), 1)][trial % 4]
        strong, weak = RNG.random(n), (RNG.random(n) < 0.6).astype(float)
        assert np.array_equal(quality_by_strong_share(score, strong, weak), _tie_loop(score, strong, weak))


def _two_model(n: int, signal: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    strong = (RNG.random(n) < 0.8).astype(float)
    weak = (RNG.random(n) < 0.6).astype(float)
    return (strong - weak) * signal + RNG.normal(size=n), strong, weak


def test_two_model_intervals_cover_the_figure_and_shrink_with_more_items() -> None:
    widths = []
    for n in (300, 6000):
        score, strong, weak = _two_model(n, 1.0)
        intervals = two_model_intervals(score, strong, weak, resamples=300)
        lo, hi = intervals["apgr"]
        assert lo < two_model_report(score, strong, weak).apgr < hi
        assert 0.5 < lo  # a router with real signal is above random even at the low end
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(20) as wide in theory
    assert two_model_intervals(score, strong, weak, 50) == two_model_intervals(score, strong, weak, 50)  # seeded


def test_resamples_repeat_for_a_seed() -> None:
    assert all(np.array_equal(a, b) for a, b in zip(resample_rows(50, 5), resample_rows(50, 5)))
    assert not all(np.array_equal(a, b) for a, b in zip(resample_rows(50, 5), resample_rows(50, 5, seed=1)))


def _many_models(n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    k = 4
    scores = (RNG.random((n, k)) < np.array([0.55, 0.7, 0.8, 0.9])).astype(float)
    costs = np.array([1.0, 2.0, 5.0, 20.0]) * RNG.uniform(0.5, 2.0, (n, 1)) * 1e-5  # per-item prices vary
    return scores, costs, [f"m{j}" for j in range(k)]


def test_cost_quality_intervals_for_an_informed_router() -> None:
    scores, costs, models = _many_models(600)
    pred = np.clip(0.6 * scores + 0.4 * RNG.random(scores.shape), 0, 1)
    mean_costs = costs.mean(axis=0)
    point = cost_quality_report(lambda_points(pred, mean_costs, scores, costs), models, scores, costs)
    intervals = cost_quality_intervals(pred, mean_costs, models, scores, costs, resamples=200)
    lo, hi = intervals["gap_closed"]
    assert 0.0 < lo < point.gap_closed < hi < 1.0
    lo, hi = intervals["aiq_router"]
    assert lo < point.aiq_router < hi


def test_a_router_that_is_a_single_model_at_its_cheap_end_keeps_a_defined_margin() -> None:
    """Its cheapest point is the cheapest model's point: on every resample the two must coincide exactly, or the
    router's curve would start a rounding error right of the zero router's and the margin would read -1."""
    scores, costs, models = _many_models(437)
    pred = np.tile(scores.mean(axis=0), (len(scores), 1))  # the zero router's predictions: no per-item signal
    intervals = cost_quality_intervals(pred, costs.mean(axis=0), models, scores, costs, resamples=300)
    lo, hi = intervals["min_margin_over_zero"]
    assert -0.05 < lo <= hi <= 1e-12


def test_a_figure_that_is_never_reached_has_no_interval_and_no_warning() -> None:
    scores, costs, models = _many_models(300)
    pred = np.tile([0.9, 0.1, 0.1, 0.1], (len(scores), 1))  # always the cheapest model: never the best's quality
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        intervals = cost_quality_intervals(pred, costs.mean(axis=0), models, scores, costs, resamples=100)
    assert intervals["cost_share_for_best_single_quality"] is None
    assert intervals["aiq_router"] is not None
