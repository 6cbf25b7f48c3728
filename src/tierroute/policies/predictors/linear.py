"""Per-model logistic regression on hashed n-grams plus structure features.

Why linear: with a few thousand labelled prompts per model, an L2-regularised linear model over hashed
n-grams learns topic and difficulty cues (MMLU subjects, GSM8K step counts) about as well as anything we
tried, trains in seconds, and scores a prompt with one gather and one small dot product.

Fractional scores (e.g. 0.5 partial credit) are fitted exactly by splitting each item into a positive and a
negative copy weighted ``score`` and ``1 - score``. A per-model Platt step (``scale``, ``shift`` on the logit),
fitted on out-of-fold logits, keeps probabilities calibrated after regularisation shrinks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..kernels import load_kernels, scorer_predict
from .base import sigmoid


@dataclass(frozen=True)
class LinearPredictor:
    """``p_m = sigmoid(scale_m * (x . w_m + d . v_m + b_m) + shift_m)``."""

    models: tuple[str, ...]
    weights: np.ndarray  # (dim, n_models) float32, hashed-feature weights
    dense_weights: np.ndarray  # (n_dense, n_models) float32
    bias: np.ndarray  # (n_models,)
    scale: np.ndarray  # (n_models,) Platt slope on the logit
    shift: np.ndarray  # (n_models,) Platt intercept
    kind: str = "linear"
    _scorer: Any = field(init=False, repr=False, compare=False)  # the compiled predict (kernels); None: numpy

    def __post_init__(self) -> None:
        kernels = load_kernels()
        object.__setattr__(self, "_scorer", None if kernels is None else kernels.Scorer(*self.scorer_args()))

    def scorer_args(self) -> tuple[Any, ...]:
        """The compiled ``Scorer``'s arguments for this predictor: its arrays, no trees, blend 1."""
        return *self.native_arrays(), None, 1.0

    def native_arrays(self) -> tuple[np.ndarray, ...]:
        """(weights, dense_weights, bias, scale, shift) in the dtypes the compiled ``Scorer`` reads."""
        return (np.ascontiguousarray(self.weights, np.float32), np.ascontiguousarray(self.dense_weights, np.float32),
                *(np.ascontiguousarray(a, np.float64) for a in (self.bias, self.scale, self.shift)))

    def logits(self, idx: np.ndarray, vals: np.ndarray, dense: np.ndarray) -> np.ndarray:
        # take() gathers the prompt's rows several times faster than fancy indexing a 2-d array (same values).
        return vals @ self.weights.take(idx, axis=0) + dense @ self.dense_weights + self.bias

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from this stage's logits, through its Platt step."""
        return sigmoid(self.scale * logits + self.shift)

    def predict(self, idx: np.ndarray, vals: np.ndarray, dense: np.ndarray) -> np.ndarray:
        if self._scorer is not None:
            return scorer_predict(self._scorer, len(self.models), idx, vals, dense)
        return self.calibrated(self.logits(idx, vals, dense))

    def logits_many(self, x: Any, dense: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.weights) + dense @ self.dense_weights + self.bias

    def predict_many(self, x: Any, dense: np.ndarray) -> np.ndarray:
        return self.calibrated(self.logits_many(x, dense))

    def with_platt(self, scale: np.ndarray, shift: np.ndarray) -> LinearPredictor:
        return LinearPredictor(self.models, self.weights, self.dense_weights, self.bias,
                               np.asarray(scale, np.float64), np.asarray(shift, np.float64))

    def select(self, columns: Sequence[int]) -> LinearPredictor:
        """The same predictor for the models at ``columns`` only (in that order). Each model's prediction depends
        on its own column alone, so a gateway that maps three of an artifact's eleven models reads three."""
        cols = list(columns)
        return LinearPredictor(tuple(self.models[j] for j in cols), np.ascontiguousarray(self.weights[:, cols]),
                               np.ascontiguousarray(self.dense_weights[:, cols]), self.bias[cols], self.scale[cols],
                               self.shift[cols])

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        # float16 halves the artifact; weights of a regularised model lose nothing measurable at 3 digits.
        return ({"kind": self.kind, "models": list(self.models)},
                {"weights": self.weights.astype(np.float16), "dense_weights": self.dense_weights.astype(np.float32),
                 "bias": self.bias, "scale": self.scale, "shift": self.shift})

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> LinearPredictor:
        models = tuple(config["models"])
        w = np.asarray(arrays["weights"], dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != len(models):
            raise ValueError(f"linear predictor weights have shape {w.shape}, expected (dim, {len(models)})")
        return cls(models, w, np.asarray(arrays["dense_weights"], np.float32), np.asarray(arrays["bias"], np.float64),
                   np.asarray(arrays["scale"], np.float64), np.asarray(arrays["shift"], np.float64))


def design_matrix(x: Any, dense: np.ndarray) -> Any:
    """[hashed | dense] as one CSR matrix in canonical form (sorted, no duplicates).

    Built once per fit and shared by every model's regression: stacking per model, and letting scikit-learn's
    input checks sort each copy again, cost more than a third of training time with 11 models."""
    from scipy import sparse

    design = sparse.hstack([x, sparse.csr_matrix(dense)], format="csr")
    design.sum_duplicates()
    return design


def _fit_one(design: Any, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """One model's logistic regression on a ``design_matrix``, weighted for fractional scores."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    if np.all((y == 0) | (y == 1)):
        rows, labels, weight = design, y.astype(int), None
    else:
        rows = sparse.vstack([design, design], format="csr")
        labels = np.concatenate([np.ones(y.size, int), np.zeros(y.size, int)])
        weight = np.concatenate([y, 1.0 - y])
    if labels.min() == labels.max():  # a model always right (or wrong) here: predict its constant rate
        p = float(np.clip(labels.mean(), 1e-3, 1 - 1e-3))
        return np.zeros(design.shape[1]), float(np.log(p / (1 - p)))
    # The dual problem has one variable per row, the primal one per hashed bucket (65k at 2^16): with far more
    # buckets than prompts the dual solver reaches the same optimum 5-15x faster (MMLU: 0.9 s vs 6 s a fit).
    # liblinear shuffles its coordinates: a fixed seed makes a training run repeat exactly.
    model = LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=1000, random_state=0)
    model.fit(rows, labels, sample_weight=weight)
    return model.coef_[0], float(model.intercept_[0])


def fit_linear(x: Any, dense: np.ndarray, scores: np.ndarray, models: tuple[str, ...], *, c: float = 1.0) -> LinearPredictor:
    """Fit one logistic regression per model column of ``scores`` (identity Platt step).

    A NaN score is a missing one (logged traffic: only the model that answered was scored): each model is fitted
    on the rows where it has a score, and a model with none predicts 0.5."""
    w, v, b = fit_columns(x, dense, scores, c)
    return LinearPredictor(models, w, v, b, np.ones(len(models)), np.zeros(len(models)))


def fit_columns(x: Any, dense: np.ndarray, scores: np.ndarray, c: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fit_linear``'s arrays: hashed-feature weights (dim, n), dense weights (n_dense, n) and biases (n).

    The columns are fitted one after another: scikit-learn's liblinear draws from one process-wide random
    generator, so fits on concurrent threads would not repeat exactly (``evaluation.workers`` uses processes)."""
    dim = x.shape[1]
    n_models = scores.shape[1]
    design = design_matrix(x, dense)
    w = np.zeros((dim, n_models), np.float32)
    v = np.zeros((dense.shape[1], n_models), np.float32)
    b = np.zeros(n_models)
    for j in range(n_models):
        rows = np.isfinite(scores[:, j])
        if not rows.any():
            continue
        if rows.all():
            coef, intercept = _fit_one(design, scores[:, j], c)
        else:
            part = design[rows]
            part.sum_duplicates()
            coef, intercept = _fit_one(part, scores[rows, j], c)
        w[:, j], v[:, j], b[j] = coef[:dim], coef[dim:], intercept
    return w, v, b
