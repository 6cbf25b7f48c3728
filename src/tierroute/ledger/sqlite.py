"""SQLite ledger: the default. WAL mode, one writer thread, one transaction per batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ..journal import Journal
from .base import (
    COLUMNS,
    FEEDBACK_COLUMNS,
    JUDGMENT_COLUMNS,
    STATS_COLUMNS,
    BatchWriter,
    Feedback,
    Judgment,
    Labelled,
    LedgerEntry,
    StatsRow,
    judgment_rows,
    split_rows,
)

# Shared with the PostgreSQL ledger; ``{id}``, ``{big}`` and ``{real}`` are the backend's column types.
KEYS_MIGRATION = """
CREATE TABLE IF NOT EXISTS virtual_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    owner TEXT,
    user_id TEXT,
    team TEXT,
    project TEXT,
    spec TEXT NOT NULL,
    expires_at {real},
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    revoked_at {real},
    seq {big} NOT NULL
);
CREATE INDEX IF NOT EXISTS virtual_keys_seq ON virtual_keys (seq);
CREATE TABLE IF NOT EXISTS key_sequence (id INTEGER PRIMARY KEY, value {big} NOT NULL);
INSERT INTO key_sequence (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS admin_audit (
    id {id},
    ts {real} NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS admin_audit_ts ON admin_audit (ts);
CREATE INDEX IF NOT EXISTS requests_caller_id ON requests (caller, id);
CREATE TABLE IF NOT EXISTS console_rollup (
    hour {real} NOT NULL,
    dim TEXT NOT NULL,
    k TEXT,
    m TEXT,
    requests {big} NOT NULL,
    errors {big} NOT NULL,
    cost_usd {real} NOT NULL,
    baseline_cost_usd {real} NOT NULL,
    latency_sum {real} NOT NULL,
    latency_max {real} NOT NULL,
    last_ts {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS console_rollup_dim_hour ON console_rollup (dim, hour);
CREATE TABLE IF NOT EXISTS console_rollup_hours (hour {real} PRIMARY KEY, rolled_at {real} NOT NULL)
"""

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS requests (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        ts REAL NOT NULL,
        requested_model TEXT NOT NULL,
        chosen_model TEXT,
        deployment TEXT,
        attempt INTEGER NOT NULL,
        final INTEGER NOT NULL,
        caller TEXT,
        user TEXT,
        reason TEXT,
        policy TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        baseline_cost_usd REAL NOT NULL,
        latency_ms REAL NOT NULL,
        ttft_ms REAL,
        overhead_ms REAL,
        status TEXT NOT NULL,
        error_kind TEXT,
        http_status INTEGER NOT NULL,
        stream INTEGER NOT NULL,
        tags TEXT,
        prompt TEXT
    );
    CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
    CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id);
    """,
    2: """
    CREATE TABLE IF NOT EXISTS feedback (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        ts REAL NOT NULL,
        score REAL NOT NULL,
        source TEXT
    );
    CREATE INDEX IF NOT EXISTS feedback_request_id ON feedback (request_id);
    """,
    # Token counts tierroute counted because the server reported no usage (issue 19).
    3: "ALTER TABLE requests ADD COLUMN usage_estimated INTEGER NOT NULL DEFAULT 0",
    # Why a provider's usage was suspect and how it was clamped (issue 15 item 20).
    4: """
    ALTER TABLE requests ADD COLUMN usage_note TEXT;
    """,
    # Continuous evaluation's judgments and the quality guard's decisions (issue 13).
    5: """
    CREATE TABLE IF NOT EXISTS judgments (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        ts REAL NOT NULL,
        route TEXT,
        routed_model TEXT,
        reference_model TEXT,
        judge TEXT NOT NULL,
        verdict TEXT NOT NULL,
        judge_cost_usd REAL NOT NULL,
        reference_cost_usd REAL NOT NULL,
        detail TEXT
    );
    CREATE INDEX IF NOT EXISTS judgments_ts ON judgments (ts);
    CREATE INDEX IF NOT EXISTS judgments_request_id ON judgments (request_id);
    """,
    # 6: virtual keys, the admin audit log, and indexes
    # for the operator console (issue 17; see keys/store.py and admin/queries.py).
    6: KEYS_MIGRATION.format(id="INTEGER PRIMARY KEY", big="INTEGER", real="REAL"),
    # The router.experiment arm each request was routed by (A/B between router versions, issue 13 item 4).
    7: """
    ALTER TABLE requests ADD COLUMN arm TEXT;
    CREATE INDEX IF NOT EXISTS requests_arm_ts ON requests (arm, ts);
    """,
    # Only requests routed by an experiment have an arm: a partial index costs the others nothing on insert.
    8: """
    DROP INDEX IF EXISTS requests_arm_ts;
    CREATE INDEX IF NOT EXISTS requests_arm_ts ON requests (arm, ts) WHERE arm IS NOT NULL;
    """,
}
SCHEMA_VERSION = max(MIGRATIONS)

_INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
# A replayed row (from a dead process's journal) is inserted only if that attempt is not there yet.
_INSERT_MISSING = (f"INSERT INTO requests ({', '.join(COLUMNS)}) SELECT {', '.join('?' for _ in COLUMNS)} "
                   "WHERE NOT EXISTS (SELECT 1 FROM requests WHERE request_id = ? AND attempt = ?)")
_REQUEST_ID, _ATTEMPT = COLUMNS.index("request_id"), COLUMNS.index("attempt")
_INSERT_FEEDBACK = f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join('?' for _ in FEEDBACK_COLUMNS)})"
_INSERT_JUDGMENT = (f"INSERT INTO judgments ({', '.join(JUDGMENT_COLUMNS)}) "
                   f"VALUES ({', '.join('?' for _ in JUDGMENT_COLUMNS)})")
JUDGMENTS_SQL = f"SELECT {', '.join(JUDGMENT_COLUMNS)} FROM judgments WHERE ts >= {{param}} ORDER BY id"
# The attempt that answered, joined with the mean of its labels.
LABELLED_SQL = """
SELECT r.request_id, r.ts, r.chosen_model, r.prompt, r.cost_usd, avg(f.score)
FROM requests r JOIN feedback f ON f.request_id = r.request_id
WHERE r.final = {true} AND r.status = 'ok' AND r.ts >= {param}
GROUP BY r.id, r.request_id, r.ts, r.chosen_model, r.prompt, r.cost_usd
ORDER BY r.id
"""


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for target in sorted(v for v in MIGRATIONS if v > version):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class SQLiteLedger(BatchWriter):
    def __init__(self, path: str | Path, *, batch_size: int = 256, flush_interval_seconds: float = 0.2,
                 journal: Journal | None = None) -> None:
        super().__init__(batch_size=batch_size, flush_interval_seconds=flush_interval_seconds, journal=journal)
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None
        self.start()

    def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self.path)
        migrate(self._conn)

    def write_batch(self, rows: Sequence[LedgerEntry | Feedback | Judgment], *, replayed: bool = False) -> None:
        assert self._conn is not None
        entries, feedback = split_rows(rows)
        judged = judgment_rows(rows)
        self._conn.execute("BEGIN")
        try:
            if entries and replayed:
                self._conn.executemany(_INSERT_MISSING, [(*r, r[_REQUEST_ID], r[_ATTEMPT]) for r in entries])
            elif entries:
                self._conn.executemany(_INSERT, entries)
            if feedback:
                self._conn.executemany(_INSERT_FEEDBACK, feedback)
            if judged:
                self._conn.executemany(_INSERT_JUDGMENT, judged)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def is_bad_row(self, exc: Exception) -> bool:
        return super().is_bad_row(exc) or isinstance(exc, (sqlite3.IntegrityError, sqlite3.InterfaceError,
                                                            sqlite3.DataError))

    def close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()

    # Readers use their own connection: WAL lets them run beside the writer.
    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        conn = _connect(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def stats_rows(self, since_ts: float | None = None) -> list[StatsRow]:
        sql = f"SELECT {', '.join(STATS_COLUMNS)} FROM requests WHERE ts >= ?"
        rows = self._read(sql, (since_ts or 0.0,))
        final = STATS_COLUMNS.index("final")
        return [StatsRow(*row[:final], bool(row[final]), *row[final + 1:-1], bool(row[-1]))  # type: ignore[arg-type]
                for row in rows]

    def entries(self, since_ts: float | None = None, limit: int | None = None) -> list[LedgerEntry]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM requests WHERE ts >= ? ORDER BY id"
        params: list[object] = [since_ts or 0.0]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        out = []
        for row in self._read(sql, params):
            entry = LedgerEntry(*row)  # type: ignore[arg-type]
            entry.final, entry.stream = bool(entry.final), bool(entry.stream)
            entry.usage_estimated = bool(entry.usage_estimated)
            out.append(entry)
        return out

    def labelled(self, since_ts: float | None = None) -> list[Labelled]:
        rows = self._read(LABELLED_SQL.format(true=1, param="?"), (since_ts or 0.0,))
        return [Labelled(*row) for row in rows]  # type: ignore[arg-type]

    def judgments(self, since_ts: float | None = None) -> list[Judgment]:
        rows = self._read(JUDGMENTS_SQL.format(param="?"), (since_ts or 0.0,))
        return [Judgment(*row) for row in rows]  # type: ignore[arg-type]
