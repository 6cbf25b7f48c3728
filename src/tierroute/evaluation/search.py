"""The raced search inside training: out-of-fold predictions of each candidate configuration on the inner folds.

``train.fit_predictor`` chooses among candidates; this module produces them at the least cost that leaves the
choice unchanged. The (weighting, C) grid is raced on the first inner fold (``linear_grid``), with scouts when
there are many models (``_first_fold``); the second stage is raced the same way (``cross_fit_trees``). Every fit
here is a task for ``Workers``: processes, one per CPU, seeded fits, so the router is the same whatever the
number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..policies.featurizers import HashingFeaturizer
from ..policies.predictors.base import sigmoid
from ..policies.predictors.linear import fit_columns
from ..policies.predictors.stacked import fit_trees, stage_two_inputs
from .data import OutcomeSet
from .selection import platt_steps, race, standard_error
from .workers import Workers

Progress = Callable[[str], None]
INNER_FOLDS = 3
# A configuration this many standard errors behind the best on the first inner fold is not fitted on the others
# (``linear_grid``; the second stage likewise, ``cross_fit_trees``).
RACE_Z = 2.0
# With more models than this, the race first scores every configuration on this many of them (those whose
# scores vary most, where Brier differences are largest) and fits the others only for the survivors.
RACE_SCOUTS = 4
# Weight of the trees when the second stage is blended with the linear stage (one fixed average, not a grid:
# every extra choice made on the same out-of-fold predictions adds selection noise).
BLEND = 0.5


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


def _fold_view(x: Any, folds: np.ndarray, k: int, featurizer: HashingFeaturizer | None) -> Any:
    """The corpus as inner fold ``k``'s models see it: ``x`` itself, or with ``featurizer`` given, x reweighted
    by the idf of that fold's training part only (so no held-out prompt shapes its own weights). Built once per
    weighting and fold, and shared by every C and by the auxiliary regressions."""
    return x if featurizer is None else apply_idf(x, _idf_of(featurizer, x[folds != k]))


def linear_grid(x: Any, dense: np.ndarray, data: OutcomeSet, folds: np.ndarray, featurizer: HashingFeaturizer,
                 weightings: Sequence[str], c_grid: Sequence[float], progress: Progress | None, workers: Workers,
                 ) -> Iterator[tuple[str, float, dict[int, Any], np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """The (weighting, C) configurations of the search that survive the race on the first inner fold: for each,
    its fold views, out-of-fold logits, and Platt step fitted on them.

    Every configuration is first fitted and scored on one inner fold only; those whose Brier there is worse than
    the best by more than ``RACE_Z`` standard errors (of the paired per-item difference) are dropped, and only
    the rest are fitted on the other folds (successive halving, as scikit-learn's HalvingGridSearchCV does). A
    configuration that full cross-validation would choose, or call tied with the choice, is never that far behind
    on a third of the data except by a rare fluke, so the choice stays what it was at a fraction of the fits:
    on MMLU 8 fold fits instead of 18."""
    ks = [int(k) for k in np.unique(folds)]
    head, rest = ks[0], ks[1:]
    weigher = {weighting: featurizer if weighting == "idf" else None for weighting in weightings}
    views = {weighting: {head: _fold_view(x, folds, head, weigher[weighting])} for weighting in weightings}
    configs = [(weighting, c) for weighting in weightings for c in c_grid]
    jobs = f" ({workers.jobs} workers)" if workers.jobs > 1 else ""
    if progress:
        progress(f"inner {INNER_FOLDS}-fold CV, fold 1: {len(configs)} configurations{jobs}")
    first, survivors = _first_fold({w: views[w][head] for w in weightings}, dense, data.scores, folds == head,
                                   configs, workers)
    for weighting in dict.fromkeys(w for w, _ in survivors):  # the other folds' views, for survivors only
        views[weighting].update({k: _fold_view(x, folds, k, weigher[weighting]) for k in rest})
    if progress:
        progress(f"inner {INNER_FOLDS}-fold CV, folds 2-{INNER_FOLDS}: "
                 + ", ".join(f"{w} C={c:g}" for w, c in survivors) + jobs)
    calls = [(views[w][k], dense, data.scores, folds == k, c) for w, c in survivors for k in rest]
    parts = iter(workers.map(held_out_logits, calls))
    for weighting, c in survivors:
        logits = np.zeros_like(data.scores)
        logits[folds == head] = first[(weighting, c)]
        for k in rest:
            logits[folds == k] = next(parts)
        yield weighting, c, views[weighting], logits, platt_steps(logits, data.scores)


def _first_fold(views: dict[str, Any], dense: np.ndarray, scores: np.ndarray, test: np.ndarray,
                configs: list[tuple[str, float]], workers: Workers,
                ) -> tuple[dict[tuple[str, float], np.ndarray], list[tuple[str, float]]]:
    """The race on the first inner fold (``test``): held-out logits of the configurations that were fitted for
    every model, and the survivors. ``views``: the corpus per weighting as that fold's models see it.

    With more than ``RACE_SCOUTS`` models, the configurations are raced on the scouts first, only the scouts'
    survivors are fitted for the other models, and those are raced again on every model."""
    m = scores.shape[1]
    if m <= RACE_SCOUTS:
        first = dict(zip(configs, workers.map(held_out_logits, [(views[w], dense, scores, test, c)
                                                                 for w, c in configs])))
        return first, race(first, scores[test], RACE_Z)
    seen = np.isfinite(scores[~test])  # logged traffic: a model may have few scores, or none, here
    count = np.maximum(seen.sum(axis=0), 1)
    mean = np.where(seen, scores[~test], 0.0).sum(axis=0) / count
    variance = np.where(seen, (scores[~test] - mean) ** 2, 0.0).sum(axis=0) / count
    scouts = np.sort(np.argsort(-variance, kind="stable")[:RACE_SCOUTS])
    others = np.setdiff1d(np.arange(m), scouts)
    scouted = dict(zip(configs, workers.map(held_out_logits, [(views[w], dense, scores[:, scouts], test, c)
                                                               for w, c in configs])))
    kept = race(scouted, scores[test][:, scouts], RACE_Z)
    rest = workers.map(held_out_logits, [(views[w], dense, scores[:, others], test, c) for w, c in kept])
    first = {}
    for config, logits in zip(kept, rest):  # each model's fit is independent of the others (seeded per fit)
        full = np.empty((int(test.sum()), m), np.result_type(scouted[config], logits))
        full[:, scouts], full[:, others] = scouted[config], logits
        first[config] = full
    return first, race(first, scores[test], RACE_Z)


def held_out_logits(x: Any, dense: np.ndarray, scores: np.ndarray, test: np.ndarray, c: float) -> np.ndarray:
    """Logits on the ``test`` rows of per-model regressions fitted on the others (one worker task)."""
    w, v, b = fit_columns(x[~test], dense[~test], scores[~test], c)
    return np.asarray(x[test] @ w) + dense[test] @ v + b


def cross_fit_trees(logits: np.ndarray, dense: np.ndarray, scores: np.ndarray, folds: np.ndarray,
                     linear_oof: np.ndarray, workers: Workers) -> tuple[np.ndarray | None, dict[str, float]]:
    """Out-of-fold predictions of the second stage (on out-of-fold logits), or None and the first fold's Brier
    of each stage when it is raced out.

    As in the linear search, the trees are fitted on the first inner fold first; if both the trees and their
    blend with the linear stage are more than ``RACE_Z`` standard errors behind the linear stage there (paired
    per-item Brier), the other folds are not fitted (on ARC and GSM8K inner CV rejects the trees anyway). Each
    fold's fits are split by model among ``workers`` (a model's trees do not depend on the others'); the stage
    on all rows is fitted only if chosen, beside the final linear fit."""
    f = stage_two_inputs(logits, dense)
    ks = [int(k) for k in np.unique(folds)]
    pieces = [chunk for chunk in np.array_split(np.arange(scores.shape[1]), min(workers.jobs, scores.shape[1]))
              if chunk.size]
    out = np.zeros_like(scores)

    def fit(fold_ids: list[int]) -> None:
        calls = [(f[folds != k], scores[folds != k][:, chunk], f[folds == k]) for k in fold_ids for chunk in pieces]
        results = iter(workers.map(_held_out_trees, calls))
        for k in fold_ids:
            for chunk in pieces:
                out[np.ix_(folds == k, chunk)] = sigmoid(next(results))

    fit(ks[:1])
    head = folds == ks[0]
    linear_error = ((linear_oof[head] - scores[head]) ** 2).mean(axis=1)
    behind, figures = [], {"brier linear": float(linear_error.mean())}
    for name, pred in (("stacked", out[head]), ("blend", BLEND * out[head] + (1 - BLEND) * linear_oof[head])):
        diff = ((pred - scores[head]) ** 2).mean(axis=1) - linear_error
        behind.append(diff.mean() > RACE_Z * standard_error(diff))
        figures[f"brier {name}"] = float(linear_error.mean() + diff.mean())
    if all(behind):
        return None, figures
    fit(ks[1:])
    return out, {}


def _held_out_trees(f: np.ndarray, scores: np.ndarray, f_test: np.ndarray) -> np.ndarray:
    """Raw second-stage predictions for the rows ``f_test`` of trees fitted on ``f`` (one worker task)."""
    return fit_trees(f, scores).raw_many(f_test)
