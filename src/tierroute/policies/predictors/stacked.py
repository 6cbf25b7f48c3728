"""A second stage over the linear predictor: small boosted trees on (every model's logit, structure features).

Why: the linear stage scores each model from n-grams alone, additively. Whether a weak model's predicted
chance matters depends on the prompt's shape (a long numeric question in a subject the weak model is shaky on),
which is an interaction a linear model cannot express. Shallow trees over the first stage's out-of-fold logits
plus the dense structure features learn exactly those interactions from a few dozen inputs, so they need far
less data than the n-gram stage. Training decides by inner cross-validation whether the second stage earns its
place (on MMLU it does; on 1,300 GSM8K items it does not), see ``docs/routing-quality.md``.

Inference is numpy-only: every tree is stored as flat arrays (feature, threshold, left, right, value) padded to
one node count, leaves point at themselves, so ``depth`` vectorised steps walk all trees of a model at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..kernels import load_kernels, scorer_predict
from .base import sigmoid
from .linear import LinearPredictor


@dataclass(frozen=True)
class TreeEnsemble:
    """Additive trees per model: ``p_m = sigmoid(baseline_m + sum_t value_m[t, leaf_t(f)])``.

    Arrays are ``(n_models, n_trees, n_nodes)``; trees shorter than ``n_trees`` are padded with a single zero
    leaf. ``x[feature] <= threshold`` goes left.
    """

    feature: np.ndarray  # int32
    threshold: np.ndarray  # float64
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    value: np.ndarray  # float64
    baseline: np.ndarray  # (n_models,)
    depth: int
    # For one prediction, the same trees flattened: node ids global over all trees (tree i's nodes start at
    # i * n_nodes) and children pointing at global ids, so a level is a few 1-d gathers rather than 3-d fancy
    # indexing; the first level's nodes (the roots) are the same for every prompt, so its gathers are done here.
    _flat: tuple[np.ndarray, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        m, t, n = self.feature.shape
        first = (np.arange(m * t, dtype=np.intp) * n).reshape(m, t, 1)
        feature, threshold, value = (a.ravel() for a in (self.feature.astype(np.intp), self.threshold, self.value))
        left, right = ((a + first).ravel() for a in (self.left.astype(np.intp), self.right.astype(np.intp)))
        roots = first.ravel()
        object.__setattr__(self, "_flat", (feature, threshold, left, right, value, roots, feature.take(roots),
                                           threshold.take(roots), left.take(roots), right.take(roots)))

    def native_arrays(self) -> tuple[Any, ...]:
        """(feature, threshold, left, right, value, baseline, depth) in the dtypes the compiled ``Scorer`` reads."""
        ints, floats = (self.feature, self.left, self.right), (self.threshold, self.value, self.baseline)
        feature, left, right = (np.ascontiguousarray(a, np.int32) for a in ints)
        threshold, value, baseline = (np.ascontiguousarray(a, np.float64) for a in floats)
        return feature, threshold, left, right, value, baseline, self.depth

    def raw(self, f: np.ndarray) -> np.ndarray:
        """Raw scores (logits) for one feature vector ``f``: shape ``(n_models,)``."""
        feature, threshold, left, right, value, node, root_feature, root_threshold, root_left, root_right = self._flat
        if self.depth:
            node = np.where(f.take(root_feature) <= root_threshold, root_left, root_right)
        for _ in range(self.depth - 1):
            go_left = f.take(feature.take(node)) <= threshold.take(node)
            node = np.where(go_left, left.take(node), right.take(node))
        # (n_models, n_trees) in the 3-d layout's order, so the sum adds the same numbers in the same order
        return self.baseline + value.take(node).reshape(self.feature.shape[:2]).sum(axis=1)

    def raw_many(self, f: np.ndarray) -> np.ndarray:
        """Batch form: ``f`` is ``(n, n_features)``, returns ``(n, n_models)``."""
        m, t, _ = self.feature.shape
        out = np.tile(self.baseline, (f.shape[0], 1)).astype(np.float64)
        items = np.arange(f.shape[0])
        for j in range(m):
            for k in range(t):
                node = np.zeros(f.shape[0], dtype=np.int32)
                for _ in range(self.depth):
                    go_left = f[items, self.feature[j, k, node]] <= self.threshold[j, k, node]
                    node = np.where(go_left, self.left[j, k, node], self.right[j, k, node])
                out[:, j] += self.value[j, k, node]
        return out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}feature": self.feature.astype(np.int16), f"{prefix}threshold": self.threshold.astype(np.float32),
                f"{prefix}left": self.left.astype(np.int16), f"{prefix}right": self.right.astype(np.int16),
                f"{prefix}value": self.value.astype(np.float32), f"{prefix}baseline": self.baseline.astype(np.float64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str, depth: int) -> TreeEnsemble:
        feature = np.asarray(arrays[f"{prefix}feature"], np.int32)
        shape = feature.shape
        parts = [np.asarray(arrays[f"{prefix}{k}"]) for k in ("threshold", "left", "right", "value")]
        if feature.ndim != 3 or any(p.shape != shape for p in parts):
            raise ValueError(f"tree arrays must all have one 3-d shape, got {shape} and {[p.shape for p in parts]}")
        return cls(feature, parts[0].astype(np.float64), parts[1].astype(np.int32), parts[2].astype(np.int32),
                   parts[3].astype(np.float64), np.asarray(arrays[f"{prefix}baseline"], np.float64), int(depth))


@dataclass(frozen=True)
class StackedPredictor:
    """Linear stage logits (all models) + dense features -> per-model boosted trees.

    With ``blend`` below 1 the output is ``blend * trees + (1 - blend) * first`` (the first stage through its
    own Platt step): an average of the two stages, which training keeps when it beats both out of fold.
    """

    first: LinearPredictor
    trees: TreeEnsemble
    blend: float = 1.0
    kind: str = "stacked"
    _scorer: Any = field(init=False, repr=False, compare=False)  # the compiled predict (kernels); None: numpy

    def __post_init__(self) -> None:
        kernels = load_kernels()
        object.__setattr__(self, "_scorer", None if kernels is None else kernels.Scorer(*self.scorer_args()))

    def scorer_args(self) -> tuple[Any, ...]:
        """The compiled ``Scorer``'s arguments for this predictor: the first stage's arrays, the trees, the blend."""
        return *self.first.native_arrays(), self.trees.native_arrays(), float(self.blend)

    @property
    def models(self) -> tuple[str, ...]:
        return self.first.models

    def predict(self, idx: np.ndarray, vals: np.ndarray, dense: np.ndarray) -> np.ndarray:
        if self._scorer is not None:
            return scorer_predict(self._scorer, len(self.models), idx, vals, dense)
        logits = self.first.logits(idx, vals, dense)
        return self._blended(sigmoid(self.trees.raw(np.concatenate((logits, dense)))), logits)

    def predict_many(self, x: Any, dense: np.ndarray) -> np.ndarray:
        logits = self.first.logits_many(x, dense)
        return self._blended(sigmoid(self.trees.raw_many(stage_two_inputs(logits, dense))), logits)

    def _blended(self, trees: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The trees' probabilities, averaged with the first stage's by ``blend`` when it is below 1."""
        if self.blend == 1.0:
            return trees
        return self.blend * trees + (1.0 - self.blend) * self.first.calibrated(logits)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        _, first_arrays = self.first.to_arrays()
        return ({"kind": self.kind, "models": list(self.models), "depth": self.trees.depth, "blend": self.blend},
                {**{f"l.{k}": v for k, v in first_arrays.items()}, **self.trees.arrays("t.")})

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> StackedPredictor:
        first = LinearPredictor.from_arrays({"models": config["models"]},
                                            {k[2:]: v for k, v in arrays.items() if k.startswith("l.")})
        trees = TreeEnsemble.from_arrays(arrays, "t.", int(config["depth"]))
        if trees.feature.shape[0] != len(first.models):
            raise ValueError(f"stacked predictor has trees for {trees.feature.shape[0]} models, expected {len(first.models)}")
        blend = float(config.get("blend", 1.0))  # artifacts written before blending: trees only
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"stacked predictor blend must be in [0, 1], got {blend}")
        return cls(first, trees, blend)


def stage_two_inputs(logits: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """The second stage's input rows: every model's first-stage logit, then the structure features."""
    return np.hstack([logits, dense]).astype(np.float64)


# -- training (scikit-learn, lazily imported: the ``train`` extra) ---------------------------------------------
TREE_DEPTH = 3
TREE_PARAMS: dict[str, Any] = {"learning_rate": 0.05, "max_iter": 150, "max_depth": TREE_DEPTH,
                               "min_samples_leaf": 50, "l2_regularization": 1.0, "random_state": 0}


def fit_trees(f: np.ndarray, scores: np.ndarray) -> TreeEnsemble:
    """One gradient-boosted classifier per model column of ``scores`` (fractional scores: weighted copies)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    per_model: list[list[np.ndarray]] = []
    baselines = []
    with threadpool_limits(1):  # shared machines: one core, as everywhere else in training
        for j in range(scores.shape[1]):
            y = scores[:, j]
            rows, labels, weight = f, (y >= 0.5).astype(int), None
            if not np.all((y == 0) | (y == 1)):
                rows = np.vstack([f, f])
                labels = np.concatenate([np.ones(y.size, int), np.zeros(y.size, int)])
                weight = np.concatenate([y, 1.0 - y])
            if labels.min() == labels.max():
                p = float(np.clip(labels.mean(), 1e-3, 1 - 1e-3))
                baselines.append(np.log(p / (1 - p)))
                per_model.append([])
                continue
            model = HistGradientBoostingClassifier(**TREE_PARAMS).fit(rows, labels, sample_weight=weight)
            baselines.append(float(np.ravel(model._baseline_prediction)[0]))
            per_model.append([predictor[0].nodes for predictor in model._predictors])
    n_trees = max(1, max(len(t) for t in per_model))
    n_nodes = max([1] + [len(nodes) for trees in per_model for nodes in trees])
    shape = (scores.shape[1], n_trees, n_nodes)
    feature, left, right = np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    threshold, value = np.zeros(shape), np.zeros(shape)
    for j, trees in enumerate(per_model):
        for k, nodes in enumerate(trees):
            n = len(nodes)
            leaf = nodes["is_leaf"].astype(bool)
            own = np.arange(n)
            feature[j, k, :n] = np.where(leaf, 0, nodes["feature_idx"])
            threshold[j, k, :n] = np.where(leaf, np.inf, nodes["num_threshold"])
            left[j, k, :n] = np.where(leaf, own, nodes["left"])
            right[j, k, :n] = np.where(leaf, own, nodes["right"])
            value[j, k, :n] = np.where(leaf, nodes["value"], 0.0)
    return TreeEnsemble(feature, threshold, left, right, value, np.array(baselines), TREE_DEPTH)
