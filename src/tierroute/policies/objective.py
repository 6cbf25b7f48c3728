"""The cost-quality objective: how predicted quality and expected cost become a ranking.

One implementation serves both the live policy (one request, a few candidates) and evaluation replay
(thousands of items at once), so offline figures measure exactly what production decides.

Modes (``value`` is the knob; larger always means cheaper choices):

* ``lambda``: maximise ``quality - value * cost / max_cost``; costs are relative to the dearest candidate so
  the knob keeps its meaning across price lists.
* ``margin``: the cheapest candidate predicted within ``value`` of the best predicted quality. Independent of
  prices, so an operating point calibrated on one catalog transfers to another.
* ``target``: the cheapest candidate predicted to score at least ``1 - value``; if none does, the best one.
* ``mix``: no routing: ``models`` (one or two) are served, a stable hash of the routing text sending the share
  ``value`` of requests to the second. What a trained router deploys when no routed setting beat the zero router
  (the best mix of single models) out of fold (``evaluation.operating_point``).

Prices: ``lambda`` weighs cost relative to a scale, by default the dearest candidate's cost; a trained router
that recorded costs passes its dearest model's mean recorded cost as ``scale`` (``LearnedPolicy``), so the knob
means what it meant when it was calibrated whichever candidates a request has.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["lambda", "margin", "target", "mix"]
# Budget pressure above this starts pushing decisions toward cheaper models.
PRESSURE_START = 0.8


@dataclass(frozen=True)
class Objective:
    mode: Mode
    value: float
    # ``mix`` only: the model(s) served without routing, names as the trained router knows them; ``value`` is
    # the share of requests sent to the second.
    models: tuple[str, ...] = ()

    def under_pressure(self, budget_pressure: float) -> Objective:
        """A cheaper-leaning objective as a budget nears exhaustion (pure function of the pressure).

        From 80% to 100% of a budget, ``lambda`` grows up to 4x plus 0.5 and ``margin``/``target`` loosen by
        up to 0.2, linearly. A ``mix`` stays as it is (the router's own limits shift still applies).
        """
        if budget_pressure <= PRESSURE_START or self.mode == "mix":
            return self
        boost = min((budget_pressure - PRESSURE_START) / (1.0 - PRESSURE_START), 1.0)
        if self.mode == "lambda":
            return Objective("lambda", self.value * (1.0 + 3.0 * boost) + 0.5 * boost)
        return Objective(self.mode, self.value + 0.2 * boost)


    def describe(self) -> str:
        if self.mode != "mix":
            return f"{self.mode}={self.value:.3g}"
        if len(self.models) == 1 or self.value <= 0:
            return f"no routing: {self.models[0]}"
        return f"no routing: {1 - self.value:.0%} {self.models[0]}, {self.value:.0%} {self.models[1]}"


def mix_position(text: str) -> float:
    """Where a request falls in [0, 1) for a ``mix``: a stable hash of its routing text, so replaying the data
    splits the items exactly as the gateway splits the requests."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) / 2.0**32


def mix_choice(objective: Objective, text: str) -> str:
    """The model a ``mix`` objective serves for this routing text."""
    second = len(objective.models) > 1 and mix_position(text) < objective.value
    return objective.models[1] if second else objective.models[0]


def rank_mix(ids: Sequence[str], quality: Sequence[float], served: str,
             models: Sequence[str]) -> tuple[list[int], list[float]]:
    """A ``mix`` decision's order: the served model, then the mix's other model, then the rest by predicted
    quality (the fallbacks when the served model is filtered out or fails)."""
    utility = [3.0 if i == served else 2.0 if i in models else q for i, q in zip(ids, quality)]
    order = sorted(range(len(utility)), key=lambda i: -utility[i])
    return order, utility


def rank(quality: Sequence[float], cost: Sequence[float], objective: Objective,
         scale: float | None = None) -> tuple[list[int], list[float]]:
    """Candidate order, best first, and each candidate's objective score (higher is better).

    ``lambda`` weighs ``cost / scale``; without a scale, the cost relative to the dearest candidate.
    Plain Python floats: a live decision ranks a handful of candidates, where numpy's per-call overhead is most
    of the cost. Ties in score go to the cheaper candidate, then to the earlier one (a stable sort).
    """
    top = scale if scale else max(max(cost), 1e-12)
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
    """Vectorised first choice for ``quality`` (n x m) with per-model expected costs ``mean_cost`` (m,); costs
    relative to the dearest model's, which is the ``scale`` a trained router passes the live ``rank``.
    ``mix`` needs the routing texts: ``evaluation.replay.choose`` handles it."""
    if objective.mode == "mix":
        raise ValueError("a mix objective chooses by routing text: use evaluation.replay.choose")
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
