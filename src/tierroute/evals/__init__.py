"""Continuous evaluation (docs/continuous-evaluation.md): shadow sampling of answered requests, pluggable
judges, the quality guard, and per-route reports.

Modules: ``settings`` (the ``evals:`` section), ``sampler`` (which requests), ``shadow`` (the evaluator:
replay, judge, record), ``judges/`` (one judge per module), ``sequential`` (the always-valid test),
``guard`` (route states and steering), ``store`` (memory or Redis), ``report`` (per-route figures).
Only the settings are imported here, so ``tierroute.config`` can include them without a cycle.
"""

from .settings import EvalsSettings, QualityGuardSettings

__all__ = ["EvalsSettings", "QualityGuardSettings"]
