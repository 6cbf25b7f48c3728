"""Quality predictors: per prompt, each model's expected score in [0, 1].

Inference is numpy-only over the featurizer's sparse output; training (``fit_*`` functions) imports
scikit-learn lazily, so serving a trained router never needs the ``train`` extra.
"""

from __future__ import annotations

from .base import QualityPredictor, predictor_from_arrays
from .guarded import GuardedPredictor
from .linear import LinearPredictor
from .prior import PriorPredictor
from .stacked import StackedPredictor

__all__ = ["GuardedPredictor", "LinearPredictor", "PriorPredictor", "QualityPredictor", "StackedPredictor", "predictor_from_arrays"]
