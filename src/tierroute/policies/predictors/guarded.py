"""A trained predictor that trusts its n-gram part only as far as the prompt resembles the training prompts.

``policies.familiarity`` says how familiar a prompt is (``trust`` in [0, 1]). The n-gram part of every
first-stage logit is linear in the prompt's hashed values, so scaling those values by ``trust`` scales that part
and leaves the structure features and biases as trained: a familiar prompt (trust 1, nine in ten held-out
training prompts) gets exactly the inner predictor's prediction, an unfamiliar one (trust 0) the prediction of
its structure features alone. The second stage's trees read the scaled first-stage logits the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..familiarity import Familiarity
from .linear import LinearPredictor
from .stacked import StackedPredictor


@dataclass(frozen=True)
class GuardedPredictor:
    """``inner``'s prediction with the prompt's hashed values scaled by ``familiarity.trust``."""

    inner: LinearPredictor | StackedPredictor
    familiarity: Familiarity
    kind: str = "guarded"

    @property
    def models(self) -> tuple[str, ...]:
        return self.inner.models

    def trust(self, idx: np.ndarray, vals: np.ndarray) -> float:
        return self.familiarity.trust(self.familiarity.similarity(idx, vals))

    def trust_many(self, x: Any) -> np.ndarray:
        return self.familiarity.trust_many(self.familiarity.similarity_many(x))

    def predict(self, idx: np.ndarray, vals: np.ndarray, dense: np.ndarray) -> np.ndarray:
        trust = self.trust(idx, vals)
        return self.inner.predict(idx, vals if trust >= 1.0 else vals * trust, dense)

    def predict_many(self, x: Any, dense: np.ndarray) -> np.ndarray:
        from scipy import sparse

        return self.inner.predict_many(sparse.diags(self.trust_many(x).astype(np.float32)) @ x, dense)

    def with_idf(self, idf: np.ndarray | None) -> GuardedPredictor:
        """The same predictor for prompts featurised with ``idf`` weights (``Familiarity.with_idf``)."""
        return GuardedPredictor(self.inner, self.familiarity.with_idf(idf))

    def select(self, columns: Sequence[int]) -> GuardedPredictor:
        """Only the models at ``columns`` (a linear inner predictor; trees read every model's logit)."""
        if not isinstance(self.inner, LinearPredictor):
            return self
        return GuardedPredictor(self.inner.select(columns), self.familiarity)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        config, arrays = self.inner.to_arrays()
        return ({"kind": self.kind, "models": list(self.models), "inner": config,
                 "familiarity": self.familiarity.config()},
                {**{f"i.{k}": v for k, v in arrays.items()}, **self.familiarity.arrays("g.")})

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> GuardedPredictor:
        inner_config = config["inner"]
        inner_arrays = {k[2:]: v for k, v in arrays.items() if k.startswith("i.")}
        inner: LinearPredictor | StackedPredictor
        if inner_config.get("kind") == "linear":
            inner = LinearPredictor.from_arrays(inner_config, inner_arrays)
        elif inner_config.get("kind") == "stacked":
            inner = StackedPredictor.from_arrays(inner_config, inner_arrays)
        else:
            raise ValueError(f"guarded predictor wraps an unknown kind {inner_config.get('kind')!r}")
        familiarity = Familiarity.from_arrays(config["familiarity"], arrays, "g.")
        first = inner.first if isinstance(inner, StackedPredictor) else inner
        if familiarity.dim != first.weights.shape[0]:
            raise ValueError(f"familiarity prototypes span {familiarity.dim} buckets, the predictor another number")
        return cls(inner, familiarity)
