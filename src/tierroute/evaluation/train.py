"""Train a router from outcome data: featurise, pick regularisation by inner CV, calibrate, fit, package.

Everything tuned here (n-gram weighting, regularisation ``C``, the second stage, Platt scaling, the shrink toward
base rates, the operating point for the user's goal) is chosen on out-of-fold predictions *within the training
data*, so evaluating on a held-out split stays honest.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..chat_request import routing_text
from ..policies.artifact import RouterArtifact
from ..policies.calibration import Goal, brier, ece
from ..policies.encoders import Encoder
from ..policies.encoders.featurizer import EmbeddingFeaturizer
from ..policies.familiarity import PROTOTYPES, fit_familiarity
from ..policies.featurizers import Focus, HashingFeaturizer
from ..policies.predictors.guarded import GuardedPredictor
from ..policies.predictors.base import QualityPredictor, sigmoid
from ..policies.predictors.linear import LinearPredictor, fit_columns
from ..policies.predictors.stacked import StackedPredictor, TreeEnsemble, fit_trees, stage_two_inputs
from .auxiliary import (
    AuxiliaryRegression,
    Projection,
    Stack,
    auxiliary_targets,
    cross_fit_auxiliary,
    fit_regression,
    fold_into,
    projection,
)
from .data import OutcomeDataError, OutcomeSet
from .metrics import routing_summary
from .operating_point import choose_operating_point, zero_router_note
from .search import BLEND, INNER_FOLDS, Progress, apply_idf, cross_fit_trees, linear_grid
from .selection import routing_metric, routing_score, standard_error
from .workers import Workers

DEFAULT_C_GRID: tuple[float, ...] = (0.3, 0.5, 1.0)
# n-gram weightings tried by inner CV: "tf" (log counts) or "idf" (log counts x idf, fitted on training prompts).
DEFAULT_WEIGHTINGS: tuple[str, ...] = ("tf", "idf")
DEFAULT_BITS = 16
DEFAULT_GOAL = Goal("quality", 0.95)
# Below this many items inner CV has folds too small to fit or score anything.
MIN_TRAIN_ITEMS = 10
# Strengths tried for pulling predictions toward each model's base rate when many priced models are routed
# (1 = as predicted, 0 = base rates, which is the zero router): over-confident predictions buy dear models for
# nothing, and inner CV on AIQ decides how much of the per-item signal to trust.
SHRINK_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


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

    The stand-in (1.0 for the best-scoring model, 0.1 for the rest) only says which model is strongest: on
    unpriced data the operating point is a ``margin`` setting, which reads the order of prices, not their size.
    """
    if data.has_costs:  # logged traffic: each model's mean over the requests it answered
        return np.nanmean(data.costs, axis=0)
    mean_scores = np.nanmean(data.scores, axis=0)
    return np.where(mean_scores == mean_scores.max(), 1.0, 0.1)


@dataclass(frozen=True)
class TrainReport:
    c: float
    weighting: str
    second_stage: bool
    shrink: float
    cv_table: dict[str, dict[str, float]]
    calibration: dict[str, dict[str, float]]
    operating_point: dict[str, float]
    seconds: float
    auxiliary: tuple[str, ...] = ()
    routing: dict[str, float] = field(default_factory=dict)  # ``metrics.routing_summary`` out of fold
    notes: tuple[str, ...] = ()  # what the user asked for and did not get (a goal out of reach)


def _final_corpus(x: Any, featurizer: HashingFeaturizer, weighting: str) -> tuple[HashingFeaturizer, Any]:
    """The featurizer and corpus of the final fit: with idf weighting, idf fitted on the whole training set."""
    if weighting != "idf":
        return featurizer, x
    featurizer = featurizer.with_idf(x)
    assert featurizer.idf is not None
    return featurizer, apply_idf(x, featurizer.idf)


def _fit_linear(x: Any, dense: np.ndarray, scores: np.ndarray, models: tuple[str, ...], c: float,
                workers: Workers, targets: np.ndarray | None = None, tree_inputs: np.ndarray | None = None
                ) -> tuple[LinearPredictor, AuxiliaryRegression | None, TreeEnsemble | None]:
    """``predictors.linear.fit_linear`` with the models split among ``workers`` (fits are per model), and with
    ``targets`` the auxiliary regressions on the same corpus, with ``tree_inputs`` the second stage, each as one
    more task beside them."""
    # Two pieces per worker balance uneven tasks (the regression takes about as long as three models' fits); in
    # one process one piece, so the [hashed | dense] matrix is built once.
    pieces = 1 if workers.jobs == 1 else 2 * workers.jobs
    chunks = [chunk for chunk in np.array_split(np.arange(len(models)), pieces) if chunk.size]
    calls: list[tuple[Any, ...]] = [(fit_columns, x, dense, scores[:, chunk], c) for chunk in chunks]
    if targets is not None:
        calls.append((fit_regression, x, dense, targets))
    if tree_inputs is not None:
        calls.append((fit_trees, tree_inputs, scores))
    results = iter(workers.map(_call, calls))
    parts = [next(results) for _ in chunks]
    w, v, b = (np.concatenate([part[i] for part in parts], axis=-1) for i in range(3))
    linear = LinearPredictor(models, w, v, b, np.ones(len(models)), np.zeros(len(models)))
    regression = next(results) if targets is not None else None
    return linear, regression, (next(results) if tree_inputs is not None else None)


def _call(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``: lets one ``Workers.map`` run tasks of different kinds."""
    return function(*args)


@dataclass(frozen=True)
class _Candidate:
    """One configuration's out-of-fold predictions as a weighted sum of stage outputs, and its Brier score."""

    weighting: str
    c: float
    stage: str  # "linear", "stacked" or "blend"
    parts: tuple[tuple[float, np.ndarray], ...]  # (weight, out-of-fold probabilities) per stage
    brier: float

    @property
    def oof(self) -> np.ndarray:
        return sum(w * p for w, p in self.parts)  # type: ignore[return-value]

    def shrunk(self, base_logit: np.ndarray, strength: float) -> np.ndarray:
        """Out-of-fold predictions with each stage shrunk as ``_shrunk_predictor`` shrinks the fitted one."""
        return sum(w * _shrink(p, base_logit, strength) for w, p in self.parts)  # type: ignore[return-value]


def _candidate(weighting: str, c: float, stage: str, parts: tuple[tuple[float, np.ndarray], ...],
               data: OutcomeSet) -> _Candidate:
    return _Candidate(weighting, c, stage, parts, brier(sum(w * p for w, p in parts), data.scores))


def _choose(candidates: Sequence[_Candidate], data: OutcomeSet) -> _Candidate:
    """The lowest Brier, unless others are within one standard error of it: then the best routing metric.

    The standard error is that of the paired per-item difference in squared error, so a candidate counts as
    tied only when the data cannot tell the two apart (on GSM8K's 1,300 items tf and idf sometimes are, on
    MMLU's 14,000 no pair was). Among tied candidates Brier says nothing; the routing metric is what matters.
    """
    best = min(candidates, key=lambda cand: cand.brier)
    errors = {id(cand): ((cand.oof - data.scores) ** 2).mean(axis=1) for cand in candidates}
    tied = [cand for cand in candidates
            if cand.brier - best.brier <= standard_error(errors[id(cand)] - errors[id(best)])]
    if len(tied) == 1:
        return best
    return max(tied, key=lambda cand: (routing_score(cand.oof, data.scores, data.costs)[1], -cand.brier))


def fit_predictor(x: Any, dense: np.ndarray, data: OutcomeSet, featurizer: HashingFeaturizer, *,
                  c_grid: Sequence[float] = DEFAULT_C_GRID, weightings: Sequence[str] = DEFAULT_WEIGHTINGS,
                  second_stage: bool = True, auxiliary: bool = True, progress: Progress | None = None,
                  workers: Workers = Workers()) -> FittedPredictor:
    """Choose the n-gram weighting, C and the stage by inner-CV Brier, the shrink by inner-CV routing metric.

    Every (weighting, C) that survives the race on the first inner fold (``search.linear_grid``) gets out-of-fold
    logits and a Platt step fitted on them; the lowest Brier wins, with ties (within one standard error) broken
    by the routing metric (``_choose``). With ``auxiliary`` and data that
    records categories or answers, the winner's logits are stacked with regressions on those training-only
    targets (``evaluation.auxiliary``) where a paired inner-CV test says that helps. With
    ``second_stage``, boosted trees are cross-fitted on the winner's out-of-fold logits (``predictors.stacked``),
    and the trees alone or an equal blend of trees and linear stage replace it if their Brier is lower. With
    costs and three or more models, predictions are then pulled toward each model's training mean by the
    strength in ``SHRINK_GRID`` with the best inner-CV AIQ (``routing_score``). The table records Brier and
    the routing metric of every candidate.

    Why Brier rather than the routing metric for the configuration: measured both ways
    (docs/research/routing-quality-log.md), choosing by inner-CV APGR or AIQ was noisier and lost on MMLU and
    ARC; Brier, a proper score of every prediction, ranks configurations more stably. Shrinkage, by contrast, barely moves Brier but decides whether
    the lambda sweep buys dear models on over-confident predictions, so only the routing metric can choose it.
    """
    folds = inner_folds(data)
    metric = routing_metric(data.scores, data.costs)
    linear: list[_Candidate] = []
    logits_by: dict[tuple[str, float], np.ndarray] = {}
    platt_by: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}
    views: dict[str, dict[int, Any]] = {}
    for weighting, c, fold_views, logits, (scale, shift) in linear_grid(x, dense, data, folds, featurizer,
                                                                         weightings, c_grid, progress, workers):
        views[weighting] = fold_views
        logits_by[(weighting, c)], platt_by[(weighting, c)] = logits, (scale, shift)
        linear.append(_candidate(weighting, c, "linear", ((1.0, sigmoid(scale * logits + shift)),), data))
    best = _choose(linear, data)
    best_logits = logits_by[(best.weighting, best.c)]
    best_views = views[best.weighting]
    del views  # up to three reweighted copies of the corpus: keep only the winner's
    candidates = list(linear)
    targets = auxiliary_targets(data) if auxiliary else None
    aux: tuple[Projection, Stack] | None = None
    paired: dict[str, float] = {}
    if targets is not None:
        if progress:
            progress(f"inner {INNER_FOLDS}-fold CV, auxiliary targets ({len(targets.names)}) on "
                     f"{best.weighting}, C={best.c:g}")
        basis = projection(targets)
        helps, aux_logits, stack, paired = cross_fit_auxiliary(best_views, dense, data, folds, best_logits, targets,
                                                                basis, workers)
        challenger = _candidate(best.weighting, best.c, "auxiliary", ((1.0, sigmoid(aux_logits)),), data)
        candidates.append(challenger)
        if helps:
            best, best_logits, aux = challenger, aux_logits, (basis, stack)
    del best_views
    tree_inputs, stacked_oof, raced_out = None, None, {}
    if second_stage:
        if progress:
            progress(f"inner {INNER_FOLDS}-fold CV, second stage on {best.weighting}, C={best.c:g}")
        linear_oof = best.oof
        stacked_oof, raced_out = cross_fit_trees(best_logits, dense, data.scores, folds, linear_oof, workers)
        if stacked_oof is not None:
            stacked = [_candidate(best.weighting, best.c, "stacked", ((1.0, stacked_oof),), data),
                       _candidate(best.weighting, best.c, "blend", ((BLEND, stacked_oof), (1 - BLEND, linear_oof)),
                                  data)]
            candidates += stacked
            challenger = min(stacked, key=lambda cand: cand.brier)
            if challenger.brier < best.brier:
                tree_inputs, best = stage_two_inputs(best_logits, dense), challenger
    table = {f"{cand.weighting} C={cand.c:g}" + ("" if cand.stage == "linear" else f" {cand.stage}"):
             {"brier": cand.brier, metric: routing_score(cand.oof, data.scores, data.costs)[1]} for cand in candidates}
    if targets is not None:
        table["auxiliary targets, cross-fitted stack"] = paired
    if second_stage and stacked_oof is None:
        table[f"{best.weighting} C={best.c:g} second stage, raced out on inner fold 1"] = raced_out
    featurizer, x_final = _final_corpus(x, featurizer, best.weighting)
    if progress:
        progress(f"final fit on {len(data)} items, {best.weighting}, C={best.c}"
                 + (", auxiliary targets" if aux is not None else ""))
    values = None if aux is None or targets is None else aux[0].apply(targets.values)
    first, regression, trees = _fit_linear(x_final, dense, data.scores, data.models, best.c, workers, values,
                                           tree_inputs)
    if aux is not None:
        assert regression is not None
        first = fold_into(first, regression, aux[1])
    else:
        first = first.with_platt(*platt_by[(best.weighting, best.c)])
    predictor: QualityPredictor = (first if trees is None
                                   else StackedPredictor(first, trees, BLEND if best.stage == "blend" else 1.0))
    oof, strength = best.oof, 1.0
    if metric == "aiq":
        base = _logit(np.clip(data.scores.mean(axis=0), 1e-3, 1 - 1e-3))
        by_strength = {g: best.shrunk(base, g) for g in SHRINK_GRID}
        scored = {g: routing_score(p, data.scores, data.costs)[1] for g, p in by_strength.items()}
        strength = max(SHRINK_GRID, key=lambda g: (scored[g], g))  # ties keep the less shrunk predictions
        table.update({f"shrink {g:g}": {metric: v} for g, v in scored.items()})
        oof, predictor = by_strength[strength], _shrunk_predictor(predictor, base, strength)
    return FittedPredictor(featurizer, predictor, oof, best.c, best.weighting, strength, table,
                           targets.names if aux is not None and targets is not None else ())


@dataclass(frozen=True)
class FittedPredictor:
    """What ``fit_predictor`` chose and fitted: the (possibly idf-weighted) featurizer, the predictor, its
    out-of-fold predictions (for operating points), C, weighting, shrink strength (1 = none), the CV table and
    the auxiliary targets folded into the linear stage (empty when inner CV rejected them or there were none)."""

    featurizer: HashingFeaturizer
    predictor: QualityPredictor
    oof: np.ndarray
    c: float
    weighting: str
    shrink: float
    table: dict[str, dict[str, float]]
    auxiliary: tuple[str, ...] = ()


def fit_partial(x: Any, dense: np.ndarray, data: OutcomeSet, featurizer: HashingFeaturizer, *,
                c_grid: Sequence[float] = DEFAULT_C_GRID, weightings: Sequence[str] = DEFAULT_WEIGHTINGS,
                progress: Progress | None = None, workers: Workers = Workers()) -> FittedPredictor:
    """``fit_predictor`` for logged traffic, where each item has scores only for the model(s) that answered it.

    Each model's logistic regression and Platt step see the items it answered; the weighting and C are chosen by
    inner-CV Brier over the observed scores. The router that logged the traffic chose each model from the same
    prompt these features describe, so each model's predictor learns its quality on the kinds of prompt it was
    sent. What needs every model's score on the same item (routing-metric ties, the auxiliary stack, the trees,
    shrinkage by AIQ) is left out: there is nothing to score it on.
    """
    folds = inner_folds(data)
    observed = data.observed
    table: dict[str, dict[str, float]] = {}
    best: tuple[float, str, float, np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None
    for weighting, c, _, logits, (scale, shift) in linear_grid(x, dense, data, folds, featurizer, weightings,
                                                                c_grid, progress, workers):
        pred = sigmoid(scale * logits + shift)
        score = brier(pred[observed], data.scores[observed])
        table[f"{weighting} C={c:g}"] = {"brier": score}
        if best is None or score < best[0]:
            best = (score, weighting, c, pred, (scale, shift))
    assert best is not None
    _, weighting, c, oof, platt = best
    featurizer, x_final = _final_corpus(x, featurizer, weighting)
    if progress:
        progress(f"final fit on {len(data)} items ({int(observed.sum())} scores), {weighting}, C={c}")
    predictor = _fit_linear(x_final, dense, data.scores, data.models, c, workers)[0].with_platt(*platt)
    return FittedPredictor(featurizer, predictor, oof, c, weighting, 1.0, table)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _shrink(pred: np.ndarray, base_logit: np.ndarray, strength: float) -> np.ndarray:
    """Predictions pulled toward per-model base rates on the logit scale: 1 keeps them, 0 is the base rate."""
    return sigmoid(strength * _logit(np.clip(pred, 1e-6, 1 - 1e-6)) + (1 - strength) * base_logit)


def _shrunk_predictor(predictor: QualityPredictor, base_logit: np.ndarray, strength: float) -> QualityPredictor:
    """The same shrink folded into the predictor's last affine step (Platt for linear, tree sum for stacked)."""
    if strength == 1.0:
        return predictor
    if isinstance(predictor, StackedPredictor):
        trees = replace(predictor.trees, value=strength * predictor.trees.value,
                        baseline=strength * predictor.trees.baseline + (1 - strength) * base_logit)
        first = _shrunk_predictor(predictor.first, base_logit, strength)  # the blend's linear part
        return replace(predictor, first=first, trees=trees)
    assert isinstance(predictor, LinearPredictor)
    return predictor.with_platt(strength * predictor.scale, strength * predictor.shift + (1 - strength) * base_logit)


def train_router(data: OutcomeSet, *, goal: Goal = DEFAULT_GOAL, bits: int = DEFAULT_BITS, focus: Focus = "last",
                 c_grid: Sequence[float] = DEFAULT_C_GRID, weightings: Sequence[str] = DEFAULT_WEIGHTINGS,
                 second_stage: bool = True, auxiliary: bool = True, provenance: dict[str, Any] | None = None,
                 progress: Progress | None = None, encoder: Encoder | None = None, jobs: int | None = None,
                 familiarity: bool = True) -> tuple[RouterArtifact, TrainReport]:
    """Train a complete router artifact from ``data``; the operating point meets ``goal`` out of fold.

    With ``encoder``, each prompt's sentence embedding joins the dense features (``EmbeddingFeaturizer``).
    ``jobs`` worker processes run the independent fits (``evaluation.workers``; None: one per CPU when the
    corpus is large enough to gain from it); the router is the same whatever the number. With ``familiarity``
    the predictor is wrapped in a ``GuardedPredictor``: prompts unlike the training prompts are predicted from
    their structure features rather than their n-grams (``policies.familiarity``)."""
    start = time.perf_counter()
    if goal.kind in ("cost", "lambda") and not data.has_costs:
        raise OutcomeDataError(f"--goal {goal}: the data records no costs, so no price can be weighed "
                               "on it; give a quality=... or strong_share=... goal, or data with a cost per score")
    if len(data) < MIN_TRAIN_ITEMS:
        raise OutcomeDataError(f"{len(data)} items: training needs at least {MIN_TRAIN_ITEMS} (every choice is "
                               f"made by {INNER_FOLDS}-fold cross-validation inside the training data)")
    featurizer: Any = HashingFeaturizer(bits=bits, focus=focus)
    if encoder is not None:
        featurizer = EmbeddingFeaturizer(featurizer, encoder)
    if progress:
        progress(f"featurising {len(data)} prompts")
    x, dense = featurize(data, featurizer)
    workers = Workers.for_corpus(jobs, x.nnz, len(data.models))
    if data.complete:
        fitted = fit_predictor(x, dense, data, featurizer, c_grid=c_grid, weightings=weightings,
                               second_stage=second_stage, auxiliary=auxiliary, progress=progress, workers=workers)
    else:
        fitted = fit_partial(x, dense, data, featurizer, c_grid=c_grid, weightings=weightings, progress=progress,
                             workers=workers)
    featurizer, predictor, oof, c, weighting, table = (fitted.featurizer, fitted.predictor, fitted.oof, fitted.c,
                                                       fitted.weighting, fitted.table)
    stacked = predictor.kind == "stacked"
    if familiarity:
        if progress:
            progress(f"familiarity: {PROTOTYPES} prototypes of the training prompts, calibrated on inner folds")
        assert isinstance(predictor, (LinearPredictor, StackedPredictor))  # ``RouterArtifact`` binds the idf
        predictor = GuardedPredictor(predictor, fit_familiarity(x, inner_folds(data)))
    mean_costs = expected_costs(data)
    observed = data.observed
    # Logged traffic has no score for the models that did not answer: the operating point is set on the
    # out-of-fold predicted quality there (the "direct method" of off-policy evaluation), on true scores elsewhere.
    scores = np.where(observed, data.scores, oof)
    objective, achieved = choose_operating_point(oof, scores, _cost_matrix(data, mean_costs), mean_costs,
                                                 data.models, goal, priced=data.has_costs)
    notes = [] if achieved["met"] else [_out_of_reach(goal, achieved)]
    notes += [note] if (note := zero_router_note(goal, achieved)) else []
    calibration = {}
    for j, m in enumerate(data.models):
        seen = observed[:, j]
        calibration[m] = {"brier": brier(oof[seen, j], data.scores[seen, j]),
                          "ece": ece(oof[seen, j], data.scores[seen, j]), "items": int(seen.sum())}
    # What the user most needs to know before deploying: does routing on these prompts beat the best fixed mix
    # of models? Out of fold, but the same predictions chose the configuration: optimistic, the more so the
    # fewer the items (``eval --cv`` is not).
    routing = (routing_summary(oof, data.scores, data.costs, mean_costs, data.models) if data.complete else {})
    heldout = {"goal": str(goal), "operating_point": achieved, "calibration": calibration, "c": c,
               "weighting": weighting, "second_stage": stacked, "shrink": fitted.shrink,
               "auxiliary": list(fitted.auxiliary), "cv": table, "partial": not data.complete, "routing": routing,
               "notes": notes,
               "familiarity": ({**predictor.familiarity.config(), "prototypes": predictor.familiarity.prototypes}
                               if isinstance(predictor, GuardedPredictor) else None)}
    prov = {"n_items": len(data), "models": list(data.models), **(provenance or {})}
    artifact = RouterArtifact(featurizer, predictor, objective,
                              {m: float(v) for m, v in zip(data.models, mean_costs)} if data.has_costs else {},
                              prov, heldout)
    return artifact, TrainReport(c, weighting, stacked, fitted.shrink, table, calibration, achieved,
                                 time.perf_counter() - start, fitted.auxiliary, routing, tuple(notes))


def _out_of_reach(goal: Goal, achieved: dict[str, float]) -> str:
    """Why the calibrated operating point misses ``goal``: no setting of the router reaches it on held-out data."""
    if goal.kind == "quality":
        return (f"goal {goal} is out of reach: the best setting reaches {achieved['quality_vs_best']:.1%} "
                "of the best model's quality out of fold, and the router uses that setting")
    if goal.kind == "cost":
        return (f"goal {goal} is out of reach: the cheapest setting costs {achieved['cost']:.4g} per request out of "
                "fold, and the router uses that setting")
    return (f"goal {goal} is out of reach: the lowest share of requests to the strongest model is "
            f"{achieved['strong_share']:.1%} out of fold, and the router uses that setting")


def _cost_matrix(data: OutcomeSet, mean_costs: np.ndarray) -> np.ndarray:
    """Per item and model, the recorded cost; each model's expected cost without one for every item and model."""
    return data.costs if data.complete and data.has_costs else np.broadcast_to(mean_costs, data.scores.shape)


def file_digest(path: str) -> str:
    """sha256 of a data file, recorded in provenance so an artifact names exactly what trained it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

