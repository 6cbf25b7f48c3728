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
from ..policies.predictors.base import QualityPredictor
from ..policies.predictors.linear import fit_linear
from ..policies.predictors.stacked import StackedPredictor, TreeEnsemble, fit_trees, stage_two_inputs
from .data import OutcomeSet

Progress = Callable[[str], None]
DEFAULT_C_GRID: tuple[float, ...] = (0.3, 1.0)
# n-gram weightings tried by inner CV: "tf" (log counts) or "idf" (log counts x idf, fitted on training prompts).
DEFAULT_WEIGHTINGS: tuple[str, ...] = ("tf", "idf")
DEFAULT_BITS = 16
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
    weighting: str
    second_stage: bool
    cv_brier: dict[str, float]
    calibration: dict[str, dict[str, float]]
    operating_point: dict[str, float]
    seconds: float


def apply_idf(x: Any, idf: np.ndarray) -> Any:
    """Reweight a featurised corpus by ``idf`` and re-normalise rows: what ``transform`` does with idf set."""
    from scipy import sparse

    y = sparse.csr_matrix(x, copy=True)
    y.data *= idf[y.indices]
    norms = np.sqrt(np.asarray(y.multiply(y).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.diags((1.0 / norms).astype(np.float32)) @ y


def _idf_of(featurizer: HashingFeaturizer, x: Any) -> np.ndarray:
    idf = featurizer.with_idf(x).idf
    assert idf is not None
    return idf


def _oof_logits(x: Any, dense: np.ndarray, scores: np.ndarray, models: tuple[str, ...], folds: np.ndarray,
                c: float, featurizer: HashingFeaturizer | None) -> np.ndarray:
    """Out-of-fold logits; with ``featurizer`` given, idf is fitted on each inner training part only."""
    out = np.zeros_like(scores)
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        xk = x if featurizer is None else apply_idf(x, _idf_of(featurizer, x[tr]))
        out[te] = fit_linear(xk[tr], dense[tr], scores[tr], models, c=c).logits_many(xk[te], dense[te])
    return out


def fit_predictor(x: Any, dense: np.ndarray, data: OutcomeSet, featurizer: HashingFeaturizer, *,
                  c_grid: Sequence[float] = DEFAULT_C_GRID, weightings: Sequence[str] = DEFAULT_WEIGHTINGS,
                  second_stage: bool = True, progress: Progress | None = None,
                  ) -> tuple[HashingFeaturizer, QualityPredictor, np.ndarray, float, str, dict[str, float]]:
    """Choose the n-gram weighting and C by inner-CV Brier, Platt-calibrate out of fold, fit on everything.

    With ``second_stage``, also cross-fit boosted trees over the out-of-fold logits (``predictors.stacked``) and
    keep them only if their inner-CV Brier beats the calibrated linear stage's.

    Returns the (possibly idf-weighted) featurizer, the predictor, its out-of-fold predictions (for operating
    points), C, the weighting and the CV table.
    """
    folds = inner_folds(data)
    table: dict[str, float] = {}
    logits_by: dict[tuple[str, float], np.ndarray] = {}
    for weighting in weightings:
        for c in c_grid:
            if progress:
                progress(f"inner {INNER_FOLDS}-fold CV, {weighting}, C={c}")
            logits = _oof_logits(x, dense, data.scores, data.models, folds, c,
                                 featurizer if weighting == "idf" else None)
            logits_by[(weighting, c)] = logits
            table[f"{weighting} C={c:g}"] = brier(1 / (1 + np.exp(-logits)), data.scores)
    best_w, best_c = min(logits_by, key=lambda key: table[f"{key[0]} C={key[1]:g}"])
    logits = logits_by[(best_w, best_c)]
    platt = [fit_platt(logits[:, j], data.scores[:, j]) for j in range(len(data.models))]
    scale, shift = np.array([p[0] for p in platt]), np.array([p[1] for p in platt])
    oof = 1 / (1 + np.exp(-(scale * logits + shift)))
    table["linear (chosen, Platt)"] = brier(oof, data.scores)
    trees = None
    if second_stage:
        if progress:
            progress(f"inner {INNER_FOLDS}-fold CV, second stage")
        stacked_oof, candidate = _cross_fit_trees(logits, dense, data.scores, folds)
        table["second stage"] = brier(stacked_oof, data.scores)
        if table["second stage"] < table["linear (chosen, Platt)"]:
            trees, oof = candidate, stacked_oof
    if best_w == "idf":
        featurizer = featurizer.with_idf(x)
        assert featurizer.idf is not None
        x = apply_idf(x, featurizer.idf)
    if progress:
        progress(f"final fit on {len(data)} items, {best_w}, C={best_c}")
    linear = fit_linear(x, dense, data.scores, data.models, c=best_c)
    predictor: QualityPredictor = linear.with_platt(scale, shift) if trees is None else StackedPredictor(linear, trees)
    return featurizer, predictor, oof, best_c, best_w, table


def _cross_fit_trees(logits: np.ndarray, dense: np.ndarray, scores: np.ndarray,
                     folds: np.ndarray) -> tuple[np.ndarray, TreeEnsemble]:
    """Out-of-fold predictions of the second stage (on out-of-fold logits), and the stage fitted on all rows."""
    f = stage_two_inputs(logits, dense)
    out = np.zeros_like(scores)
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        out[te] = 1 / (1 + np.exp(-fit_trees(f[tr], scores[tr]).raw_many(f[te])))
    return out, fit_trees(f, scores)


def train_router(data: OutcomeSet, *, goal: Goal = DEFAULT_GOAL, bits: int = DEFAULT_BITS, focus: Focus = "last",
                 c_grid: Sequence[float] = DEFAULT_C_GRID, weightings: Sequence[str] = DEFAULT_WEIGHTINGS,
                 second_stage: bool = True, provenance: dict[str, Any] | None = None,
                 progress: Progress | None = None) -> tuple[RouterArtifact, TrainReport]:
    """Train a complete router artifact from ``data``; the operating point meets ``goal`` out of fold."""
    start = time.perf_counter()
    featurizer = HashingFeaturizer(bits=bits, focus=focus)
    if progress:
        progress(f"featurising {len(data)} prompts")
    x, dense = featurize(data, featurizer)
    featurizer, predictor, oof, c, weighting, table = fit_predictor(
        x, dense, data, featurizer, c_grid=c_grid, weightings=weightings, second_stage=second_stage,
        progress=progress)
    mean_costs = expected_costs(data)
    objective, achieved = calibrate_operating_point(oof, data.scores, _cost_matrix(data, mean_costs), goal)
    calibration = {m: {"brier": brier(oof[:, j], data.scores[:, j]), "ece": ece(oof[:, j], data.scores[:, j])}
                   for j, m in enumerate(data.models)}
    heldout = {"goal": str(goal), "operating_point": achieved, "calibration": calibration, "c": c,
               "weighting": weighting, "second_stage": predictor.kind == "stacked", "cv_brier": table}
    prov = {"n_items": len(data), "models": list(data.models), **(provenance or {})}
    artifact = RouterArtifact(featurizer, predictor, objective,
                              {m: float(v) for m, v in zip(data.models, mean_costs)} if data.has_costs else {},
                              prov, heldout)
    return artifact, TrainReport(c, weighting, predictor.kind == "stacked", table, calibration, achieved, time.perf_counter() - start)


def _cost_matrix(data: OutcomeSet, mean_costs: np.ndarray) -> np.ndarray:
    return data.costs if data.has_costs else np.broadcast_to(mean_costs, data.scores.shape)


def file_digest(path: str) -> str:
    """sha256 of a data file, recorded in provenance so an artifact names exactly what trained it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

