"""The SQLite ledger loses at most the batch in flight when the process dies, and never corrupts the file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time

from tierroute.ledger import LedgerEntry, SQLiteLedger
from tierroute.ledger.stats import summarize


def entry(i: int, **kw) -> LedgerEntry:
    return LedgerEntry(request_id=f"r{i}", ts=time.time(), requested_model="auto", chosen_model="m", cost_usd=0.001,
                       baseline_cost_usd=0.01, latency_ms=float(i), **kw)


def test_killed_writer_keeps_everything_flushed_and_the_file_intact(tmp_path):
    path = tmp_path / "ledger.db"
    script = textwrap.dedent(f"""
        import os, time
        from tierroute.ledger import LedgerEntry, SQLiteLedger
        ledger = SQLiteLedger({str(path)!r}, batch_size=50, flush_interval_seconds=0.01)
        for i in range(1000):
            ledger.record(LedgerEntry(request_id=f"r{{i}}", ts=time.time(), requested_model="auto"))
        ledger.flush()
        for i in range(1000, 5000):
            ledger.record(LedgerEntry(request_id=f"r{{i}}", ts=time.time(), requested_model="auto"))
        os._exit(9)  # no close(), no flush: as a crash would
    """)
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [int(r[0][1:]) for r in conn.execute("SELECT request_id FROM requests ORDER BY id")]
    assert len(ids) >= 1000
    assert ids == list(range(len(ids))), "batches land whole and in order"


def test_close_drains_the_queue_and_stats_summarise(tmp_path):
    ledger = SQLiteLedger(tmp_path / "l.db", flush_interval_seconds=5)
    for i in range(10):
        ledger.record(entry(i, status="ok" if i < 8 else "error"))
    ledger.record(entry(99, final=False, status="error"))
    ledger.close()
    reader = SQLiteLedger(tmp_path / "l.db")
    summary = summarize(reader.stats_rows())
    reader.close()
    assert summary.requests == 10 and summary.attempts == 11 and summary.errors == 2
    assert abs(summary.savings_usd - (0.1 - 0.011)) < 1e-9


def test_record_never_waits_for_the_disk(tmp_path):
    ledger = SQLiteLedger(tmp_path / "l.db")
    started = time.perf_counter()
    for i in range(20000):
        ledger.record(entry(i))
    enqueue_seconds = time.perf_counter() - started
    ledger.close()
    # 20,000 enqueues are pure memory work; writing them is not done on this thread
    assert enqueue_seconds < 2.0
