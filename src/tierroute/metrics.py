"""Prometheus metrics, one registry per Router (no process-global collectors)."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

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


class _Family:
    """One per-request counter or histogram, kept as plain numbers and turned into Prometheus samples only
    when scraped. prometheus_client's own metrics take a lock and run a Python loop over the buckets on every
    update (7.6 µs for a request's eight updates, timed in a loop); these take one bisect and a few list
    writes under the owner's lock (2.7 µs)."""

    __slots__ = ("name", "help", "labelnames", "bounds", "values")

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = (),
                 buckets: tuple[float, ...] | None = None) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = labelnames
        self.bounds = buckets  # None: a counter
        # labels -> [total] for a counter; [sum, count, bucket 0 .. bucket n (the last is +Inf)] for a histogram
        self.values: dict[tuple[str, ...], list[float]] = {}

    def inc(self, labels: tuple[str, ...], amount: float) -> None:
        value = self.values.get(labels)
        if value is None:
            value = self.values[labels] = [0.0]
        value[0] += amount

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        bounds = self.bounds
        assert bounds is not None
        value = self.values.get(labels)
        if value is None:
            value = self.values[labels] = [0.0] * (len(bounds) + 3)
        value[0] += amount
        value[1] += 1
        value[2 + bisect_left(bounds, amount)] += 1  # a bucket holds values <= its bound

    def collect(self) -> Metric:
        if self.bounds is None:
            counter = CounterMetricFamily(self.name, self.help, labels=self.labelnames)
            for labels, (total,) in self.values.items():
                counter.add_metric(labels, total)
            return counter
        histogram = HistogramMetricFamily(self.name, self.help, labels=self.labelnames)
        for labels, value in self.values.items():
            cumulative, buckets = 0.0, []
            for bound, count in zip((*self.bounds, math.inf), value[2:]):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            histogram.add_metric(labels, buckets, value[0])
        return histogram


class _Families:
    """The collector that exposes the per-request families at scrape time."""

    def __init__(self, families: list[_Family], lock: threading.Lock) -> None:
        self._families = families
        self._lock = lock

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # a consistent snapshot: no update lands halfway through a histogram
            metrics = [family.collect() for family in self._families]
        yield from metrics


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Updates come from the event loop, and from batch or sync callers' threads: one lock for all of them,
        # uncontended in the common case (a C-level acquire and release per update).
        self._lock = threading.Lock()
        F = _Family
        self.requests = F("tierroute_requests", "Requests answered, by chosen model and outcome", ("model", "status"))
        self.attempts = F("tierroute_upstream_attempts", "Upstream attempts, by deployment and outcome",
                          ("deployment", "outcome"))
        self.cost = F("tierroute_cost_usd", "Spend in USD, by model", ("model",))
        self.tokens = F("tierroute_tokens", "Tokens, by model and kind", ("model", "kind"))
        self.latency = F("tierroute_request_seconds", "End-to-end request latency", ("model",), LATENCY_BUCKETS)
        self.overhead = F("tierroute_overhead_seconds", "Time spent in the router itself", (), OVERHEAD_BUCKETS)
        self.rejected = F("tierroute_rejected", "Requests refused before dispatch, by error code", ("code",))
        self.upstream_latency = F("tierroute_upstream_seconds", "Upstream attempt latency, by deployment",
                                  ("deployment",), LATENCY_BUCKETS)
        self.ttft = F("tierroute_upstream_ttft_seconds", "Time to first token of streamed answers, by deployment",
                      ("deployment",), TTFT_BUCKETS)
        self.retries = F("tierroute_retries", "Attempts that retried the model of the attempt before, by deployment",
                         ("deployment",))
        self.fallbacks = F("tierroute_fallbacks", "Attempts that fell back to another model", ("from_model", "to_model"))
        self.suspect = F("tierroute_suspect_usage", "Attempts whose reported usage was clamped, by model", ("model",))
        self.registry.register(_Families([
            self.requests, self.attempts, self.cost, self.tokens, self.latency, self.overhead, self.rejected,
            self.upstream_latency, self.ttft, self.retries, self.fallbacks, self.suspect], self._lock))

    # -- per-request updates (the router's only way in) ----------------------------------------------------
    def attempt(self, deployment: str, outcome: str) -> None:
        with self._lock:
            self.attempts.inc((deployment, outcome), 1)

    def answered(self, model: str, outcome: str, *, seconds: float, overhead_seconds: float | None) -> None:
        with self._lock:
            self.requests.inc((model, outcome), 1)
            self.latency.observe((model,), seconds)
            if overhead_seconds is not None:
                self.overhead.observe((), overhead_seconds)

    def spent(self, model: str, *, cost_usd: float, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.cost.inc((model,), cost_usd)
            self.tokens.inc((model, "prompt"), prompt_tokens)
            self.tokens.inc((model, "completion"), completion_tokens)

    def upstream(self, deployment: str, *, seconds: float, ttft_seconds: float | None) -> None:
        with self._lock:
            self.upstream_latency.observe((deployment,), seconds)
            if ttft_seconds is not None:
                self.ttft.observe((deployment,), ttft_seconds)

    def retried(self, deployment: str) -> None:
        with self._lock:
            self.retries.inc((deployment,), 1)

    def fell_back(self, from_model: str, to_model: str) -> None:
        with self._lock:
            self.fallbacks.inc((from_model, to_model), 1)

    def watch(self, *, breakers: BreakerStates, budgets: BudgetLevels) -> None:
        """Gauges read at scrape time: breaker state per deployment, budget remaining per scope."""
        self.registry.register(_StateCollector(breakers, budgets))

    def suspect_usage(self, model: str) -> None:
        with self._lock:
            self.suspect.inc((model,), 1)

    def refused(self, code: str) -> None:
        with self._lock:
            self.rejected.inc((code,), 1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
