"""The predictor interface and the one place that rebuilds a predictor from stored arrays."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class QualityPredictor(Protocol):
    """Predicts each of ``models``' expected score for one featurised prompt."""

    kind: str
    models: tuple[str, ...]

    def predict(self, idx: np.ndarray, vals: np.ndarray, dense: np.ndarray) -> np.ndarray:
        """Expected score per model, shape ``(len(models),)``, each in [0, 1]."""
        ...

    def predict_many(self, x: Any, dense: np.ndarray) -> np.ndarray:
        """Batch form for evaluation: ``x`` a CSR matrix, returns ``(n, len(models))``."""
        ...

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able config and named arrays: what an artifact stores (never pickle)."""
        ...


def predictor_from_arrays(config: dict[str, Any], arrays: dict[str, np.ndarray]) -> QualityPredictor:
    """Rebuild a stored predictor; unknown kinds fail loudly rather than guessing."""
    kind = config.get("kind")
    if kind == "linear":
        from .linear import LinearPredictor

        return LinearPredictor.from_arrays(config, arrays)
    if kind == "stacked":
        from .stacked import StackedPredictor

        return StackedPredictor.from_arrays(config, arrays)
    if kind == "guarded":
        from .guarded import GuardedPredictor

        return GuardedPredictor.from_arrays(config, arrays)
    raise ValueError(f"unknown predictor kind {kind!r}")


def sigmoid(z: np.ndarray) -> np.ndarray:
    # maximum/minimum rather than np.clip: the same values (NaN included), without clip's Python-level wrapper,
    # which costs more than the arithmetic for the few models of one live prediction.
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -30.0), 30.0)))
