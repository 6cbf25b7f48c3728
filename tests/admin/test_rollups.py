"""The console's hourly rollups give exactly what the raw rows give, on SQLite and PostgreSQL, whatever the
range's edges, and replicas rolling the same hours at once never count a row twice."""

from __future__ import annotations

import random
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tierroute.admin.queries import LedgerQueries
from tierroute.config import LedgerSettings
from tierroute.keys.db import Database
from tierroute.ledger.base import LedgerEntry

from ..services import postgres_dsn  # noqa: F401 - fixture

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from console_ledger import fill  # noqa: E402

NOW = 1_800_000_000.0 + 1234.5  # not on an hour boundary
SPAN = 30 * 3600


def raw_totals(db: Database, since: float, until: float) -> tuple[int, float, int]:
    n, cost, errors = db.query("SELECT count(*), coalesce(sum(cost_usd), 0), "
                               "coalesce(sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), 0) FROM requests "
                               "WHERE final = TRUE AND ts >= ? AND ts < ?", (since, until))[0]
    return int(n), float(cost), int(errors)


def check_against_raw(settings: LedgerSettings) -> None:
    rng = random.Random(3)
    queries = [LedgerQueries(Database(settings), clock=lambda: NOW) for _ in range(3)]
    db = queries[0].db
    windows = [(NOW - SPAN - 100, NOW + 1)] + [
        tuple(sorted((NOW - rng.uniform(0, SPAN), NOW - rng.uniform(0, SPAN)))) for _ in range(6)]
    # three "replicas" roll the same hours at once
    threads = [threading.Thread(target=q.overview, args=(NOW - SPAN, NOW, "hour")) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hours = db.query("SELECT count(*), count(DISTINCT hour) FROM console_rollup_hours")[0]
    assert hours[0] == hours[1] and hours[0] > 20
    for since, until in windows:
        for q in queries[:2]:
            ov = q.overview(since, until, "hour")
            n, cost, errors = raw_totals(db, since, until)
            assert ov["totals"]["requests"] == n
            assert ov["totals"]["cost_usd"] == pytest.approx(cost, rel=1e-9, abs=1e-12)
            assert ov["totals"]["errors"] == errors
            by_caller = {k: (r, c) for k, r, c, _ in q.spend_by("caller", since, until)}
            raw = {k: (int(r), float(c)) for k, r, c in db.query(
                "SELECT caller, count(*), sum(cost_usd) FROM requests WHERE final = TRUE AND ts >= ? AND ts < ? "
                "GROUP BY caller", (since, until))}
            assert by_caller.keys() == raw.keys()
            for k, (r, c) in raw.items():
                assert by_caller[k][0] == r and by_caller[k][1] == pytest.approx(c, rel=1e-9, abs=1e-12)
            attempts = sum(d["attempts"] for d in q.deployments(since, until))
            assert attempts == db.query("SELECT count(*) FROM requests WHERE deployment IS NOT NULL AND ts >= ? "
                                        "AND ts < ?", (since, until))[0][0]
    for q in queries:
        q.db.close()


def test_rollups_match_raw_rows_on_sqlite(tmp_path):
    path = tmp_path / "ledger.db"
    fill(path, 3000, days=SPAN / 86400, now=NOW)
    # a retried request: a failed attempt (not final) on one deployment, then the answer on another
    conn = sqlite3.connect(path)
    conn.execute("UPDATE requests SET final = 0, status = 'error' WHERE id % 97 = 0")
    conn.commit()
    conn.close()
    check_against_raw(LedgerSettings(path=str(path)))


def test_rollups_match_raw_rows_on_postgres(postgres_dsn):
    from tierroute.ledger.postgres import PostgresLedger

    ledger = PostgresLedger(postgres_dsn, flush_interval_seconds=0.01)
    rng = random.Random(5)
    for i in range(1500):
        model = rng.choice(["small", "mid", "big"])
        ledger.record(LedgerEntry(request_id=f"r{i}", ts=NOW - SPAN * rng.random(), requested_model="auto",
                                  chosen_model=model, deployment=f"fake/{model}", final=i % 50 != 0,
                                  caller=rng.choice(["vk-a", "vk-b", None]), reason=rng.choice(["x", "y"]),
                                  policy="learned", cost_usd=rng.random() / 1000, baseline_cost_usd=0.001,
                                  latency_ms=rng.uniform(1, 500), status="ok" if rng.random() > 0.05 else "error"))
    ledger.flush()
    ledger.close()
    check_against_raw(LedgerSettings(backend="postgres", dsn=postgres_dsn))
