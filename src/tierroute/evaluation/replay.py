"""Replay outcome data through a router and score it: train/test, k-fold CV, and the metrics report.

Replay uses the same objective code as the live policy (``policies.objective``), vectorised over items, so
what evaluation reports is what the gateway would have decided.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..policies.artifact import RouterArtifact
from ..policies.calibration import Goal, brier, ece
from ..policies.objective import Objective, choose_many, mix_choice
from ..policies.predictors.guarded import GuardedPredictor
from .data import PARTIAL_HINT, OutcomeDataError, OutcomeSet
from .metrics import LAMBDA_SWEEP, cost_quality_report, lambda_points, strong_and_weak, two_model_report
from .operating_point import mix_quality, zero_hull, zero_mix_at
from .train import DEFAULT_GOAL, Progress, TrainReport, expected_costs, featurize, item_text, train_router
from .uncertainty import LEVEL, cost_quality_intervals, operating_point_intervals, two_model_intervals

# A routed setting this far below the zero router at its cost is counted as losing to not routing.
BELOW_ZERO = 0.005


@dataclass
class Replay:
    """Predictions for every item of ``data`` from routers that never saw that item."""

    data: OutcomeSet
    pred: np.ndarray
    mean_costs: np.ndarray  # expected cost per model, as the router knew it (training data)
    objective: Objective
    notes: list[str] = field(default_factory=list)
    # What each router trained inside the evaluation chose (``trained``): one entry per fold, or one for --train.
    training: list[dict[str, Any]] = field(default_factory=list)
    # Each item's model (column) at the deployed operating point: its own fold's router's under --cv.
    picks: np.ndarray | None = None
    # How far each item's router trusted its n-grams for it (``policies.familiarity``); None: routers without.
    trust: np.ndarray | None = None

    @property
    def deployed(self) -> np.ndarray:
        return choose(self.objective, self.pred, self.mean_costs, self.data) if self.picks is None else self.picks


def choose(objective: Objective, pred: np.ndarray, mean_costs: np.ndarray, data: OutcomeSet) -> np.ndarray:
    """Each item's model (column of ``data``) under ``objective``, as the gateway decides: ``choose_many``, or for
    a ``mix`` the model the routing text hashes to (``policies.objective.mix_choice``)."""
    if objective.mode != "mix":
        return choose_many(pred, mean_costs, objective)
    missing = [m for m in objective.models if m not in data.models]
    if missing:
        raise OutcomeDataError(f"the router serves {missing}, which the data does not score")
    return np.array([data.models.index(mix_choice(objective, item_text(it.messages))) for it in data.items],
                    dtype=np.int64)


def trained(label: str, report: TrainReport) -> dict[str, Any]:
    """The choices inner cross-validation made for one router, as the evaluation reports them."""
    return {"router": label, "weighting": report.weighting, "c": report.c, "auxiliary_targets": list(report.auxiliary),
            "second_stage": report.second_stage, "shrink": report.shrink, "seconds": round(report.seconds, 2),
            "operating_point": report.operating_point}


def predict(artifact: RouterArtifact, data: OutcomeSet) -> np.ndarray:
    """Predicted quality (n x models of ``data``) from a trained artifact; models must match by name."""
    return predict_with_trust(artifact, data)[0]


def predict_with_trust(artifact: RouterArtifact, data: OutcomeSet) -> tuple[np.ndarray, np.ndarray | None]:
    """``predict``, and how far the router trusted each item's n-grams (None: a router without familiarity)."""
    missing = [m for m in data.models if m not in artifact.models]
    if missing:
        raise OutcomeDataError(f"data scores models the router was not trained on: {missing}")
    x, dense = featurize(data, artifact.featurizer)
    full = artifact.predictor.predict_many(x, dense)
    trust = artifact.predictor.trust_many(x) if isinstance(artifact.predictor, GuardedPredictor) else None
    return full[:, [artifact.models.index(m) for m in data.models]], trust


def _artifact_costs(artifact: RouterArtifact, data: OutcomeSet) -> np.ndarray:
    if artifact.mean_costs and all(m in artifact.mean_costs for m in data.models):
        return np.array([artifact.mean_costs[m] for m in data.models])
    return expected_costs(data)


def replay_artifact(artifact: RouterArtifact, data: OutcomeSet) -> Replay:
    (pred, trust), mean_costs = predict_with_trust(artifact, data), _artifact_costs(artifact, data)
    return Replay(data, pred, mean_costs, artifact.objective,
                  picks=choose(artifact.objective, pred, mean_costs, data), trust=trust)


def train_test(train: OutcomeSet, test: OutcomeSet, *, goal: Goal = DEFAULT_GOAL, progress: Progress | None = None,
               **train_kwargs: Any) -> Replay:
    """Train on ``train`` (all tuning inside it), predict ``test``."""
    artifact, rep = train_router(train, goal=goal, progress=progress, **train_kwargs)
    replay = replay_artifact(artifact, test)
    replay.training.append(trained("train split", rep))
    return replay


def only_split(data: OutcomeSet, name: str) -> OutcomeSet:
    """The items whose ``split`` is ``name``; none is an error listing the splits the data has."""
    keep = np.array([it.split == name for it in data.items])
    if not keep.any():
        found = sorted({"(none)" if it.split is None else repr(it.split) for it in data.items})
        raise OutcomeDataError(f"--split {name}: no item has split {name!r}; the data has {', '.join(found)}")
    return data.subset(keep)


def by_split(data: OutcomeSet) -> tuple[OutcomeSet, OutcomeSet]:
    """The items whose ``split`` is "train" and those whose split is "test" (files that carry a source's fixed
    split, as RouterBench's do). Items without a split, or with another value, are an error naming them: a
    silently dropped item would change what the figures describe."""
    splits = np.array([it.split for it in data.items], dtype=object)
    other = sorted({"(none)" if v is None else repr(v) for v in splits if v not in ("train", "test")})
    if other:
        first = data.items[int(np.flatnonzero([v not in ("train", "test") for v in splits])[0])].id
        raise OutcomeDataError("--split: every item needs 'split' set to \"train\" or \"test\"; "
                               f"found {', '.join(other)} "
                               f"(first: item {first!r})")
    train, test = splits == "train", splits == "test"
    if not train.any() or not test.any():
        raise OutcomeDataError(f"--split: the data has {int(train.sum())} train and {int(test.sum())} test items; "
                               "it needs both")
    return data.subset(train), data.subset(test)


def cv_folds(data: OutcomeSet, k: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Outer fold per item: the ``fold`` field, or with ``k`` and no item carrying one, a stable hash of the id.

    Some items with a fold and some without, or a number of distinct folds other than ``k``, is an error: either
    would silently evaluate something other than what was asked for.
    """
    folds = data.folds
    missing = folds < 0
    if missing.all() and k is not None:
        if k < 2:
            raise OutcomeDataError(f"--cv {k}: need at least 2 folds")
        hashed = np.array([zlib.crc32(f"fold:{it.id}".encode()) % k for it in data.items])
        return hashed, [f"no item has a 'fold' field: {k} folds from a stable hash of each id"]
    if missing.any():
        first = data.items[int(np.flatnonzero(missing)[0])].id
        raise OutcomeDataError(f"cross-validation: {int(missing.sum())} of {len(data)} items have no 'fold' field "
                               f"(first: {first!r}); give every item one, or none (folds are then hashed from the ids)")
    distinct = sorted(set(folds.tolist()))
    if k is not None and len(distinct) != k:
        raise OutcomeDataError(f"--cv {k}: the data has {len(distinct)} folds ({distinct})")
    if len(distinct) < 2:
        raise OutcomeDataError(f"cross-validation needs at least 2 folds, the data has {distinct}")
    return folds, []


def cross_validate(data: OutcomeSet, *, k: int | None = None, goal: Goal = DEFAULT_GOAL,
                   progress: Progress | None = None, **train_kwargs: Any) -> Replay:
    """k-fold CV over the ``fold`` field (``cv_folds``): each fold is predicted by a router trained on the others."""
    folds, notes = cv_folds(data, k)
    pred = np.zeros_like(data.scores)
    picks = np.zeros(len(data), dtype=np.int64)
    values = []
    training = []
    trust: np.ndarray | None = np.ones(len(data))
    for k in np.unique(folds):
        if progress:
            progress(f"outer fold {k}: train {int((folds != k).sum())}, test {int((folds == k).sum())}")
        inner = None if progress is None else (lambda msg, k=k: progress(f"  fold {k}: {msg}"))
        artifact, rep = train_router(data.subset(folds != k), goal=goal, progress=inner, **train_kwargs)
        test = data.subset(folds == k)
        pred[folds == k], fold_trust = predict_with_trust(artifact, test)
        if trust is not None and fold_trust is not None:
            trust[folds == k] = fold_trust
        else:
            trust = None
        picks[folds == k] = choose(artifact.objective, pred[folds == k], _artifact_costs(artifact, test), test)
        values.append(artifact.objective)
        training.append(trained(f"fold {k}", rep))
    # Each fold is scored at its own router's operating point (``picks``); the objective reported is the mean of
    # the per-fold knobs when every fold routes in the same mode, else the first fold's (``training`` has each).
    same = all(v.mode == values[0].mode and v.mode != "mix" for v in values)
    objective = Objective(values[0].mode, float(np.mean([v.value for v in values]))) if same else values[0]
    return Replay(data, pred, expected_costs(data), objective, notes, training, picks, trust)


def strong_weak(data: OutcomeSet) -> tuple[int, int]:
    """Strong and weak model of two-model ``data`` (``metrics.strong_and_weak``)."""
    return strong_and_weak(data.scores)


def report(replay: Replay, resamples: int = 0) -> dict[str, Any]:
    """Standard metrics as a JSON-able dict: calibration, two-model gap recovery, cost-quality curves; with
    ``resamples``, each gap-recovery and cost-quality figure's bootstrap interval over the items (``intervals``)."""
    data, pred = replay.data, replay.pred
    if not data.complete:
        raise OutcomeDataError(f"{data.incomplete_items} of {len(data)} items lack some model's "
                               f"score: routing metrics need every model's score on each evaluated item{PARTIAL_HINT}")
    out: dict[str, Any] = {"items": len(data), "models": list(data.models),
                           "calibration": {m: {"brier": brier(pred[:, j], data.scores[:, j]),
                                               "ece": ece(pred[:, j], data.scores[:, j])}
                                           for j, m in enumerate(data.models)}}
    pick = replay.deployed
    rows = np.arange(len(data))
    point: dict[str, Any] = {"objective": _objective_dict(replay),
                             "quality": float(data.scores[rows, pick].mean()),
                             "share": {m: float(np.mean(pick == j)) for j, m in enumerate(data.models)}}
    if data.has_costs:
        point.update(against_zero(pick, data.scores, data.costs))
        if resamples:
            point["intervals"] = operating_point_intervals(pick, data.scores, data.costs, resamples)
    out["operating_point"] = point
    if len(data.models) == 2:
        s, w = strong_weak(data)
        score = router_score(pred, data)
        out["two_model"] = two_model_report(score, data.scores[:, s], data.scores[:, w]).as_dict()
        out["two_model"]["strong"], out["two_model"]["weak"] = data.models[s], data.models[w]
        if resamples:
            out["two_model"]["intervals"] = two_model_intervals(score, data.scores[:, s], data.scores[:, w], resamples)
    if data.has_costs:
        out["cost_quality"] = cost_quality_report(router_points(replay), data.models, data.scores, data.costs).as_dict()
        out["cost_quality"]["settings"] = settings(replay)
        if resamples:
            out["cost_quality"]["intervals"] = cost_quality_intervals(pred, replay.mean_costs, data.models,
                                                                      data.scores, data.costs, resamples)
    if resamples and ("two_model" in out or "cost_quality" in out):
        out["bootstrap"] = {"resamples": resamples, "level": LEVEL, "over": "evaluated items; routers not retrained"}
    if replay.training:
        out["training"] = replay.training
    if replay.trust is not None:
        out["familiarity"] = familiarity_summary(replay.trust)
    return out


def familiarity_summary(trust: np.ndarray) -> dict[str, float]:
    """How many evaluated items the router found unlike its training prompts (``policies.familiarity``)."""
    return {"mean_trust": float(trust.mean()), "unfamiliar_share": float(np.mean(trust < 1.0)),
            "ignored_share": float(np.mean(trust <= 0.0))}


def _objective_dict(replay: Replay) -> dict[str, Any]:
    o = replay.objective
    per_fold = [t["operating_point"]["deployed"] for t in replay.training if "operating_point" in t]
    text = o.describe() if len(per_fold) <= 1 else "per fold: " + "; ".join(per_fold)
    return {"mode": o.mode, "value": o.value, "models": list(o.models), "text": text}


def against_zero(pick: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> dict[str, float]:
    """The deployed point's mean cost, and the zero router's quality at that cost on the same items (the best
    mix of single models: its upper convex hull), and the margin between them."""
    rows = np.arange(scores.shape[0])
    cost, quality = float(costs[rows, pick].mean()), float(scores[rows, pick].mean())
    single_cost = costs.mean(axis=0)
    zero = float(mix_quality(*zero_mix_at(zero_hull(single_cost, scores.mean(axis=0)), single_cost, cost),
                             scores).mean())
    return {"cost": cost, "zero_at_cost": zero, "margin_over_zero": quality - zero}


def settings(replay: Replay, lambdas: Sequence[float] = tuple(LAMBDA_SWEEP)) -> dict[str, Any]:
    """Every lambda setting's point against the zero router at its cost, not only the hull of them: each setting
    is what a gateway configured with it runs, and the hull's ends are single models' points."""
    data = replay.data
    single_cost, single_quality = data.costs.mean(axis=0), data.scores.mean(axis=0)
    hull = zero_hull(single_cost, single_quality)
    points = []
    for lam, (cost, quality) in zip(lambdas, router_points(replay, lambdas)):
        zero = float(mix_quality(*zero_mix_at(hull, single_cost, cost), data.scores).mean())
        points.append({"lambda": float(lam), "cost": cost, "quality": quality, "zero": zero,
                       "margin": quality - zero})
    distinct = {(round(p["cost"], 12), round(p["quality"], 12)): p for p in points}.values()
    return {"points": points, "distinct": len(distinct), "below_zero": sum(p["margin"] < -BELOW_ZERO for p in distinct),
            "below_zero_by": BELOW_ZERO, "worst_margin": min(p["margin"] for p in points)}


def router_score(pred: np.ndarray, data: OutcomeSet) -> np.ndarray:
    """Two-model router score: predicted strong - weak quality (route high scores to strong)."""
    s, w = strong_weak(data)
    return pred[:, s] - pred[:, w]


def router_points(replay: Replay, lambdas: Sequence[float] = tuple(LAMBDA_SWEEP)) -> list[tuple[float, float]]:
    """(mean cost, mean quality) of the router at each lambda on the sweep."""
    return lambda_points(replay.pred, replay.mean_costs, replay.data.scores, replay.data.costs, lambdas)


def decisions(replay: Replay) -> list[dict[str, Any]]:
    """Per-item decisions: chosen model at the operating point and at fixed strong shares / lambdas."""
    data, pred = replay.data, replay.pred
    pick = replay.deployed
    rows: list[dict[str, Any]] = []
    extra: dict[str, np.ndarray] = {}
    if len(data.models) == 2:
        score = router_score(pred, data)
        s, w = strong_weak(data)
        order = np.argsort(-score, kind="stable")
        rank_pos = np.empty(len(data), int)
        rank_pos[order] = np.arange(len(data))
        for share in (0.2, 0.5, 0.8):
            extra[f"strong_share_{share:g}"] = np.where(rank_pos < share * len(data), s, w)
    else:
        score = pred.max(axis=1)
        for lam in (0.0, 0.1, 0.3, 1.0):
            extra[f"lambda_{lam:g}"] = choose_many(pred, replay.mean_costs, Objective("lambda", lam))
    # Full precision, and with costs the per-model expected cost the router priced with: enough to recompute
    # the choice at any lambda, and for ``tierroute compare`` to rescore the file exactly as ``eval`` scored it.
    priced = {m: float(c) for m, c in zip(data.models, replay.mean_costs)} if data.has_costs else None
    for i, item in enumerate(data.items):
        row = {"id": item.id, "router_score": float(score[i]), "chosen": data.models[pick[i]],
               "chosen_at": {k: data.models[v[i]] for k, v in extra.items()},
               "predicted": {m: float(pred[i, j]) for j, m in enumerate(data.models)}}
        if priced is not None:
            row["expected_cost"] = priced
        rows.append(row)
    return rows
