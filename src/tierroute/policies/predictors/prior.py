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
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..featurizers import DENSE_NAMES
from .base import sigmoid

SPREAD = 5.0
# Used when a candidate reaches the policy with no ``quality`` at all (the catalog estimates one for every chat
# model it builds, ``priors.py``): low, not middling, so an unknown free model does not win on price alone.
UNKNOWN_PRIOR = 0.4
# Models whose prior is only an estimate (``ModelSpec.quality_estimated``) are chosen first only for prompts
# that look easy: difficulty at most this, and none of the words of a demanding task (``_DEMANDING``). Otherwise
# they rank after every model with a published prior (kept as fallbacks). Measured: chit-chat, greetings and
# one-line rewrites score 0.05-0.12; every one of the 1,307 GSM8K problems of the public outcome data scores
# 0.16 or more; a one-line "Prove that ..." scores 0.13, which is what the word list is for.
# tests/policies/test_untrained_defaults.py checks both sides.
EASY_DIFFICULTY = 0.15
_DEMANDING = re.compile(
    r"\b(?:prove|proof|derive|theorem|lemma|integral|equation|solve|calculate|compute|algorithm|implement|"
    r"debug|refactor|optimi[sz]e|analy[sz]e|step[- ]by[- ]step|explain why|complexity|function|code)\b",
    re.IGNORECASE)
# The predicted quality of a model kept off a hard prompt: below anything a real prediction gives, so every
# objective ranks it last.
KEPT_OFF = -1.0
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
    easy_difficulty: float = EASY_DIFFICULTY
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

    def looks_easy(self, text: str, difficulty: float) -> bool:
        return difficulty <= self.easy_difficulty and _DEMANDING.search(text) is None

    def keep_off_hard(self, quality: list[float], estimated: Sequence[bool], text: str, difficulty: float) -> bool:
        """Rank estimated-prior models last on a prompt that does not look easy, when some candidate has a
        published prior to take it. Changes ``quality`` in place; True when it did. Costs nothing unless a
        candidate's prior is estimated (and the word search runs only on short, easy-scoring prompts)."""
        if not any(estimated) or all(estimated) or self.looks_easy(text, difficulty):
            return False
        for i, flag in enumerate(estimated):
            if flag:
                quality[i] = KEPT_OFF
        return True
