"""A SQLite ledger filled with realistic-looking traffic, for the console's tests and its million-row timing.

    python bench/console_ledger.py /tmp/million.db 1000000      # writes the rows (about a minute)
    python bench/console_ledger.py /tmp/million.db --time       # times each console API query on it
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
from pathlib import Path

from tierroute.ledger.base import COLUMNS
from tierroute.ledger.sqlite import _connect, migrate

# (model, deployment, tier price in/out per Mtok, share of traffic)
MODELS = [("small", "fake/fake-small", 0.1, 0.2, 0.55), ("mid", "fake/fake-mid", 1.0, 2.0, 0.35),
          ("big", "fake/fake-big", 10.0, 30.0, 0.10)]
REASONS = ["auto: predicted quality 0.91 >= 0.85 at lowest cost", "auto: only the strongest model fits",
           "requested", "general: cheapest eligible", "budget pressure: shifted to cheaper small"]


def fill(path: str | Path, rows: int, *, days: float = 7.0, seed: int = 7, now: float | None = None) -> None:
    rng = random.Random(seed)
    now = time.time() if now is None else now
    conn = _connect(str(path))
    migrate(conn)
    weights = [m[4] for m in MODELS]
    callers = [f"vk-{i:012x}" for i in range(40)] + ["key-0123456789ab"]
    insert = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    batch = []
    conn.execute("BEGIN")
    for i in range(rows):
        model, deployment, pin, pout, _ = rng.choices(MODELS, weights)[0]
        ts = now - days * 86400 * (1 - i / rows)  # ids grow with time, as in a real ledger
        prompt, completion = rng.randint(20, 2000), rng.randint(5, 600)
        cost = (prompt * pin + completion * pout) / 1e6
        baseline = (prompt * 10.0 + completion * 30.0) / 1e6
        failed = rng.random() < 0.02
        row = dict(request_id=f"req-{i:09d}", ts=ts, requested_model=rng.choice(["auto", "auto", "general", model]),
                   chosen_model=model, deployment=deployment, attempt=1, final=True, caller=rng.choice(callers),
                   user=None, reason=rng.choice(REASONS), policy="learned", prompt_tokens=prompt,
                   completion_tokens=0 if failed else completion, cost_usd=0.0 if failed else cost,
                   baseline_cost_usd=baseline, latency_ms=rng.lognormvariate(6, 0.5), ttft_ms=None, overhead_ms=0.4,
                   status="error" if failed else "ok", error_kind="upstream_unavailable" if failed else None,
                   http_status=502 if failed else 200, stream=rng.random() < 0.3,
                   tags=rng.choice([None, "team:research", "project:chat,team:ops", "batch"]), prompt=None,
                   usage_estimated=False, usage_note=None, arm=None)
        batch.append(tuple(row[c] for c in COLUMNS))
        if len(batch) == 10_000:
            conn.executemany(insert, batch)
            batch.clear()
    if batch:
        conn.executemany(insert, batch)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def time_queries(path: str) -> None:
    from tierroute.admin.queries import LedgerQueries
    from tierroute.config import LedgerSettings
    from tierroute.keys.db import Database

    q = LedgerQueries(Database(LedgerSettings(path=path)))
    until = time.time()
    start = time.perf_counter()
    q.overview(until - 7 * 86400, until, "hour")
    print(f"{'first view: rolls up the closed hours':<36} {1000 * (time.perf_counter() - start):8.1f} ms  (once)")
    cases = {
        "overview 7 days, hourly": lambda: q.overview(until - 7 * 86400, until, "hour"),
        "overview 24 h, hourly": lambda: q.overview(until - 86400, until, "hour"),
        "spend by key 7 days": lambda: q.spend_by("caller", until - 7 * 86400, until),
        "routing mix 7 days": lambda: q.spend_by("model", until - 7 * 86400, until),
        "reasons 7 days": lambda: q.reasons(until - 7 * 86400, until),
        "deployments 7 days": lambda: q.deployments(until - 7 * 86400, until),
        "request log, first page": lambda: q.requests(before_id=None, limit=50, filters={}),
        "request log, page at row 500,000": lambda: q.requests(before_id=500_000, limit=50, filters={}),
        "request log, by model": lambda: q.requests(before_id=None, limit=50, filters={"chosen_model": "big"}),
        "request log, search": lambda: q.requests(before_id=None, limit=50, filters={"q": "req-00004"}),
    }
    for name, run in cases.items():
        run()
        start = time.perf_counter()
        for _ in range(3):
            run()
        print(f"{name:<36} {1000 * (time.perf_counter() - start) / 3:8.1f} ms")


if __name__ == "__main__":
    if sys.argv[2:] == ["--time"]:
        time_queries(sys.argv[1])
    else:
        fill(sys.argv[1], int(sys.argv[2]))
