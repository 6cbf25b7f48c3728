"""How training compares candidates on out-of-fold predictions: the routing metric, the standard errors that
decide whether two candidates differ, Platt steps, and the race that drops clearly worse configurations early.

Every choice inside ``train.fit_predictor`` goes through these: Brier with one-standard-error ties broken by the
routing metric (``train._choose``), the paired auxiliary-target test (``auxiliary.cross_fit_auxiliary``) and
the race over (weighting, C) on the first inner fold (``race``).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from ..policies.calibration import brier, fit_platt
from ..policies.predictors.base import sigmoid
from .data import OutcomeSet
from .metrics import aiq, lambda_points, strong_and_weak, two_model_report, upper_hull
from .uncertainty import resample_rows

Config = TypeVar("Config")


def routing_score(pred: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> tuple[str, float]:
    """The routing figure a user judges a router by, computed on out-of-fold predictions (higher is better).

    Two models: APGR of predicted strong - weak quality. Three or more with recorded costs: AIQ over the lambda
    sweep (gap closed is AIQ shifted and scaled by constants of the data, so it ranks the same). Otherwise
    (no costs, or one model) there is no routing curve to score, so the figure is minus the Brier score.
    """
    metric = routing_metric(scores, costs)
    if metric == "apgr":
        strong, weak = strong_and_weak(scores)
        return metric, two_model_report(pred[:, strong] - pred[:, weak], scores[:, strong], scores[:, weak]).apgr
    if metric == "aiq":
        mean_costs = costs.mean(axis=0)
        hull = upper_hull(lambda_points(pred, mean_costs, scores, costs))
        return metric, aiq(hull, float(mean_costs.min()), float(mean_costs.max()))
    return metric, -brier(pred, scores)


def routing_metric(scores: np.ndarray, costs: np.ndarray) -> str:
    """Which figure ``routing_score`` computes for data of this shape: "apgr", "aiq" or "-brier"."""
    if scores.shape[1] == 2:
        return "apgr"
    return "aiq" if scores.shape[1] > 2 and np.isfinite(costs).all() else "-brier"


def standard_error(diff: np.ndarray) -> float:
    """Standard error of the mean of a per-item difference (paired: the same items scored two ways)."""
    return float(np.std(diff)) / np.sqrt(len(diff))


def bootstrap_se(first: np.ndarray, second: np.ndarray, data: OutcomeSet, resamples: int = 100) -> float:
    """Bootstrap standard error of the routing metric of ``first`` minus that of ``second`` (paired: the same
    resampled items for both; seeded, so a training run repeats exactly)."""
    gains = []
    for rows in resample_rows(len(data), resamples, seed=0):
        scores, costs = data.scores[rows], data.costs[rows]
        gains.append(routing_score(first[rows], scores, costs)[1] - routing_score(second[rows], scores, costs)[1])
    return float(np.std(gains))


def platt_steps(logits: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each model's Platt step (scale, shift) on its out-of-fold logits, over the items it has a score for."""
    fits = []
    for j in range(scores.shape[1]):
        seen = np.isfinite(scores[:, j])
        if seen.all():  # complete outcomes: the column as it is, no masked copy
            fits.append(fit_platt(logits[:, j], scores[:, j]))
        else:
            fits.append(fit_platt(logits[seen, j], scores[seen, j]) if seen.any() else (1.0, 0.0))
    return np.array([a for a, _ in fits]), np.array([b for _, b in fits])


def race(logits: dict[Config, np.ndarray], scores: np.ndarray, z: float) -> list[Config]:
    """The configurations whose Brier on one fold's held-out ``logits`` (each through its own Platt step) is
    within ``z`` standard errors of the best's, in their original order. Missing scores (NaN) are skipped."""
    errors = {}
    for config, raw in logits.items():
        scale, shift = platt_steps(raw, scores)
        errors[config] = np.nanmean((sigmoid(scale * raw + shift) - scores) ** 2, axis=1)
    best = min(errors, key=lambda config: float(errors[config].mean()))
    return [config for config, e in errors.items()
            if e.mean() - errors[best].mean() <= z * standard_error(e - errors[best])]
