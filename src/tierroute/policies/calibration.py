"""Calibration: make predicted scores mean what they say, and turn a user's goal into an operating point.

Probability calibration (Platt scaling per model) and the reliability figures we report (Brier, ECE), fitted on
held-out (out-of-fold) predictions, never on the items a predictor was trained on; and the user's goal for the
operating point (``Goal``), which ``evaluation.operating_point`` meets on the same out-of-fold predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

GoalKind = Literal["cost", "strong_share", "quality", "lambda"]
GOAL_KINDS: tuple[str, ...] = ("cost", "strong_share", "quality", "lambda")


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept on the logit minimising log-loss against (possibly fractional) targets ``y``."""
    a, b = 1.0, 0.0
    for _ in range(50):  # Newton steps on a 2-parameter convex problem
        p = 1.0 / (1.0 + np.exp(-np.clip(a * logits + b, -30, 30)))
        g = p - y
        w = np.maximum(p * (1 - p), 1e-9)
        grad = np.array([np.dot(g, logits), g.sum()]) + np.array([1e-4 * (a - 1.0), 0.0])
        h = np.array([[np.dot(w, logits * logits) + 1e-4, np.dot(w, logits)], [np.dot(w, logits), w.sum()]])
        step = np.linalg.solve(h + 1e-9 * np.eye(2), grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-7:
            break
    return float(a), float(b)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    total = 0.0
    for k in range(bins):
        m = which == k
        if m.any():
            total += m.mean() * abs(float(p[m].mean()) - float(y[m].mean()))
    return total


@dataclass(frozen=True)
class Goal:
    """What the user wants from the router, parsed from ``kind=value`` (e.g. ``quality=0.95``)."""

    kind: GoalKind
    value: float

    @classmethod
    def parse(cls, text: str) -> Goal:
        kind, sep, value = text.partition("=")
        kind = kind.strip().replace("-", "_")
        if not sep or kind not in GOAL_KINDS:
            raise ValueError("goal must be cost=USD, strong_share=0-1, quality=0-1 (share of best model) or "
                             f"lambda=quality points per dearest model's cost, got {text!r}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"goal value is not a number: {text!r}") from None
        if not v >= 0 or (kind in ("strong_share", "quality") and v > 1.5):
            raise ValueError(f"goal value out of range: {text!r}")
        return cls(kind, v)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"
