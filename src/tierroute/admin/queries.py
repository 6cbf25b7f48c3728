"""What the console shows, aggregated in the ledger's database (SQLite or PostgreSQL).

Every query is bounded: aggregates over a time range read hourly rollups (rollup.py) plus the raw rows at
the range's edges, groups are capped, and the request log is paged by id (keyset pagination:
``WHERE id < ?``), so a page costs the same on row 10 and row 10 million.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .._exceptions import InvalidRequest
from ..keys.db import Database
from .rollup import Rollups

DEFAULT_RANGE_SECONDS = 7 * 86400
MAX_RANGE_SECONDS = 400 * 86400
MAX_GROUPS = 200
MAX_PAGE = 200
BUCKETS = {"minute": 60, "hour": 3600, "day": 86400}
LOG_COLUMNS = ("id", "request_id", "ts", "requested_model", "chosen_model", "deployment", "attempt", "caller",
               "user", "reason", "policy", "prompt_tokens", "completion_tokens", "cost_usd", "baseline_cost_usd",
               "latency_ms", "status", "error_kind", "http_status", "stream", "tags")


class LedgerQueries:
    def __init__(self, db: Database, *, clock: Any = time.time) -> None:
        self.db = db
        self.rollups = Rollups(db, clock=clock)

    def _bucket(self, seconds: int) -> str:
        return (f"floor(ts / {seconds}) * {seconds}" if self.db.postgres
                else f"CAST(ts / {seconds} AS INTEGER) * {seconds}")

    @staticmethod
    def window(params: Mapping[str, str]) -> tuple[float, float]:
        until = float(params.get("until") or time.time())
        since = float(params.get("since") or until - DEFAULT_RANGE_SECONDS)
        if until - since > MAX_RANGE_SECONDS or until <= since:
            raise InvalidRequest(f"since/until: a range of up to {MAX_RANGE_SECONDS // 86400} days", param="since")
        return since, until

    def overview(self, since: float, until: float, bucket: str) -> dict[str, Any]:
        seconds = BUCKETS[bucket]
        if seconds < 3600:  # finer than the rollups: raw rows, so keep such ranges short
            rows = self.db.query(
                f"SELECT {self._bucket(seconds)} AS b, count(*), coalesce(sum(cost_usd), 0), "
                "coalesce(sum(baseline_cost_usd), 0), sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) "
                "FROM requests WHERE final = TRUE AND ts >= ? AND ts < ? GROUP BY b ORDER BY b", (since, until))
            points = [(float(b), int(n), float(c), float(base), int(e or 0)) for b, n, c, base, e in rows]
        else:
            groups = self.rollups.groups("total", since, until, seconds)
            points = sorted((b, int(g[0]), g[2], g[3], int(g[1])) for (b, _, _), g in groups.items())
        series = [{"ts": b, "requests": n, "cost_usd": c, "baseline_cost_usd": base, "savings_usd": base - c,
                   "errors": e} for b, n, c, base, e in points]
        totals = {k: sum(p[k] for p in series) for k in ("requests", "cost_usd", "baseline_cost_usd", "savings_usd",
                                                          "errors")}
        return {"since": since, "until": until, "bucket": bucket, "totals": totals, "series": series}

    def _summed(self, dim: str, since: float, until: float) -> dict[tuple[Any, Any], list[float]]:
        out: dict[tuple[Any, Any], list[float]] = {}
        for (_, k, m), g in self.rollups.groups(dim, since, until).items():
            acc = out.setdefault((k, m), [0, 0, 0.0, 0.0, 0.0, 0.0, 0.0])
            for i in range(5):
                acc[i] += g[i]
            acc[5] = max(acc[5], g[5])
            acc[6] = max(acc[6], g[6])
        return out

    def spend_by(self, dim: str, since: float, until: float) -> list[tuple[Any, int, float, float]]:
        """(value, requests, cost, baseline) per value of ``dim`` (caller, model or tags), by spend."""
        rows = [(k, int(g[0]), g[2], g[3]) for (k, _), g in self._summed(dim, since, until).items()]
        return sorted(rows, key=lambda r: -r[2])[:MAX_GROUPS * 10]

    def reasons(self, since: float, until: float) -> list[dict[str, Any]]:
        rows = sorted(self._summed("reason", since, until).items(), key=lambda kv: -kv[1][0])[:MAX_GROUPS]
        return [{"reason": r, "policy": p, "requests": int(g[0])} for (r, p), g in rows]

    def deployments(self, since: float, until: float) -> list[dict[str, Any]]:
        """Every attempt (not only final ones): a failed attempt that was retried elsewhere is the deployment's."""
        rows = sorted(self._summed("deployment", since, until).items(), key=lambda kv: -kv[1][0])[:MAX_GROUPS]
        return [{"deployment": d, "model": m, "attempts": int(g[0]), "avg_latency_ms": g[4] / g[0] if g[0] else 0.0,
                 "max_latency_ms": g[5], "errors": int(g[1]), "error_rate": g[1] / g[0] if g[0] else 0.0,
                 "last_seen": g[6]} for (d, m), g in rows]

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
