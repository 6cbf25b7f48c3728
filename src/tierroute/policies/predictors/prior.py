"""The untrained predictor: catalog quality priors bent by a prompt-difficulty heuristic.

With no outcome data, the best available evidence is (a) how strong each model is in general (the catalog's
``quality`` prior) and (b) how hard this prompt looks. Hard prompts widen the gap between strong and weak
models; easy prompts ("hi", "fix this typo") are answered well by nearly every model. So each model's
predicted error rate is its prior error scaled by ``exp(SPREAD * (difficulty - 0.5))``: at difficulty 0.5
the priors stand as they are; on easy prompts every error shrinks (0.70 -> 0.98 at difficulty 0) so the
cheap model wins; on hard ones weak models fall away fastest (0.95 -> 0.59, 0.70 -> 0.01 at difficulty 1).

The difficulty weights are hand-set. Fitting them on the public outcome data was measured
(``bench/experiment_default_difficulty.py``, ``docs/routing-quality.md`` "Default router"): fitted weights do no
better on a benchmark they were not fitted on, so the hand-set ones stay until a user trains on their own traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..featurizers import DENSE_NAMES
from .base import sigmoid

SPREAD = 5.0
# Used when a candidate has no ``quality`` in the catalog: a middling model.
UNKNOWN_PRIOR = 0.7
_DIFFICULTY_WEIGHTS: dict[str, float] = {
    "log_chars": 3.0,  # ~e^6 = 400 chars is neutral; long prompts carry more to get wrong
    "math_markers": 4.0,
    "code_markers": 3.0,
    "digit_share": 6.0,
    "questions": 1.0,
    "bias": -3.2,
}
_WEIGHT_INDEX: tuple[tuple[int, float], ...] = tuple((DENSE_NAMES.index(n), w) for n, w in _DIFFICULTY_WEIGHTS.items())


@dataclass(frozen=True)
class PriorPredictor:
    """Difficulty heuristic over the featurizer's dense vector; no per-model weights."""

    spread: float = SPREAD
    kind: str = "prior"

    @property
    def reads(self) -> frozenset[int]:
        """The indices into ``DENSE_NAMES`` that :meth:`difficulty` reads: a featurizer may skip the others."""
        return frozenset(i for i, _ in _WEIGHT_INDEX)

    def difficulty(self, dense: Sequence[float]) -> float:
        """Prompt difficulty in (0, 1), 0.5 for a typical few-hundred-character question.

        ``dense`` as plain floats (``HashingFeaturizer.dense_list``): a handful of products is cheaper than numpy calls.
        """
        z = 0.0
        for i, w in _WEIGHT_INDEX:
            z += w * dense[i]
        return 1.0 / (1.0 + math.exp(-min(max(z, -30.0), 30.0)))

    def difficulty_many(self, dense: np.ndarray) -> np.ndarray:
        w = np.zeros(len(DENSE_NAMES))
        for i, weight in _WEIGHT_INDEX:
            w[i] = weight
        return sigmoid(dense @ w)

    def predict_priors(self, priors: Sequence[float | None], difficulty: float) -> list[float]:
        bend = math.exp(self.spread * (difficulty - 0.5))
        return [min(max(1.0 - (1.0 - min(max(UNKNOWN_PRIOR if q is None else q, 0.0), 1.0)) * bend, 0.01), 1.0)
                for q in priors]
