"""Prometheus series of continuous evaluation, on the router's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class EvalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.samples = Counter("tierroute_eval_samples", "Requests sampled for evaluation, by route and fate "
                               "(queued, dropped: the queue was full)", ("route", "fate"), registry=r)
        self.judgments = Counter("tierroute_eval_judgments", "Judgments, by route, judge and verdict "
                                 "(win/tie/loss for the routed arm)", ("route", "judge", "verdict"), registry=r)
        self.skipped = Counter("tierroute_eval_skipped", "Samples not judged, by reason", ("reason",), registry=r)
        self.spend = Counter("tierroute_eval_cost_usd", "Evaluation spend (reference and judge calls)",
                             ("kind",), registry=r)
        self.degraded = Gauge("tierroute_quality_guard_degraded", "1 while the quality guard holds a route "
                              "degraded", ("route",), registry=r)
        self.transitions = Counter("tierroute_quality_guard_transitions", "Quality guard decisions, by route and "
                                   "new state", ("route", "state"), registry=r)
