"""How familiar a prompt's n-grams are to the training prompts', and how far to trust them for it.

A router trained on one kind of traffic (MMLU's subjects) and shown another (GSM8K's word problems) still finds
weights for the new prompt's n-grams: topic words and character patterns it learned for other questions. Those
weights rank the unfamiliar prompts by accidents of vocabulary, while the structure features (length, numbers,
maths markers) keep their meaning across domains. Measured on the public data: a router trained on MMLU and
judged on GSM8K ranks better with its n-gram part dropped than with it (docs/research/routing-quality-log.md,
"Transfer").

So the router keeps a few prototypes of its training prompts (spherical k-means on their n-gram vectors
before any idf weighting, each prototype cut to its largest entries) and, for each prompt, the cosine similarity to
the nearest one. ``near`` and ``far`` are quantiles of that similarity for held-out training prompts: at or
above ``near`` the prompt is as familiar as most training prompts and the router is used as trained; at or
below ``far`` (rarer than one held-out training prompt in a hundred) the n-gram part is ignored and only the
structure features speak; in between the n-gram part is scaled linearly. ``predictors.guarded`` applies it.

Cost at decision time: one gather of the prompt's buckets from a ``(dim, k)`` table and a small dot product,
what a linear predictor over ``k`` models costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Prototypes kept, and the entries kept of each (the rest are zero): 32 x 1,024 values, about 100 KB stored.
PROTOTYPES = 32
KEEP = 1024
KMEANS_ITERATIONS = 6
# Quantiles of held-out training prompts' similarity: full trust above NEAR, none below FAR.
NEAR_QUANTILE = 0.10
FAR_QUANTILE = 0.01


@dataclass(frozen=True)
class Familiarity:
    """Prototypes of the training prompts' feature vectors, and the similarities at which trust starts to fall
    (``near``) and reaches zero (``far``)."""

    dim: int
    indices: np.ndarray  # (k, keep) int32: each prototype's buckets
    values: np.ndarray  # (k, keep) float32: its values there (each prototype has unit norm)
    near: float
    far: float
    # The featurizer's idf weights when it has them: prompts arrive idf-weighted and are compared with the
    # prototypes unweighted (log counts, unit norm). Not stored with the prototypes: the featurizer carries them
    # (``RouterArtifact`` binds them).
    idf: np.ndarray | None = field(default=None, repr=False, compare=False)
    _table: np.ndarray = field(init=False, repr=False, compare=False)  # (dim, k) float32, built once
    _unweight: np.ndarray | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.indices.shape != self.values.shape or self.indices.ndim != 2:
            raise ValueError(f"familiarity prototypes: indices {self.indices.shape} and values {self.values.shape} "
                             "must be one 2-d shape")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= self.dim):
            raise ValueError(f"familiarity prototypes index buckets outside 0..{self.dim - 1}")
        if not self.far < self.near:
            raise ValueError(f"familiarity: far ({self.far}) must be below near ({self.near})")
        object.__setattr__(self, "_table", _table(self.indices, self.values, self.dim))
        if self.idf is not None and self.idf.shape != (self.dim,):
            raise ValueError(f"familiarity: idf has shape {self.idf.shape}, the prototypes span {self.dim} buckets")
        object.__setattr__(self, "_unweight", None if self.idf is None
                           else (1.0 / np.where(self.idf > 0, self.idf, 1.0)).astype(np.float32))

    def with_idf(self, idf: np.ndarray | None) -> Familiarity:
        """The same prototypes, for prompts featurised with ``idf`` weights."""
        return Familiarity(self.dim, self.indices, self.values, self.near, self.far, idf)

    @property
    def prototypes(self) -> int:
        return int(self.indices.shape[0])

    def similarity(self, idx: np.ndarray, vals: np.ndarray) -> float:
        """Cosine similarity of one featurised prompt to its nearest prototype."""
        if idx.size == 0:
            return 0.0
        if self._unweight is not None:
            vals = vals * self._unweight.take(idx)
        norm = float(np.sqrt(vals @ vals))
        return 0.0 if norm == 0.0 else float((vals @ self._table.take(idx, axis=0)).max()) / norm

    def similarity_many(self, x: Any) -> np.ndarray:
        """The same for every row of a CSR matrix."""
        from scipy import sparse

        if self._unweight is not None:
            x = x @ sparse.diags(self._unweight)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        return np.asarray(x @ self._table).max(axis=1) / np.where(norms == 0, 1.0, norms)

    def trust(self, similarity: float) -> float:
        """1 at or above ``near``, 0 at or below ``far``, linear between."""
        return min(max((similarity - self.far) / (self.near - self.far), 0.0), 1.0)

    def trust_many(self, similarity: np.ndarray) -> np.ndarray:
        return np.clip((similarity - self.far) / (self.near - self.far), 0.0, 1.0)

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "near": self.near, "far": self.far}

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}indices": self.indices.astype(np.int32), f"{prefix}values": self.values.astype(np.float16)}

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str) -> Familiarity:
        return cls(int(config["dim"]), np.asarray(arrays[f"{prefix}indices"], np.int32),
                   np.asarray(arrays[f"{prefix}values"], np.float32), float(config["near"]), float(config["far"]))


# -- training (scipy; the ``train`` extra) ----------------------------------------------------------------------


def prototypes(x: Any, k: int = PROTOTYPES, keep: int = KEEP, iterations: int = KMEANS_ITERATIONS,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means on the unit rows of CSR ``x``, each centre cut to its ``keep`` largest entries and
    re-normalised every round: ``(indices, values)``, each ``(k', keep')`` with ``k' <= k`` (fewer rows than
    ``k``: one prototype per row). Seeded, so training repeats exactly.

    Each cluster's rows are summed in one sparse product (a one-hot matrix times ``x``)."""
    from scipy import sparse

    n, dim = x.shape
    k, keep = min(k, n), min(keep, dim)
    rng = np.random.default_rng(seed)
    indices, values = _cut(x[np.sort(rng.choice(n, size=k, replace=False))].toarray(), keep)
    for _ in range(iterations):
        table = _table(indices, values, dim)
        assign = np.asarray(x @ table).argmax(axis=1)
        members = sparse.csr_matrix((np.ones(n, np.float32), (assign, np.arange(n))), shape=(k, n))
        sums = np.asarray((members @ x).toarray())
        empty = np.bincount(assign, minlength=k) == 0  # an empty cluster keeps its centre
        sums[empty] = table.T[empty]
        indices, values = _cut(sums, keep)
    return indices, values


def _table(indices: np.ndarray, values: np.ndarray, dim: int) -> np.ndarray:
    """The prototypes as a dense ``(dim, k)`` matrix, one column each (what ``Familiarity`` looks prompts up in)."""
    table = np.zeros((dim, indices.shape[0]), np.float32)
    for k in range(indices.shape[0]):
        table[indices[k], k] = values[k]
    return table


def _cut(centres: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``keep`` largest entries by magnitude: sorted bucket indices, and values of unit norm."""
    if keep < centres.shape[1]:
        top = np.argpartition(-np.abs(centres), keep - 1, axis=1)[:, :keep]
    else:
        top = np.tile(np.arange(centres.shape[1]), (centres.shape[0], 1))
    indices = np.sort(top, axis=1).astype(np.int32)
    values = np.take_along_axis(centres, indices, axis=1).astype(np.float32)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return indices, values / np.where(norms == 0, 1.0, norms)


def fit_familiarity(x: Any, folds: np.ndarray, near_quantile: float = NEAR_QUANTILE,
                    far_quantile: float = FAR_QUANTILE) -> Familiarity:
    """Prototypes of all of ``x``; ``near`` and ``far`` from the similarity of each inner fold's prompts to
    prototypes of the other folds (held out, as an unseen in-domain prompt would be)."""
    held = np.zeros(x.shape[0])
    for k in np.unique(folds):
        test = folds == k
        if test.all():
            continue
        indices, values = prototypes(x[~test])
        held[test] = Familiarity(x.shape[1], indices, values, 1.0, 0.0).similarity_many(x[test])
    near, far = (float(v) for v in np.quantile(held, [near_quantile, far_quantile]))
    if not far < near:  # identical prompts: any spread will do, trust stays 1 for them
        far = near - 1e-6
    indices, values = prototypes(x)
    # Stored as float16: round now, so the router evaluated after training is the one the gateway loads.
    return Familiarity(x.shape[1], indices, values.astype(np.float16).astype(np.float32), near, far)
