"""Train a router from outcome data: featurise, pick regularisation by inner CV, calibrate, fit, package.

Everything tuned here (regularisation ``C``, Platt scaling, the operating point for the user's goal) is chosen
on out-of-fold predictions *within the training data*, so evaluating on a held-out split stays honest.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..chat_request import routing_text
from ..policies.artifact import RouterArtifact
from ..policies.calibration import Goal, brier, calibrate_operating_point, ece, fit_platt
from ..policies.featurizers import Focus, HashingFeaturizer
from ..policies.predictors.linear import LinearPredictor, fit_linear
from .data import OutcomeSet

Progress = Callable[[str], None]
DEFAULT_C_GRID: tuple[float, ...] = (0.3, 1.0)
DEFAULT_GOAL = Goal("quality", 0.95)
INNER_FOLDS = 3


def item_text(messages: Sequence[dict[str, Any]]) -> str:
    """The routing text the gateway would compute for these messages (``chat_request.routing_text``)."""
    texts = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
        texts.append(content or "")
    return routing_text(list(messages), texts)


def featurize(data: OutcomeSet, featurizer: HashingFeaturizer) -> tuple[Any, np.ndarray]:
    return featurizer.transform_many([item_text(it.messages) for it in data.items])


def inner_folds(data: OutcomeSet, k: int = INNER_FOLDS) -> np.ndarray:
    """Stable fold ids from item ids (crc32), independent of the outer ``fold`` field."""
    return np.array([zlib.crc32(f"inner:{it.id}".encode()) % k for it in data.items])


def expected_costs(data: OutcomeSet) -> np.ndarray:
    """Per-model mean recorded cost; without recorded costs, a stand-in ranking strongest as dearest.

    The stand-in (1.0 for the best-scoring model, 0.1 for the rest) only affects ``lambda``-mode operating
    points; the default ``margin`` mode ignores prices.
    """
    if data.has_costs:
        return data.costs.mean(axis=0)
    mean_scores = data.scores.mean(axis=0)
    return np.where(mean_scores == mean_scores.max(), 1.0, 0.1)


@dataclass(frozen=True)
class TrainReport:
    c: float
    cv_brier: dict[float, float]
    calibration: dict[str, dict[str, float]]
    operating_point: dict[str, float]
    seconds: float


def _oof_logits(x: Any, dense: np.ndarray, scores: np.ndarray, models: tuple[str, ...], folds: np.ndarray,
                c: float) -> np.ndarray:
    out = np.zeros_like(scores)
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        out[te] = fit_linear(x[tr], dense[tr], scores[tr], models, c=c).logits_many(x[te], dense[te])
    return out


def fit_predictor(x: Any, dense: np.ndarray, data: OutcomeSet, *, c_grid: Sequence[float] = DEFAULT_C_GRID,
                  progress: Progress | None = None) -> tuple[LinearPredictor, np.ndarray, float, dict[float, float]]:
    """Choose C by inner-CV Brier, Platt-calibrate on out-of-fold logits, fit on everything.

    Returns the predictor, its calibrated out-of-fold predictions (for operating points), C, and the CV table.
    """
    folds = inner_folds(data)
    table: dict[float, float] = {}
    logits_by_c: dict[float, np.ndarray] = {}
    for c in c_grid:
        if progress:
            progress(f"inner {INNER_FOLDS}-fold CV, C={c}")
        logits = _oof_logits(x, dense, data.scores, data.models, folds, c)
        logits_by_c[c] = logits
        table[c] = brier(1 / (1 + np.exp(-logits)), data.scores)
    best_c = min(table, key=lambda c: table[c])
    logits = logits_by_c[best_c]
    platt = [fit_platt(logits[:, j], data.scores[:, j]) for j in range(len(data.models))]
    scale, shift = np.array([p[0] for p in platt]), np.array([p[1] for p in platt])
    oof = 1 / (1 + np.exp(-(scale * logits + shift)))
    if progress:
        progress(f"final fit on {len(data)} items, C={best_c}")
    predictor = fit_linear(x, dense, data.scores, data.models, c=best_c).with_platt(scale, shift)
    return predictor, oof, best_c, table


def train_router(data: OutcomeSet, *, goal: Goal = DEFAULT_GOAL, bits: int = 15, focus: Focus = "last",
                 c_grid: Sequence[float] = DEFAULT_C_GRID, provenance: dict[str, Any] | None = None,
                 progress: Progress | None = None) -> tuple[RouterArtifact, TrainReport]:
    """Train a complete router artifact from ``data``; the operating point meets ``goal`` out of fold."""
    start = time.perf_counter()
    featurizer = HashingFeaturizer(bits=bits, focus=focus)
    if progress:
        progress(f"featurising {len(data)} prompts")
    x, dense = featurize(data, featurizer)
    predictor, oof, c, table = fit_predictor(x, dense, data, c_grid=c_grid, progress=progress)
    mean_costs = expected_costs(data)
    objective, achieved = calibrate_operating_point(oof, data.scores, _cost_matrix(data, mean_costs), goal)
    calibration = {m: {"brier": brier(oof[:, j], data.scores[:, j]), "ece": ece(oof[:, j], data.scores[:, j])}
                   for j, m in enumerate(data.models)}
    heldout = {"goal": str(goal), "operating_point": achieved, "calibration": calibration, "c": c}
    prov = {"n_items": len(data), "models": list(data.models), **(provenance or {})}
    artifact = RouterArtifact(featurizer, predictor, objective,
                              {m: float(v) for m, v in zip(data.models, mean_costs)} if data.has_costs else {},
                              prov, heldout)
    return artifact, TrainReport(c, table, calibration, achieved, time.perf_counter() - start)


def _cost_matrix(data: OutcomeSet, mean_costs: np.ndarray) -> np.ndarray:
    return data.costs if data.has_costs else np.broadcast_to(mean_costs, data.scores.shape)


def file_digest(path: str) -> str:
    """sha256 of a data file, recorded in provenance so an artifact names exactly what trained it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

