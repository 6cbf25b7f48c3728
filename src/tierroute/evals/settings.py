"""``evals:`` settings: shadow sampling, judges, the evaluation budget and the quality guard.

Pydantic only (no router imports), so ``config.py`` can include it without an import cycle.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SAMPLE_RATE = 0.02


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualityGuardSettings(_Frozen):
    """The per-route sequential non-inferiority test of the routed (cheap) arm against the reference."""

    action: Literal["off", "alert", "shift"] = Field(
        default="alert", description="when a loss of quality is established: alert (record, log and count it) or "
                                     "shift (send that route's traffic to the reference until it recovers); off: "
                                     "judge without testing")
    margin: float = Field(default=0.1, ge=0.0, lt=1.0, description="tolerated mean of loss minus win "
                          "(judged against the reference, each in {-1, 0, 1}); a route is degraded when the mean "
                          "is established above it")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="confidence of each decision; the "
                              "chance of a false alarm on a route that holds, over any length of monitoring, is "
                              "at most 1 - confidence")
    min_judgments: int = Field(default=10, ge=1, description="judgments a route needs before the guard may "
                               "change its state (both ways)")
    refresh_seconds: float = Field(default=1.0, gt=0, description="how often a replica reads the routes' guard "
                                   "states from the shared store (redis), so all replicas act together")


class EvalsSettings(_Frozen):
    """Continuous evaluation (docs/continuous-evaluation.md). Off by default: it spends money."""

    enabled: bool = Field(default=False, description="replay a share of answered, routed requests to a "
                          "reference model off the request path and judge the pair")
    sample_rate: float = Field(default=DEFAULT_SAMPLE_RATE, ge=0.0, le=1.0, description="share of answered "
                               "routed requests sampled, per route")
    route_rates: dict[str, float] = Field(default_factory=dict, description="sample_rate for particular routes, "
                                          "keyed by route (e.g. 'tier:general/gpt-4o-mini', 'intent:code/...'); "
                                          "see `tierroute evals`")
    max_samples_per_minute: int = Field(default=60, ge=0, description="samples taken per minute, per process")
    max_samples_per_hour: int = Field(default=1000, ge=0, description="samples taken per hour, per process")
    queue_size: int = Field(default=256, ge=1, description="samples waiting to be judged; a full queue drops "
                            "(and counts) new samples, never blocks a request")
    concurrency: int = Field(default=2, ge=1, le=64, description="samples judged at once, per process")
    reference_model: str | None = Field(default=None, description="the reference arm (default: the strongest "
                                        "model among the request's candidates)")
    judge_model: str | None = Field(default=None, description="the model that judges pairs (default: the "
                                    "strongest chat model in the catalog)")
    max_usd_per_day: float = Field(default=5.0, ge=0.0, description="evaluation spend (reference and judge "
                                   "calls) per UTC day, across replicas with a redis store; never charged to "
                                   "callers' budgets. Reached: samples are skipped and counted")
    timeout_seconds: float = Field(default=60.0, gt=0, description="limit for each reference or judge call")
    max_answer_chars: int = Field(default=8000, ge=100, description="answers longer than this are cut before "
                                  "judging (the judge is told)")
    exclude_callers: list[str] = Field(default_factory=list, description="callers (key names) never sampled")
    exclude_tags: list[str] = Field(default_factory=list, description="requests with any of these tags are "
                                    "never sampled")
    store_prompts: bool = Field(default=False, description="keep the prompt and both answers with each "
                                "judgment in the ledger (for `tierroute export`); otherwise they live only in "
                                "memory until judged")
    rubric: str = Field(default="correctness, completeness, and following the user's instructions",
                        description="what the LLM judge compares the answers on")
    guard: QualityGuardSettings = Field(default_factory=QualityGuardSettings, description="the quality guard")
