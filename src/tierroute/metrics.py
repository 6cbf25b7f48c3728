"""Prometheus metrics, one registry per Router (no process-global collectors)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BREAKER_STATES = ("closed", "open", "half_open", "cooling")

# Read at scrape time (never per request): (deployment, breaker state) and
# (scope, value, unit, window, remaining) for each budget this replica holds a cached level for.
BreakerStates = Callable[[], Iterable[tuple[str, str]]]
BudgetLevels = Callable[[], Iterable[tuple[str, str, str, str, float]]]


class _StateCollector:
    """Gauges of state the router already keeps, computed when Prometheus scrapes."""

    def __init__(self, breakers: BreakerStates, budgets: BudgetLevels) -> None:
        self._breakers = breakers
        self._budgets = budgets

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration

    def collect(self) -> Iterator[Metric]:
        breaker = GaugeMetricFamily("tierroute_breaker_state", "1 for each deployment's current breaker state",
                                    labels=("deployment", "state"))
        for deployment, state in self._breakers():
            for name in BREAKER_STATES:
                breaker.add_metric((deployment, name), 1.0 if name == state else 0.0)
        yield breaker
        budget = GaugeMetricFamily("tierroute_budget_remaining",
                                   "What a budget has left this window (USD or tokens), from the levels the limits "
                                   "guard last read (at most limits.pressure_refresh_seconds old)",
                                   labels=("scope", "value", "unit", "window"))
        for scope, value, unit, window, remaining in self._budgets():
            budget.add_metric((scope, value, unit, window), remaining)
        yield budget


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
        self.upstream_latency = Histogram("tierroute_upstream_seconds", "Upstream attempt latency, by deployment",
                                          ("deployment",), buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("tierroute_upstream_ttft_seconds",
                              "Time to first token of streamed answers, by deployment", ("deployment",),
                              buckets=TTFT_BUCKETS, registry=r)
        self.retries = Counter("tierroute_retries", "Attempts that retried the model of the attempt before, by deployment",
                               ("deployment",), registry=r)
        self.fallbacks = Counter("tierroute_fallbacks", "Attempts that fell back to another model",
                                 ("from_model", "to_model"), registry=r)
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

    def upstream(self, deployment: str, *, seconds: float, ttft_seconds: float | None) -> None:
        self._child(self.upstream_latency, deployment).observe(seconds)
        if ttft_seconds is not None:
            self._child(self.ttft, deployment).observe(ttft_seconds)

    def retried(self, deployment: str) -> None:
        self._child(self.retries, deployment).inc()

    def fell_back(self, from_model: str, to_model: str) -> None:
        self._child(self.fallbacks, from_model, to_model).inc()

    def watch(self, *, breakers: BreakerStates, budgets: BudgetLevels) -> None:
        """Gauges read at scrape time: breaker state per deployment, budget remaining per scope."""
        self.registry.register(_StateCollector(breakers, budgets))

    def suspect_usage(self, model: str) -> None:
        self._child(self.suspect, model).inc()

    def refused(self, code: str) -> None:
        self._child(self.rejected, code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
