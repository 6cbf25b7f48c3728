"""Auxiliary training targets: what outcome data says about a prompt besides each model's 0/1 score.

Outcome files often carry more than scores: the prompt's ``category`` (an MMLU subject) and each model's
recorded ``response``. Neither exists when a request is routed, but both describe the prompt with far less
noise than one item's score does:

* a category's success rate averages hundreds of labels (leave-one-out, so an item never sees its own score);
* a long recorded answer marks a many-step problem (GSM8K: GPT-4's answer length alone ranks the items where
  Mixtral fails with AUC 0.68).

Each target is regressed on the router's own features (ridge), and the regressions' outputs join the
first-stage logits in a small per-model logistic stack. Every piece is linear in the features, so the stack
folds back into one ``LinearPredictor`` (``fold_into``): the trained router pays nothing for it when routing.
Training uses it only where a paired inner-CV test says it helps: lower Brier, or a Brier tie and a routing
metric higher by more than its standard error (``cross_fit_auxiliary``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..policies.predictors.base import sigmoid
from ..policies.predictors.linear import LinearPredictor
from .data import OutcomeSet
from .selection import bootstrap_se, routing_metric, routing_score, standard_error
from .workers import Workers

# Target names: a prefix, then the model.
CATEGORY = "category rate: "
LENGTH = "answer length: "
# A category needs this many items before its rate means anything; smaller ones fall back to the global rate.
MIN_CATEGORY_ITEMS = 20
# A category rate is shrunk toward the global rate as if it held this many more items at that rate.
CATEGORY_PRIOR_ITEMS = 5.0
# A model's answer length is a target only where the data records its answer for at least this share of items.
MIN_RESPONSE_SHARE = 0.9
# More targets than this (many models) are regressed through their leading principal components.
MAX_COMPONENTS = 4
# Ridge penalty of the target regressions (features are L2-normalised n-grams plus standardised dense
# features). On MMLU (5-fold, linear stage) 3 gave a lower Brier than 10 and 30 (docs/research/routing-quality-log.md).
RIDGE_ALPHA = 3.0
# L2 strength (inverse) of each model's stack over [logits | auxiliary outputs], on standardised inputs.
STACK_C = 1.0


@dataclass(frozen=True)
class AuxiliaryTargets:
    """``values[i, k]`` is target ``names[k]`` for item ``i`` of the data it was built from."""

    names: tuple[str, ...]
    values: np.ndarray


def auxiliary_targets(data: OutcomeSet, like: AuxiliaryTargets | None = None) -> AuxiliaryTargets | None:
    """The targets this data supports (category rates, answer lengths), or None when it supports none.

    With ``like``, the same columns as ``like`` are rebuilt from ``data`` alone (an inner training part): its
    category rates come from its own items, so a held-out item's score never leaks into a target.
    """
    names: list[str] = []
    columns: list[np.ndarray] = []
    want = None if like is None else set(like.names)
    rates = (_category_rates(data, force=want is not None)
             if want is None or f"{CATEGORY}{data.models[0]}" in want else None)
    if rates is not None:
        names += [f"{CATEGORY}{m}" for m in data.models]
        columns.append(rates)
    for m in data.models:
        lengths = np.array([it.response_chars.get(m, np.nan) for it in data.items], dtype=np.float64)
        present = np.isfinite(lengths)
        if want is not None:
            if f"{LENGTH}{m}" not in want:
                continue
        elif present.mean() < MIN_RESPONSE_SHARE or np.ptp(lengths[present]) == 0:
            continue
        logs = np.log1p(lengths)
        fill = float(np.nanmean(logs)) if present.any() else 0.0
        names.append(f"{LENGTH}{m}")
        columns.append(np.where(present, logs, fill)[:, None])
    if not columns:
        return None
    return AuxiliaryTargets(tuple(names), np.hstack(columns))


def _category_rates(data: OutcomeSet, *, force: bool = False) -> np.ndarray | None:
    """Per item and model, the leave-one-out success rate of the item's category, on the logit scale.

    None when fewer than two categories are large enough to mean anything, unless ``force``."""
    labels = np.array([str(it.category) if it.category is not None else "" for it in data.items])
    n_all = len(data)
    # Leave-one-out everywhere, the global rate included: no target ever sees its own item's score.
    overall = (data.scores.sum(axis=0) - data.scores) / max(n_all - 1, 1)
    rates = overall.copy()
    usable = 0
    for name in np.unique(labels):
        rows = labels == name
        n = int(rows.sum())
        if not name or n < MIN_CATEGORY_ITEMS:
            continue
        usable += 1
        others = data.scores[rows].sum(axis=0) - data.scores[rows]
        rates[rows] = (others + CATEGORY_PRIOR_ITEMS * overall[rows]) / (n - 1 + CATEGORY_PRIOR_ITEMS)
    if usable < 2 and not force:
        return None
    rates = np.clip(rates, 1e-3, 1 - 1e-3)
    return np.log(rates / (1 - rates))


@dataclass(frozen=True)
class Projection:
    """The regression targets: ``((values - mean) / scale) @ components``, at most ``MAX_COMPONENTS`` columns."""

    mean: np.ndarray  # (k,)
    scale: np.ndarray  # (k,)
    components: np.ndarray  # (k, r)

    def apply(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.scale) @ self.components


def projection(targets: AuxiliaryTargets, *, max_components: int = MAX_COMPONENTS) -> Projection:
    """Targets as they are when there are few; else their leading principal components (standardised).

    Eleven models give up to 22 targets, highly correlated (a hard subject is hard for every model): a few
    components carry them, and each one costs a ridge fit and a stack input. The basis comes from the whole
    training set and is shared by every inner part, so their regressions predict the same columns."""
    values = targets.values
    k = values.shape[1]
    if k <= max_components:
        return Projection(np.zeros(k), np.ones(k), np.eye(k))
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    _, _, vt = np.linalg.svd((values - mean) / scale, full_matrices=False)
    return Projection(mean, scale, vt[:max_components].T)


@dataclass(frozen=True)
class AuxiliaryRegression:
    """``x @ weights + dense @ dense_weights + bias``: the targets predicted from a prompt's features."""

    weights: np.ndarray  # (dim, k)
    dense_weights: np.ndarray  # (n_dense, k)
    bias: np.ndarray  # (k,)

    def predict_many(self, x: Any, dense: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.weights) + dense @ self.dense_weights + self.bias


def fit_regression(x: Any, dense: np.ndarray, targets: np.ndarray, *, alpha: float = RIDGE_ALPHA
                   ) -> AuxiliaryRegression:
    """Ridge regression of ``targets`` on [n-grams | standardised dense], returned in raw-feature terms."""
    from scipy import sparse
    from sklearn.linear_model import Ridge

    mean, std = dense.mean(axis=0), dense.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    design = sparse.hstack([x, sparse.csr_matrix((dense - mean) / std)], format="csr")
    # LSQR stops at a relative tolerance: on MMLU it fits in 4.4 s what the default solver fits in 9.4 s, with
    # predictions correlated above 0.9999 with the exact solution; the stack reweights them anyway.
    model = Ridge(alpha=alpha, solver="lsqr", tol=1e-4).fit(design, targets)
    coef = np.atleast_2d(model.coef_).T  # (features, k)
    dim = x.shape[1]
    dense_weights = coef[dim:] / std[:, None]
    bias = np.atleast_1d(model.intercept_) - mean @ dense_weights
    return AuxiliaryRegression(coef[:dim].astype(np.float32), dense_weights, bias)


@dataclass(frozen=True)
class Stack:
    """Per model j: ``logit_j = logits @ on_logits[:, j] + aux @ on_aux[:, j] + bias[j]``."""

    on_logits: np.ndarray  # (n_models, n_models)
    on_aux: np.ndarray  # (k, n_models)
    bias: np.ndarray  # (n_models,)

    def logits(self, logits: np.ndarray, aux: np.ndarray) -> np.ndarray:
        return logits @ self.on_logits + aux @ self.on_aux + self.bias


def fit_stack(logits: np.ndarray, aux: np.ndarray, scores: np.ndarray, *, c: float = STACK_C) -> Stack:
    """One L2 logistic regression per model over every model's logit and every auxiliary output."""
    from sklearn.linear_model import LogisticRegression

    inputs = np.hstack([logits, aux])
    mean, std = inputs.mean(axis=0), inputs.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    z = (inputs - mean) / std
    n_models = scores.shape[1]
    coef = np.zeros((inputs.shape[1], n_models))
    bias = np.zeros(n_models)
    for j in range(n_models):
        y = scores[:, j]
        rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
        if y.min() == y.max():  # a model always right (or wrong) here: its constant rate
            bias[j] = np.log(rate / (1 - rate))
            continue
        # Fractional scores: a positive and a negative copy of each row, weighted score and 1 - score.
        rows = np.vstack([z, z])
        labels = np.concatenate([np.ones(y.size, int), np.zeros(y.size, int)])
        model = LogisticRegression(C=c, max_iter=1000).fit(rows, labels, sample_weight=np.concatenate([y, 1 - y]))
        w = model.coef_[0] / std
        coef[:, j], bias[j] = w, float(model.intercept_[0]) - mean @ w
    return Stack(coef[:n_models], coef[n_models:], bias)


def fold_into(first: LinearPredictor, regression: AuxiliaryRegression, stack: Stack) -> LinearPredictor:
    """One linear predictor computing ``stack`` over ``first``'s raw logits and ``regression``'s outputs."""
    weights = first.weights.astype(np.float64) @ stack.on_logits + regression.weights.astype(np.float64) @ stack.on_aux
    dense_weights = first.dense_weights @ stack.on_logits + regression.dense_weights @ stack.on_aux
    bias = first.bias @ stack.on_logits + regression.bias @ stack.on_aux + stack.bias
    n = len(first.models)
    return LinearPredictor(first.models, weights.astype(np.float32), dense_weights.astype(np.float32), bias,
                           np.ones(n), np.zeros(n))


def cross_fit_auxiliary(views: dict[int, Any], dense: np.ndarray, data: OutcomeSet, folds: np.ndarray,
                        logits: np.ndarray, targets: AuxiliaryTargets, basis: Projection, workers: Workers,
                        ) -> tuple[bool, np.ndarray, Stack, dict[str, float]]:
    """Whether the auxiliary targets help, the stack's logits and the stack.

    ``logits`` are the linear stage's out-of-fold logits, ``views`` the corpus as its folds saw it. Each inner
    training part rebuilds the targets from its own items and fits the regressions there, on ``basis``.
    The test is paired: the same stack with and without the auxiliary outputs, each cross-fitted over the inner
    folds, compared by Brier; a difference within one standard error is decided by the routing metric, which
    must rise by more than its bootstrap standard error to take the targets (on GSM8K the answer lengths leave
    Brier as it is but raise APGR). Cross-fitting any stack on out-of-fold logits costs Brier on small data,
    since each fold's logits have their own spread, so the stack is not compared with the in-sample Platt step.
    The returned logits are the stack fitted on all rows applied to them, as the Platt candidates' are.
    """
    predicted = np.zeros((len(data), basis.components.shape[1]))
    calls = []
    for k, xk in views.items():
        part = auxiliary_targets(data.subset(folds != k), like=targets)
        assert part is not None and part.names == targets.names
        calls.append((xk, dense, basis.apply(part.values), folds == k))
    for (_, _, _, test), values in zip(calls, workers.map(_held_out_regression, calls)):
        predicted[test] = values
    figures: dict[str, float] = {}
    errors, preds = {}, {}
    metric = routing_metric(data.scores, data.costs)
    for name, aux in (("without", predicted[:, :0]), ("with", predicted)):
        out = np.zeros_like(logits)
        for k in np.unique(folds):
            tr, te = folds != k, folds == k
            out[te] = fit_stack(logits[tr], aux[tr], data.scores[tr]).logits(logits[te], aux[te])
        preds[name] = sigmoid(out)
        errors[name] = ((preds[name] - data.scores) ** 2).mean(axis=1)
        figures[f"brier {name}"] = float(errors[name].mean())
        figures[f"{metric} {name}"] = routing_score(preds[name], data.scores, data.costs)[1]
    # As in ``train._choose``, a Brier difference within one standard error is a tie that the routing metric breaks;
    # but here the candidates are not alike: the tie goes to the simpler stack unless the routing metric is
    # higher with the targets by more than its own standard error. On GSM8K the answer lengths tie on Brier and
    # add +0.03 inner APGR; on one ARC fold they tied too and added 0.001 AIQ, noise that cost that fold's router.
    diff = errors["with"] - errors["without"]
    tied = abs(float(diff.mean())) <= standard_error(diff)
    if tied:
        gain = figures[f"{metric} with"] - figures[f"{metric} without"]
        se = bootstrap_se(preds["with"], preds["without"], data)
        figures[f"{metric} gain standard error"] = se
        helps = gain > se
    else:
        helps = float(diff.mean()) < 0
    stack = fit_stack(logits, predicted, data.scores)
    return helps, stack.logits(logits, predicted), stack, figures


def _held_out_regression(x: Any, dense: np.ndarray, targets: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Predictions on the ``test`` rows of the auxiliary regressions fitted on the others, whose ``targets``
    were built from those rows alone (one worker task)."""
    return fit_regression(x[~test], dense[~test], targets).predict_many(x[test], dense[test])
