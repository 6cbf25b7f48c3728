"""Two routers on the same items: every figure for each, and a paired bootstrap interval for the difference.

A router is either a router file (replayed on the items, as ``tierroute eval --router`` does) or the per-item
decisions ``tierroute eval --decisions`` wrote, which is how two training pipelines are compared under
cross-validation. Paired means the same resampled items score both routers, so the interval reflects where the
routers differ rather than which items happened to be drawn: round 4 against round 3 on MMLU, +0.0094 APGR with
a paired 95% interval 0.013 wide, where either router's own interval is 0.04 wide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..policies.artifact import ArtifactError, load_artifact
from ..policies.calibration import brier
from .data import OutcomeDataError, OutcomeSet
from .metrics import cost_quality_report, lambda_points, two_model_report
from .replay import replay_artifact, strong_weak
from .train import expected_costs
from .uncertainty import (COST_QUALITY_FIGURES, DEFAULT_RESAMPLES, LEVEL, TWO_MODEL_FIGURES, Interval,
                          paired_cost_quality, paired_mean, paired_two_model)


@dataclass(frozen=True)
class Side:
    """One router's predicted quality on every item (n x models of the data) and the expected cost per model
    it priced with."""

    label: str
    pred: np.ndarray
    mean_costs: np.ndarray


def load_side(path: str | Path, data: OutcomeSet) -> Side:
    """A router file replayed on ``data``, or a decisions file that covers every item of ``data``."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            router_file = f.read(4) == b"PK\x03\x04"  # router files are npz, i.e. zip archives
    except OSError as exc:
        raise OutcomeDataError(f"{path}: {exc.strerror or exc}") from None
    if router_file:
        try:
            replay = replay_artifact(load_artifact(path), data)
        except ArtifactError as exc:
            raise OutcomeDataError(str(exc)) from None
        return Side(path.name, replay.pred, replay.mean_costs)
    return _decisions(path, data)


def _decisions(path: Path, data: OutcomeSet) -> Side:
    index = {item.id: i for i, item in enumerate(data.items)}
    pred = np.full(data.scores.shape, np.nan)
    priced: dict[str, float] | None = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise OutcomeDataError(f"{path}: cannot read decisions: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
            i = index.get(row["id"])
            predicted = row["predicted"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise OutcomeDataError(f"{where}: not a decisions line from `tierroute eval --decisions` "
                                   f"({type(exc).__name__}: {exc}); it needs 'id' and 'predicted'") from None
        if i is None:
            continue  # decisions for items outside --data: a file may cover more than is compared
        missing = [m for m in data.models if not isinstance(predicted.get(m), (int, float))]
        if missing:
            raise OutcomeDataError(f"{where}: 'predicted' has no number for {missing}")
        pred[i] = [predicted[m] for m in data.models]
        if priced is None and isinstance(row.get("expected_cost"), dict):
            priced = row["expected_cost"]
    absent = np.flatnonzero(np.isnan(pred).any(axis=1))
    if absent.size:
        raise OutcomeDataError(f"{path}: no decision for {absent.size} of {len(data)} items "
                               f"(first: {data.items[int(absent[0])].id!r})")
    if priced is not None and all(m in priced for m in data.models):
        mean_costs = np.array([float(priced[m]) for m in data.models])
    else:  # files written before decisions recorded prices: what --cv prices with
        mean_costs = expected_costs(data)
    return Side(path.name, pred, mean_costs)


def compare(first: Side, second: Side, data: OutcomeSet, resamples: int = DEFAULT_RESAMPLES) -> dict[str, Any]:
    """Every figure the data's shape allows, for both routers, and the paired interval of second - first."""
    rows: list[dict[str, Any]] = []

    def add(figures: tuple[str, ...], a: tuple[float | None, ...], b: tuple[float | None, ...],
            intervals: dict[str, Interval]) -> None:
        for name, x, y in zip(figures, a, b):
            diff = None if x is None or y is None else y - x
            rows.append({"figure": name, "first": x, "second": y, "difference": diff, "interval": intervals[name]})

    if len(data.models) == 2:
        s, w = strong_weak(data)
        scores = [side.pred[:, s] - side.pred[:, w] for side in (first, second)]
        reports = [two_model_report(score, data.scores[:, s], data.scores[:, w]) for score in scores]
        a, b = ((r.apgr, r.cpt50, r.cpt80, r.strong_share_for_95pct) for r in reports)
        add(TWO_MODEL_FIGURES, a, b, paired_two_model(*scores, data.scores[:, s], data.scores[:, w], resamples))
    if data.has_costs:
        reports = [cost_quality_report(lambda_points(side.pred, side.mean_costs, data.scores, data.costs),
                                       data.models, data.scores, data.costs) for side in (first, second)]
        a, b = ((r.aiq_router, r.gap_closed, r.min_margin_over_zero, r.cost_share_for_best_single) for r in reports)
        add(COST_QUALITY_FIGURES, a, b, paired_cost_quality((first.pred, first.mean_costs),
                                                            (second.pred, second.mean_costs), data.models,
                                                            data.scores, data.costs, resamples))
    errors = [((side.pred - data.scores) ** 2).mean(axis=1) for side in (first, second)]
    rows.append({"figure": "brier", "first": brier(first.pred, data.scores), "second": brier(second.pred, data.scores),
                 "difference": float(errors[1].mean() - errors[0].mean()),
                 "interval": paired_mean(errors[0], errors[1], resamples)})
    return {"items": len(data), "models": list(data.models), "first": first.label, "second": second.label,
            "bootstrap": {"resamples": resamples, "level": LEVEL, "paired": True}, "figures": rows}
