"""The always-valid test: false alarms bounded under continuous monitoring, changes detected after quiet."""

from __future__ import annotations

import random

from tierroute.evals.sequential import BettingTest, confidence_interval


def draw(rng: random.Random, loss: float, win: float) -> int:
    u = rng.random()
    return 1 if u < loss else (-1 if u < loss + win else 0)


def test_false_alarms_stay_under_alpha_when_checked_after_every_judgment():
    rng = random.Random(7)
    alarms = 0
    runs = 200
    for _ in range(runs):
        test = BettingTest(margin=0.1)
        for _ in range(500):  # at the null's edge: mean(loss - win) = 0.1
            test.observe(draw(rng, 0.3, 0.2))
            if test.rejects(0.05):
                alarms += 1
                break
    assert alarms / runs <= 0.05 + 0.03  # 0.05 plus sampling slack over 200 runs


def test_a_change_after_a_long_quiet_period_is_still_detected_quickly():
    rng = random.Random(3)
    test = BettingTest(margin=0.1)
    for _ in range(2000):
        test.observe(draw(rng, 0.1, 0.2))
    assert not test.rejects(0.05)
    for n in range(1, 200):
        test.observe(draw(rng, 0.7, 0.05))
        if test.rejects(0.05):
            break
    assert n < 60


def test_the_opposite_side_establishes_recovery():
    test = BettingTest(margin=0.2, side=-1)
    n = 0
    while not test.rejects(0.05):
        test.observe(0)
        n += 1
    assert 10 < n < 60


def test_the_interval_covers_the_mean_and_narrows():
    rng = random.Random(1)
    xs = [draw(rng, 0.3, 0.1) for _ in range(400)]
    lo, hi = confidence_interval(xs, 0.05)
    assert lo < 0.2 < hi and hi - lo < 0.5
    wide = confidence_interval(xs[:20], 0.05)
    assert wide[1] - wide[0] > hi - lo
