"""The optional compiled kernels (``_kernels.c``) behind the learned router's hot path, and their loader.

``pip install`` compiles ``_kernels.c`` when a C compiler and Python's headers are present (``hatch_build.py``);
without them the package installs as pure Python and every caller keeps its numpy implementation, which computes
the same features and predictions. Setting ``TIERROUTE_NATIVE=0`` in the environment turns the compiled path
off (to compare the two, or to rule it out when chasing a bug); it is read when a featurizer or predictor is
built, never per request.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

ENV_SWITCH = "TIERROUTE_NATIVE"


def load_kernels() -> ModuleType | None:
    """The compiled kernels module, or None when it was not built or ``TIERROUTE_NATIVE=0``."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        from . import _kernels  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _kernels


def scorer_predict(scorer: Any, n_models: int, idx: np.ndarray, vals: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Every model's probability for one featurised prompt, from a compiled ``_kernels.Scorer``."""
    out = np.empty(n_models)
    scorer.predict(idx, vals, dense, out)
    return out
