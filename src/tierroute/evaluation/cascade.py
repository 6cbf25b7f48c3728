"""Offline evaluation of cascades from recorded replies: cheap models answer first, a strong model only when
they disagree (or, with one cheap model, when its reply has no final answer).

Every model's reply to every item is in the outcome file, so a cascade's score and cost on an item follow
without calling anything: agreement -> the first cheap model's score, at the cheap models' cost; otherwise the
strong model's score, at the cheap models' cost plus the strong one's. A chain is a fixed rule with no training,
but which chain to deploy is chosen, and it is chosen on training items only (``--train``, ``--split``, or the
other folds under ``--cv``): the cheapest chain that reached the strong model's training accuracy, or the most
accurate one if none did. The front of all chains on the evaluated items is printed beside it; being picked on
those items, it is optimistic, which is why it is not the headline.

Strategies: ``agree`` (all cheap models give the same final answer), ``majority`` (two of three agree; the
majority answer is returned), ``answered`` (one cheap model whose reply has an extractable final answer).
Without recorded costs (GSM8K), cost is the share of strong calls: the cheap calls are counted as free.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..cascade.answers import extract, final_number
from .data import OutcomeDataError, OutcomeSet
from .metrics import curve_at, upper_hull
from .operating_point import mix_quality, zero_hull, zero_mix_at
from .uncertainty import LEVEL, _intervals, resample_rows

FRONT_POINTS = 12


@dataclass(frozen=True)
class Chain:
    """Cheap models (columns) answering first, the strategy deciding on their answers, the strong column."""

    voters: tuple[int, ...]
    strategy: str  # "agree" | "majority" | "answered"
    strong: int

    def describe(self, models: Sequence[str]) -> str:
        return f"{self.strategy}({', '.join(models[j] for j in self.voters)}) -> {models[self.strong]}"


def read_replies(paths: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    """Each item's recorded outcomes by id (``.gz`` files decompressed), replies included: ``load_outcomes``
    keeps only their lengths."""
    replies: dict[str, dict[str, Any]] = {}
    for path in paths:
        raw = Path(path).read_bytes()
        if str(path).endswith(".gz"):
            raw = gzip.decompress(raw)
        for line in raw.removeprefix(b"\xef\xbb\xbf").splitlines():
            if line.strip():
                row = orjson.loads(line)
                replies[str(row.get("id"))] = row.get("outcomes") or {}
    return replies


def _texts(replies: dict[str, dict[str, Any]], data: OutcomeSet) -> list[list[str | None]]:
    out = []
    for item in data.items:
        outcomes = replies.get(item.id, {})
        row = []
        for model in data.models:
            text = (outcomes.get(model) or {}).get("response")
            row.append(text if isinstance(text, str) else None)
        out.append(row)
    return out


def read_answers(replies: dict[str, dict[str, Any]], data: OutcomeSet,
                 kind: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``answers[i, j]``: model j's extracted final answer on item i (None: no reply recorded or none found);
    ``final[i, j]``: that reply states a final answer, an option letter or a number marked final (the
    single-model ``answered`` strategy: a refusal or an unfinished solution escalates)."""
    shape = (len(data), len(data.models))
    answers, final = np.full(shape, None, dtype=object), np.zeros(shape, dtype=bool)
    for i, row in enumerate(_texts(replies, data)):
        for j, text in enumerate(row):
            if text is not None:
                answers[i, j] = extract(text, kind)
                final[i, j] = final_number(text) is not None or str(extract(text, "auto")).startswith("choice:")
    return answers, final


def _costs(data: OutcomeSet, strong: int) -> tuple[np.ndarray, bool]:
    """The cost matrix, or without recorded costs one where only the strong model's call costs (1 per call)."""
    if data.has_costs:
        return data.costs, True
    costs = np.zeros_like(data.scores)
    costs[:, strong] = 1.0
    return costs, False


def run_chain(chain: Chain, scores: np.ndarray, costs: np.ndarray, answers: np.ndarray,
              final: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item: the cascade's score, its cost, and whether it escalated."""
    n = scores.shape[0]
    v = list(chain.voters)
    cheap_cost = costs[:, v].sum(axis=1)
    served = scores[:, v[0]].copy()
    if chain.strategy == "answered":
        ok = final[:, v[0]] & np.array([a is not None for a in answers[:, v[0]]])
    elif chain.strategy == "agree":
        first = answers[:, v[0]]
        ok = np.array([first[i] is not None and all(answers[i, j] == first[i] for j in v[1:]) for i in range(n)])
    else:  # majority of three: the answer two of them give, served with the score of one that gave it
        ok = np.zeros(n, dtype=bool)
        for i in range(n):
            a = [answers[i, j] for j in v]
            for x, y in ((0, 1), (0, 2), (1, 2)):
                if a[x] is not None and a[x] == a[y]:
                    ok[i], served[i] = True, scores[i, v[x]]
                    break
    score = np.where(ok, served, scores[:, chain.strong])
    cost = np.where(ok, cheap_cost, cheap_cost + costs[:, chain.strong])
    return score, cost, ~ok


def candidate_chains(data: OutcomeSet, strong: int, costs: np.ndarray) -> list[Chain]:
    """Every chain of one to three models cheaper than ``strong``, escalating to it."""
    mean_cost = costs.mean(axis=0)
    cheap = [j for j in range(len(data.models)) if j != strong and mean_cost[j] <= mean_cost[strong]]
    chains = [Chain((j,), "answered", strong) for j in cheap]
    chains += [Chain(pair, "agree", strong) for pair in combinations(cheap, 2)]
    for triple in combinations(cheap, 3):
        chains += [Chain(triple, "agree", strong), Chain(triple, "majority", strong)]
    return chains


def strongest(data: OutcomeSet) -> int:
    """The most accurate model on ``data`` (ties: the cheaper)."""
    quality = data.scores.mean(axis=0)
    cost = data.costs.mean(axis=0) if data.has_costs else np.zeros(len(data.models))
    return int(min(range(len(data.models)), key=lambda j: (-quality[j], cost[j])))


def choose_chain(train: OutcomeSet, answers: np.ndarray, final: np.ndarray) -> tuple[Chain, dict[str, float]]:
    """On training items: the cheapest chain reaching the strong model's accuracy, else the most accurate one.
    Only chains cheaper than the strong model alone count: one that escalates (nearly) always costs more than
    calling the strong model directly, for its accuracy."""
    strong = strongest(train)
    costs, _ = _costs(train, strong)
    target = float(train.scores[:, strong].mean())
    best: tuple[tuple[float, ...], Chain, dict[str, float]] | None = None
    for chain in candidate_chains(train, strong, costs):
        score, cost, _ = run_chain(chain, train.scores, costs, answers, final)
        q, c = float(score.mean()), float(cost.mean())
        if c >= float(costs[:, strong].mean()):
            continue
        key = (0.0, c, -q) if q >= target - 1e-12 else (1.0, -q, c)
        if best is None or key < best[0]:
            best = (key, chain, {"quality": q, "cost": c, "strong_quality": target,
                                 "strong_cost": float(costs[:, strong].mean())})
    if best is None:
        raise OutcomeDataError(f"cascade: no chain of cheaper models costs less than {train.models[strong]} alone "
                               "on the training items")
    return best[1], best[2]


def _zero_at(data: OutcomeSet, cost: float, strong: int) -> float | None:
    if not data.has_costs:  # cost is the strong share: the zero router sends that share of items to strong at random
        if len(data.models) != 2:
            return None
        q = data.scores.mean(axis=0)
        return float(q[1 - strong] + min(cost, 1.0) * (q[strong] - q[1 - strong]))
    single_cost = data.costs.mean(axis=0)
    hull = zero_hull(single_cost, data.scores.mean(axis=0))
    return float(mix_quality(*zero_mix_at(hull, single_cost, cost), data.scores).mean())


def evaluate(test: OutcomeSet, test_answers: np.ndarray, test_final: np.ndarray,
             choices: Sequence[tuple[np.ndarray, Chain, dict[str, float]]],
             router_points: Sequence[tuple[float, float]] | None = None, resamples: int = 1000) -> dict[str, Any]:
    """The chosen chains (one per held-out part: ``(rows, chain, train figures)``) scored on ``test``, against
    the strong model, the zero router and the router at the same cost; and the front of every chain on ``test``.

    ``router_points``: the router's (cost, quality) curve in the cascade's cost unit (mean cost per item, or
    without recorded costs the share of strong calls)."""
    strong = choices[0][1].strong
    costs, priced = _costs(test, strong)
    n = len(test)
    score, cost, escalated = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for rows, chain, _ in choices:
        s, c, e = run_chain(chain, test.scores[rows], costs[rows], test_answers[rows], test_final[rows])
        score[rows], cost[rows], escalated[rows] = s, c, e
    strong_score, strong_cost = test.scores[:, strong], costs[:, strong]
    values = []
    for rows in resample_rows(n, resamples):
        values.append((score[rows].mean(), cost[rows].sum() / strong_cost[rows].sum(),
                       score[rows].mean() - strong_score[rows].mean()))
    chosen: dict[str, Any] = {
        "chains": [{"chain": ch.describe(test.models), "items": int(len(rows)), "train": fig}
                   for rows, ch, fig in choices],
        "quality": float(score.mean()), "cost": float(cost.mean()),
        "cost_share": float(cost.sum() / strong_cost.sum()), "escalated": float(escalated.mean()),
        "minus_strong": float(score.mean() - strong_score.mean()),
        "zero_at_cost": _zero_at(test, float(cost.mean()), strong),
    }
    if resamples:
        chosen["intervals"] = _intervals(("quality", "cost_share", "minus_strong"), values)
    if router_points:
        chosen["router_at_cost"] = float(curve_at(upper_hull(router_points), np.array([cost.mean()]))[0])
    front = []
    for chain in candidate_chains(test, strong, costs):
        s, c, _ = run_chain(chain, test.scores, costs, test_answers, test_final)
        front.append((float(c.mean()), float(s.mean()), chain))
    front.sort(key=lambda p: (p[0], -p[1]))
    pareto: list[tuple[float, float, Chain]] = []
    for p in front:
        if not pareto or p[1] > pareto[-1][1]:
            pareto.append(p)
    hull = upper_hull(router_points) if router_points else None
    rows_out = []
    for c, q, chain in pareto:
        rows_out.append({"chain": chain.describe(test.models), "cost": c, "cost_share": c / float(strong_cost.mean()),
                         "quality": q, "zero": _zero_at(test, c, strong),
                         "router": None if hull is None else float(curve_at(hull, np.array([c]))[0])})
    reach = next((r for r in rows_out if r["quality"] >= float(strong_score.mean()) - 1e-12), None)
    return {"strong": test.models[strong], "strong_quality": float(strong_score.mean()),
            "strong_cost": float(strong_cost.mean()), "priced": priced, "chosen": chosen,
            "front": _thin(rows_out, FRONT_POINTS), "front_reaching_strong": reach, "level": LEVEL,
            "resamples": resamples}


def _thin(rows: list[dict[str, Any]], most: int) -> list[dict[str, Any]]:
    """About ``most`` evenly spaced rows, always keeping the last (the front's most accurate chain)."""
    if not rows:
        return rows
    step = max(1, len(rows) // most)
    kept = rows[::step]
    return kept if kept[-1] is rows[-1] else kept + rows[-1:]


def train_test_cascade(train: OutcomeSet, train_files: Sequence[str], test: OutcomeSet, test_files: Sequence[str],
                       kind: str = "auto", router_points: Sequence[tuple[float, float]] | None = None,
                       resamples: int = 1000) -> dict[str, Any]:
    """Choose the chain on ``train``, score it on ``test``."""
    chain, fig = choose_chain(train, *read_answers(read_replies(train_files), train, kind))
    if test.models != train.models:  # the same models, maybe in another order: map the columns by name
        chain = Chain(tuple(test.models.index(train.models[j]) for j in chain.voters), chain.strategy,
                      test.models.index(train.models[chain.strong]))
    return evaluate(test, *read_answers(read_replies(test_files), test, kind), [(np.arange(len(test)), chain, fig)], router_points, resamples)


def cross_validate_cascade(data: OutcomeSet, files: Sequence[str], folds: np.ndarray, kind: str = "auto",
                           router_points: Sequence[tuple[float, float]] | None = None,
                           resamples: int = 1000) -> dict[str, Any]:
    """Per fold: choose the chain on the other folds, score it on this one."""
    answers, final = read_answers(read_replies(files), data, kind)
    choices = []
    for f in sorted(set(folds.tolist())):
        inner = np.flatnonzero(folds != f)
        chain, fig = choose_chain(data.subset(inner), answers[inner], final[inner])
        choices.append((np.flatnonzero(folds == f), chain, fig))
    return evaluate(data, answers, final, choices, router_points, resamples)
