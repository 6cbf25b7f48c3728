"""What the console shows, aggregated in the ledger's database (SQLite or PostgreSQL).

Every query is bounded: aggregates over a time range use the ``ts`` indexes (migration 6 adds a covering
index on ``(final, ts, chosen_model, cost_usd, baseline_cost_usd)``), groups are capped, and the request
log is paged by id (keyset pagination: ``WHERE id < ?``), so a page costs the same on row 10 and row 10
million.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..keys.db import Database

DEFAULT_RANGE_SECONDS = 7 * 86400
MAX_GROUPS = 200
MAX_PAGE = 200
BUCKETS = {"minute": 60, "hour": 3600, "day": 86400}
LOG_COLUMNS = ("id", "request_id", "ts", "requested_model", "chosen_model", "deployment", "attempt", "caller",
               "user", "reason", "policy", "prompt_tokens", "completion_tokens", "cost_usd", "baseline_cost_usd",
               "latency_ms", "status", "error_kind", "http_status", "stream", "tags")


class LedgerQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _bucket(self, seconds: int) -> str:
        return (f"floor(ts / {seconds}) * {seconds}" if self.db.postgres
                else f"CAST(ts / {seconds} AS INTEGER) * {seconds}")

    @staticmethod
    def window(params: Mapping[str, str]) -> tuple[float, float]:
        until = float(params.get("until") or time.time())
        since = float(params.get("since") or until - DEFAULT_RANGE_SECONDS)
        return since, until

    def overview(self, since: float, until: float, bucket: str) -> dict[str, Any]:
        seconds = BUCKETS[bucket]
        rows = self.db.query(
            f"SELECT {self._bucket(seconds)} AS b, count(*), coalesce(sum(cost_usd), 0), "
            "coalesce(sum(baseline_cost_usd), 0), sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) "
            "FROM requests WHERE final = TRUE AND ts >= ? AND ts < ? GROUP BY b ORDER BY b", (since, until))
        series = [{"ts": float(b), "requests": int(n), "cost_usd": float(c), "baseline_cost_usd": float(base),
                   "savings_usd": float(base) - float(c), "errors": int(e or 0)} for b, n, c, base, e in rows]
        totals = {k: sum(p[k] for p in series) for k in ("requests", "cost_usd", "baseline_cost_usd", "savings_usd",
                                                          "errors")}
        return {"since": since, "until": until, "bucket": bucket, "totals": totals, "series": series}

    def spend_by_column(self, column: str, since: float, until: float) -> list[tuple[Any, ...]]:
        """(value, requests, cost, baseline) per value of ``column`` (a fixed column name, never user input)."""
        return self.db.query(
            f"SELECT {column}, count(*), coalesce(sum(cost_usd), 0), coalesce(sum(baseline_cost_usd), 0) "
            f"FROM requests WHERE final = TRUE AND ts >= ? AND ts < ? GROUP BY {column} "
            f"ORDER BY 3 DESC LIMIT {MAX_GROUPS * 10}", (since, until))

    def reasons(self, since: float, until: float) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT reason, policy, count(*) FROM requests WHERE final = TRUE AND ts >= ? AND ts < ? "
            f"GROUP BY reason, policy ORDER BY 3 DESC LIMIT {MAX_GROUPS}", (since, until))
        return [{"reason": r, "policy": p, "requests": int(n)} for r, p, n in rows]

    def deployments(self, since: float, until: float) -> list[dict[str, Any]]:
        """Every attempt (not only final ones): a failed attempt that was retried elsewhere is the deployment's."""
        rows = self.db.query(
            "SELECT deployment, chosen_model, count(*), avg(latency_ms), max(latency_ms), "
            "sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), max(ts) FROM requests "
            f"WHERE ts >= ? AND ts < ? AND deployment IS NOT NULL GROUP BY deployment, chosen_model "
            f"ORDER BY 3 DESC LIMIT {MAX_GROUPS}", (since, until))
        return [{"deployment": d, "model": m, "attempts": int(n), "avg_latency_ms": float(avg or 0),
                 "max_latency_ms": float(mx or 0), "errors": int(e or 0), "error_rate": (int(e or 0) / n) if n else 0,
                 "last_seen": float(last)} for d, m, n, avg, mx, e, last in rows]

    def requests(self, *, before_id: int | None, limit: int, filters: Mapping[str, str]) -> dict[str, Any]:
        """One page of the request log, newest first; ``next`` is the id to pass as ``before_id`` for the next."""
        where, params = ["id < ?"], [before_id if before_id is not None else 2**62]
        for column in ("caller", "chosen_model", "status", "request_id", "deployment"):
            if filters.get(column):
                where.append(f"{column} = ?")
                params.append(filters[column])
        if filters.get("q"):
            where.append("(request_id LIKE ? OR reason LIKE ? OR tags LIKE ? OR requested_model LIKE ?)")
            params.extend([f"%{filters['q']}%"] * 4)
        limit = max(1, min(limit, MAX_PAGE))
        names = ", ".join('"user"' if c == "user" else c for c in LOG_COLUMNS)
        rows = self.db.query(f"SELECT {names} FROM requests WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                             (*params, limit))
        items = [dict(zip(LOG_COLUMNS, row)) for row in rows]
        for item in items:
            item["stream"] = bool(item["stream"])
        return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}
