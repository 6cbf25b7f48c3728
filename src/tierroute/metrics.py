"""Prometheus metrics, one registry per Router (no process-global collectors)."""

from __future__ import annotations

from typing import Any

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
        self.suspect = Counter("tierroute_suspect_usage", "Attempts whose reported usage was clamped, by model",
                               ("model",), registry=r)
        # Label children, built on first use: ``labels()`` validates and locks on every call, which showed
        # up at ~3% of the gateway's CPU when called seven times per request.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- per-request updates (the router's only way in) ----------------------------------------------------
    def attempt(self, deployment: str, outcome: str) -> None:
        self._child(self.attempts, deployment, outcome).inc()

    def answered(self, model: str, outcome: str, *, seconds: float, overhead_seconds: float | None) -> None:
        self._child(self.requests, model, outcome).inc()
        self._child(self.latency, model).observe(seconds)
        if overhead_seconds is not None:
            self.overhead.observe(overhead_seconds)

    def spent(self, model: str, *, cost_usd: float, prompt_tokens: int, completion_tokens: int) -> None:
        self._child(self.cost, model).inc(cost_usd)
        self._child(self.tokens, model, "prompt").inc(prompt_tokens)
        self._child(self.tokens, model, "completion").inc(completion_tokens)

    def suspect_usage(self, model: str) -> None:
        self._child(self.suspect, model).inc()

    def refused(self, code: str) -> None:
        self._child(self.rejected, code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
