"""Hourly rollups of the ledger, so the console's long ranges cost the same at a million rows as at a thousand.

An hour is rolled once it ended ``LAG_SECONDS`` ago: a transaction claims it in ``console_rollup_hours`` (so
concurrent replicas roll each hour once) and, inside the database, groups its rows per dimension (total,
caller, model, reason, tags, deployment) into ``console_rollup``: requests, errors, spend, baseline spend and
latency. A view over a range sums the rolled hours inside it and groups the raw rows only at its edges (the
open hours and partial ones), all in SQL, so a query touches at most a couple of hours of raw rows.

A row that reaches the ledger more than ``LAG_SECONDS`` after its hour ended (say, replayed from the journal
of a replica that was down longer than that) is not in the rollups; the request log and ``tierroute stats``
still show it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ..keys.db import Database

HOUR = 3600
LAG_SECONDS = 900

# dimension -> (group key, second key, which rows). Deployments count every attempt: a failed try that was
# retried elsewhere is that deployment's error; the other views count what callers got (the final attempt).
DIMENSIONS: dict[str, tuple[str, str, str]] = {
    "total": ("''", "''", "final = TRUE"),
    "caller": ("caller", "''", "final = TRUE"),
    "model": ("chosen_model", "''", "final = TRUE"),
    "reason": ("reason", "policy", "final = TRUE"),
    "tags": ("tags", "''", "final = TRUE"),
    "deployment": ("deployment", "chosen_model", "deployment IS NOT NULL"),
}
_MEASURES = ("count(*) AS n, sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS e, coalesce(sum(cost_usd), 0) AS c, "
             "coalesce(sum(baseline_cost_usd), 0) AS bc, coalesce(sum(latency_ms), 0) AS ls, "
             "coalesce(max(latency_ms), 0) AS lm, max(ts) AS lt")
_ROLLED = ("sum(requests), sum(errors), sum(cost_usd), sum(baseline_cost_usd), sum(latency_sum), max(latency_max), "
           "max(last_ts)")

Group = list[float]  # requests, errors, cost, baseline, latency_sum, latency_max, last_ts


class Rollups:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock

    def _floor(self, column: str, seconds: int) -> str:
        return (f"floor({column} / {seconds}) * {seconds}" if self.db.postgres
                else f"CAST({column} / {seconds} AS INTEGER) * {seconds}")

    def _grouped_sql(self, dim: str, seconds: int) -> str:
        k, m, where = DIMENSIONS[dim]
        return (f"SELECT {self._floor('ts', seconds)} AS b, {k} AS k, {m} AS m, {_MEASURES} FROM requests "
                f"WHERE {where} AND ts >= ? AND ts < ? GROUP BY b, k, m")

    def _roll(self, first: float, last: float) -> None:
        """Roll every closed hour in [first, last) that is not rolled yet."""
        rolled = {float(h) for (h,) in self.db.query(
            "SELECT hour FROM console_rollup_hours WHERE hour >= ? AND hour < ?", (first, last))}
        for hour in (float(h) for h in range(int(first), int(last), HOUR)):
            if hour in rolled:
                continue
            with self.db.transaction() as run:
                if not run("INSERT INTO console_rollup_hours (hour, rolled_at) VALUES (?, ?) "
                           "ON CONFLICT (hour) DO NOTHING RETURNING hour", (hour, self._clock())):
                    continue  # another replica rolled it
                for dim in DIMENSIONS:
                    run("INSERT INTO console_rollup (hour, dim, k, m, requests, errors, cost_usd, baseline_cost_usd, "
                        f"latency_sum, latency_max, last_ts) SELECT b, '{dim}', k, m, n, e, c, bc, ls, lm, lt "
                        f"FROM ({self._grouped_sql(dim, HOUR)}) AS g", (hour, hour + HOUR))

    def groups(self, dim: str, since: float, until: float, bucket_seconds: int = HOUR) -> dict[tuple[Any, ...], Group]:
        """(bucket, k, m) -> [requests, errors, cost, baseline, latency_sum, latency_max, last_ts] over [since, until).

        ``bucket_seconds`` is a multiple of an hour (rollups are hourly)."""
        closed_until = math.floor((self._clock() - LAG_SECONDS) / HOUR) * HOUR
        first = math.ceil(since / HOUR) * HOUR
        last = max(first, min(math.floor(until / HOUR) * HOUR, closed_until))
        out: dict[tuple[Any, ...], Group] = {}

        def add(rows: list[tuple[Any, ...]]) -> None:
            for b, k, m, *g in rows:
                key, values = (float(b), k, m), [float(x or 0) for x in g]
                acc = out.get(key)
                if acc is None:
                    out[key] = values
                    continue
                for i in range(5):
                    acc[i] += values[i]
                acc[5], acc[6] = max(acc[5], values[5]), max(acc[6], values[6])

        edges = [(since, until)]
        if last > first:
            self._roll(first, last)
            add(self.db.query(f"SELECT {self._floor('hour', bucket_seconds)} AS b, k, m, {_ROLLED} FROM console_rollup "
                              "WHERE dim = ? AND hour >= ? AND hour < ? GROUP BY b, k, m", (dim, first, last)))
            edges = [(since, first), (last, until)]
        for lo, hi in edges:
            if hi > lo:
                add(self.db.query(self._grouped_sql(dim, bucket_seconds), (lo, hi)))
        return out
