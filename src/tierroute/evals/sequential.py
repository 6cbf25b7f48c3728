"""An always-valid one-sided test on the mean of bounded observations, by betting (Waudby-Smith & Ramdas 2023).

Each judgment gives ``x`` in [-1, 1] (1: the routed arm lost, -1: it won, 0: a tie). To test
``H0: E[x_t | past] <= m`` a bettor starts with capital 1 and stakes a fraction ``lam_t`` of it on "above m":

    K_t = prod_{i<=t} (1 + lam_i * (x_i - m)),      0 <= lam_i <= 1 / (2 * (1 + m))

Under H0, K is a nonnegative supermartingale whatever ``lam_i`` is, as long as it is chosen before ``x_i``
is seen. Ville's inequality then bounds ``P(K_t >= 1/alpha for some t) <= alpha``: checking after every
judgment, forever, keeps false alarms at ``alpha`` (no peeking penalty). The opposite side
(``H0: mean >= m``) bets on ``m - x`` the same way.

``lam`` is chosen from exponentially-weighted running moments of past observations: the predictable plug-in
``edge / (var + mu^2)``, clipped, where ``edge`` is the running mean less half its standard error. It is 0
while the data sit on the null side (the shrinkage keeps the running mean's noise from staking, which over
thousands of quiet judgments would burn capital and slow detection), and it grows within ~1/decay
observations after a change. Any predictable choice keeps the guarantee; this one makes detection after a
change fast (bench/bench_guard.py measures it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_DECAY = 0.1  # weight of the newest observation in the running moments: adapts within ~10 judgments
SHRINK = 0.5  # standard errors of the running mean held back before staking
PRIOR_VARIANCE = 0.25


@dataclass(slots=True)
class BettingTest:
    """The state of one test: ``side`` +1 tests for a mean above ``margin``, -1 for a mean below it."""

    margin: float
    side: int = 1
    log_capital: float = 0.0
    mean: float = 0.0      # running mean of the bet's payoff (side * (x - margin)), before this observation
    var: float = PRIOR_VARIANCE
    n: int = 0
    decay: float = DEFAULT_DECAY

    @property
    def max_stake(self) -> float:
        worst = 1.0 + self.side * self.margin  # the largest loss per unit staked: payoff >= -worst
        return 0.5 / worst

    def stake(self) -> float:
        if self.mean <= 0:
            return 0.0
        edge = self.mean - SHRINK * math.sqrt(self.var * self.decay / (2.0 - self.decay))
        if edge <= 0:
            return 0.0
        return min(self.max_stake, edge / (self.var + self.mean * self.mean))

    def observe(self, x: float) -> None:
        payoff = self.side * (x - self.margin)
        self.log_capital += math.log1p(self.stake() * payoff)
        d = self.decay
        delta = payoff - self.mean
        self.mean += d * delta
        self.var = (1 - d) * (self.var + d * delta * delta)
        self.n += 1

    def rejects(self, alpha: float) -> bool:
        return self.log_capital >= math.log(1.0 / alpha)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BettingTest:
        return cls(**data)


def confidence_interval(xs: Sequence[float], alpha: float, *, grid: int = 81) -> tuple[float, float]:
    """A confidence sequence for the mean of ``xs`` (each in [-1, 1]) at level ``1 - alpha``, read at the end:
    the values m that neither one-sided test (at alpha/2 each) has rejected. Valid at any stopping time."""
    if not xs:
        return (-1.0, 1.0)
    half = alpha / 2
    kept = []
    for i in range(grid):
        m = -1.0 + 2.0 * i / (grid - 1)
        up, down = BettingTest(max(m, -0.999), 1), BettingTest(min(m, 0.999), -1)
        for x in xs:
            up.observe(x)
            down.observe(x)
            if up.rejects(half) and down.rejects(half):
                break
        if not up.rejects(half) and not down.rejects(half):
            kept.append(m)
    if not kept:
        mean = sum(xs) / len(xs)
        return (mean, mean)
    step = 2.0 / (grid - 1)
    return (max(-1.0, kept[0] - step / 2), min(1.0, kept[-1] + step / 2))
