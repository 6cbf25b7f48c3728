import numpy as np

from tierroute.evaluation.metrics import aiq, cost_quality_report, two_model_report, upper_hull

RNG = np.random.default_rng(0)
STRONG = (RNG.random(2000) < 0.8).astype(float)
WEAK = (RNG.random(2000) < 0.6).astype(float)


def test_constant_router_is_random_baseline() -> None:
    rep = two_model_report(np.zeros(2000), STRONG, WEAK)
    assert abs(rep.apgr - 0.5) < 1e-9
    assert abs(rep.cpt50 - 0.5) < 0.01


def test_oracle_beats_random_and_anti_oracle_loses() -> None:
    gain = STRONG - WEAK
    assert two_model_report(gain, STRONG, WEAK).apgr > 0.8
    assert two_model_report(-gain, STRONG, WEAK).apgr < 0.2
    assert two_model_report(gain, STRONG, WEAK).cpt50 < 0.2


def test_hull_and_aiq() -> None:
    hull = upper_hull([(1, 0.5), (2, 0.9), (3, 0.8), (1.5, 0.6), (4, 0.95)])
    assert hull == [(1.0, 0.5), (2.0, 0.9), (4.0, 0.95)]  # (1.5, 0.6) is under the chord, (3, 0.8) dominated
    assert abs(aiq([(0.0, 1.0)], 0.0, 1.0) - 1.0) < 1e-12


def test_zero_router_reproduces_single_models() -> None:
    scores = np.column_stack([STRONG, WEAK])
    costs = np.column_stack([np.full(2000, 1.0), np.full(2000, 0.1)])
    singles = [(1.0, STRONG.mean()), (0.1, WEAK.mean())]
    rep = cost_quality_report(singles, ["s", "w"], scores, costs)
    assert abs(rep.aiq_router - rep.aiq_zero) < 1e-9 and abs(rep.gap_closed) < 1e-9
    assert rep.aiq_oracle > rep.aiq_zero
    assert rep.cost_share_for_best_single == 1.0
