"""The cost-quality objective: how predicted quality and expected cost become a ranking.

One implementation serves both the live policy (one request, a few candidates) and evaluation replay
(thousands of items at once), so offline figures measure exactly what production decides.

Modes (``value`` is the knob; larger always means cheaper choices):

* ``lambda``: maximise ``quality - value * cost / max_cost``; costs are relative to the dearest candidate so
  the knob keeps its meaning across price lists.
* ``margin``: the cheapest candidate predicted within ``value`` of the best predicted quality. Independent of
  prices, so an operating point calibrated on one catalog transfers to another.
* ``target``: the cheapest candidate predicted to score at least ``1 - value``; if none does, the best one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["lambda", "margin", "target"]
# Budget pressure above this starts pushing decisions toward cheaper models.
PRESSURE_START = 0.8


@dataclass(frozen=True)
class Objective:
    mode: Mode
    value: float

    def under_pressure(self, budget_pressure: float) -> Objective:
        """A cheaper-leaning objective as a budget nears exhaustion (pure function of the pressure).

        From 80% to 100% of a budget, ``lambda`` grows up to 4x plus 0.5 and ``margin``/``target`` loosen by
        up to 0.2, linearly.
        """
        if budget_pressure <= PRESSURE_START:
            return self
        boost = min((budget_pressure - PRESSURE_START) / (1.0 - PRESSURE_START), 1.0)
        if self.mode == "lambda":
            return Objective("lambda", self.value * (1.0 + 3.0 * boost) + 0.5 * boost)
        return Objective(self.mode, self.value + 0.2 * boost)


def rank(quality: Sequence[float], cost: Sequence[float], objective: Objective) -> tuple[list[int], list[float]]:
    """Candidate order, best first, and each candidate's objective score (higher is better).

    Plain Python floats: a live decision ranks a handful of candidates, where numpy's per-call overhead is most
    of the cost. Ties in score go to the cheaper candidate, then to the earlier one (a stable sort).
    """
    top = max(max(cost), 1e-12)
    rel_cost = [c / top for c in cost]
    if objective.mode == "lambda":
        value = objective.value
        utility = [q - value * r for q, r in zip(quality, rel_cost)]
    else:
        floor = max(quality) - objective.value if objective.mode == "margin" else 1.0 - objective.value
        floor -= 1e-12
        # Eligible first, cheapest first among them; the rest by predicted quality.
        utility = [2.0 - r if q >= floor else q - 1.0 for q, r in zip(quality, rel_cost)]
    order = sorted(range(len(utility)), key=lambda i: (-utility[i], rel_cost[i]))
    return order, utility


def choose_many(quality: np.ndarray, mean_cost: np.ndarray, objective: Objective) -> np.ndarray:
    """Vectorised first choice for ``quality`` (n x m) with per-model expected costs ``mean_cost`` (m,)."""
    rel = mean_cost / max(float(mean_cost.max()), 1e-12)
    tiny = 1e-9 * rel  # exact ties go to the cheaper model
    if objective.mode == "lambda":
        return np.argmax(quality - objective.value * rel - tiny, axis=1)
    if objective.mode == "margin":
        floor = quality.max(axis=1, keepdims=True) - objective.value
    else:
        floor = np.full((quality.shape[0], 1), 1.0 - objective.value)
    eligible = quality >= floor - 1e-12
    utility = np.where(eligible, 2.0 - rel, quality - 1.0) - tiny
    return np.argmax(utility, axis=1)
