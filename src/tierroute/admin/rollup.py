"""Hourly rollups of the ledger, so the console's long ranges cost the same at a million rows as at a thousand.

An hour is rolled once it ended ``LAG_SECONDS`` ago: one pass over its rows computes, per dimension (total,
caller, model, reason, tags, deployment), requests, errors, spend, baseline spend and latency; a short
transaction claims the hour in ``console_rollup_hours`` (so concurrent replicas roll each hour once) and
writes the groups. A view over a range reads the rolled hours inside it and aggregates the raw rows only at
its edges (the open hours and partial ones), so a query touches at most a couple of hours of raw rows.

A row that reaches the ledger more than ``LAG_SECONDS`` after its hour ended (say, replayed from the journal
of a replica that was down longer than that) is not in the rollups; the request log and ``tierroute stats``
still show it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..keys.db import Database

HOUR = 3600
LAG_SECONDS = 900
CHUNK_HOURS = 6  # hours rolled per pass: bounds the rows held in memory at once
DIMENSIONS = ("total", "caller", "model", "reason", "tags", "deployment")

# Columns read per row, in this order.
_ROW = "ts, final, status, caller, chosen_model, reason, policy, tags, deployment, cost_usd, baseline_cost_usd, latency_ms"

Group = list[float]  # requests, errors, cost, baseline, latency_sum, latency_max, last_ts


def _keys(row: tuple[Any, ...]) -> Iterable[tuple[str, Any, Any]]:
    _, final, _, caller, model, reason, policy, tags, deployment, *_ = row
    if final:
        yield "total", "", ""
        yield "caller", caller, ""
        yield "model", model, ""
        yield "reason", reason, policy
        yield "tags", tags, ""
    if deployment is not None:
        yield "deployment", deployment, model  # every attempt: a failed try elsewhere is the deployment's


def aggregate(rows: Iterable[tuple[Any, ...]], hour_of: Callable[[float], float]) -> dict[tuple[Any, ...], Group]:
    out: dict[tuple[Any, ...], Group] = {}
    for row in rows:
        ts, status, cost, base, latency = row[0], row[2], row[9], row[10], row[11]
        hour = hour_of(ts)
        failed = status != "ok"
        for dim, k, m in _keys(row):
            g = out.get((hour, dim, k, m))
            if g is None:
                out[(hour, dim, k, m)] = [1, failed, cost, base, latency, latency, ts]
            else:
                g[0] += 1
                g[1] += failed
                g[2] += cost
                g[3] += base
                g[4] += latency
                if latency > g[5]:
                    g[5] = latency
                if ts > g[6]:
                    g[6] = ts
    return out


class Rollups:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock

    def _raw(self, since: float, until: float, hour_of: Callable[[float], float]) -> dict[tuple[Any, ...], Group]:
        if until <= since:
            return {}
        return aggregate(self.db.query(f"SELECT {_ROW} FROM requests WHERE ts >= ? AND ts < ?", (since, until)), hour_of)

    def _roll(self, first: float, last: float) -> None:
        """Roll every closed hour in [first, last) that is not rolled yet."""
        rolled = {float(h) for (h,) in self.db.query(
            "SELECT hour FROM console_rollup_hours WHERE hour >= ? AND hour < ?", (first, last))}
        missing = [h for h in _hours(first, last) if h not in rolled]
        while missing:
            chunk, missing = missing[:CHUNK_HOURS], missing[CHUNK_HOURS:]
            start, end = chunk[0], chunk[-1] + HOUR
            groups = self._raw(start, end, lambda ts: math.floor(ts / HOUR) * HOUR)
            now = self._clock()
            with self.db.transaction() as run:
                for hour in chunk:
                    claimed = run("INSERT INTO console_rollup_hours (hour, rolled_at) VALUES (?, ?) "
                                  "ON CONFLICT (hour) DO NOTHING RETURNING hour", (hour, now))
                    if not claimed:
                        continue  # another replica rolled it (or this one, before)
                    rows = [(h, dim, k, m, *g) for (h, dim, k, m), g in groups.items() if h == hour]
                    for row in rows:
                        run("INSERT INTO console_rollup (hour, dim, k, m, requests, errors, cost_usd, baseline_cost_usd, "
                            "latency_sum, latency_max, last_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def groups(self, dim: str, since: float, until: float, bucket_seconds: int = HOUR) -> dict[tuple[Any, ...], Group]:
        """(bucket, k, m) -> [requests, errors, cost, baseline, latency_sum, latency_max, last_ts] over [since, until).

        ``bucket_seconds`` is a multiple of an hour (rollups are hourly)."""
        closed_until = math.floor((self._clock() - LAG_SECONDS) / HOUR) * HOUR
        first = math.ceil(since / HOUR) * HOUR
        last = max(first, min(math.floor(until / HOUR) * HOUR, closed_until))

        def bucket(ts: float) -> float:
            return math.floor(ts / bucket_seconds) * bucket_seconds

        out: dict[tuple[Any, ...], Group] = {}

        def add(key: tuple[Any, ...], g: Group) -> None:
            acc = out.get(key)
            if acc is None:
                out[key] = list(g)
            else:
                for i in range(5):
                    acc[i] += g[i]
                acc[5] = max(acc[5], g[5])
                acc[6] = max(acc[6], g[6])

        if last > first:
            self._roll(first, last)
            for h, k, m, *g in self.db.query(
                    "SELECT hour, k, m, requests, errors, cost_usd, baseline_cost_usd, latency_sum, latency_max, last_ts "
                    "FROM console_rollup WHERE dim = ? AND hour >= ? AND hour < ?", (dim, first, last)):
                add((bucket(float(h)), k, m), [float(x) for x in g])
            edges = [(since, first), (last, until)]
        else:
            edges = [(since, until)]
        for lo, hi in edges:
            for (b, d, k, m), g in self._raw(lo, hi, bucket).items():
                if d == dim:
                    add((b, k, m), g)
        return out


def _hours(first: float, last: float) -> list[float]:
    return [float(h) for h in range(int(first), int(last), HOUR)]
