"""Prometheus metrics, one registry per Router (no process-global collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("tierroute_requests", "Requests answered, by chosen model and outcome",
                                ("model", "status"), registry=r)
        self.attempts = Counter("tierroute_upstream_attempts", "Upstream attempts, by deployment and outcome",
                                ("deployment", "outcome"), registry=r)
        self.cost = Counter("tierroute_cost_usd", "Spend in USD, by model", ("model",), registry=r)
        self.tokens = Counter("tierroute_tokens", "Tokens, by model and kind", ("model", "kind"), registry=r)
        self.latency = Histogram("tierroute_request_seconds", "End-to-end request latency", ("model",),
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram("tierroute_overhead_seconds", "Time spent in the router itself",
                                  buckets=OVERHEAD_BUCKETS, registry=r)
        self.rejected = Counter("tierroute_rejected", "Requests refused before dispatch, by error code",
                                ("code",), registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
