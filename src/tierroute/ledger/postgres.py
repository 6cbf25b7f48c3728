"""PostgreSQL ledger: one ledger for many replicas. psycopg 3 on the writer thread, one transaction per batch.

Migrations are numbered SQL scripts recorded in ``tierroute_schema_version``; each runs in its own
transaction under an advisory lock, so replicas starting together migrate once. Tables live in the
connection's ``search_path`` (set ``options=-csearch_path=...`` in the DSN to use another schema).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from .sqlite import JUDGMENTS_SQL, KEYS_MIGRATION, LABELLED_SQL

# An arbitrary constant naming tierroute's migration lock among the database's advisory locks.
_MIGRATION_LOCK = 7_361_205_518

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS requests (
        id BIGSERIAL PRIMARY KEY,
        request_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        requested_model TEXT NOT NULL,
        chosen_model TEXT,
        deployment TEXT,
        attempt INTEGER NOT NULL,
        final BOOLEAN NOT NULL,
        caller TEXT,
        "user" TEXT,
        reason TEXT,
        policy TEXT,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        baseline_cost_usd DOUBLE PRECISION NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION,
        overhead_ms DOUBLE PRECISION,
        status TEXT NOT NULL,
        error_kind TEXT,
        http_status INTEGER NOT NULL,
        stream BOOLEAN NOT NULL,
        tags TEXT,
        prompt TEXT
    );
    CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
    CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id);
    """,
    2: """
    CREATE TABLE IF NOT EXISTS feedback (
        id BIGSERIAL PRIMARY KEY,
        request_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        score DOUBLE PRECISION NOT NULL,
        source TEXT
    );
    CREATE INDEX IF NOT EXISTS feedback_request_id ON feedback (request_id);
    """,
    # Token counts tierroute counted because the server reported no usage (issue 19).
    3: "ALTER TABLE requests ADD COLUMN IF NOT EXISTS usage_estimated BOOLEAN NOT NULL DEFAULT FALSE",
    # Why a provider's usage was suspect and how it was clamped (issue 15 item 20).
    4: """
    ALTER TABLE requests ADD COLUMN IF NOT EXISTS usage_note TEXT;
    """,
    # Continuous evaluation's judgments and the quality guard's decisions (issue 13).
    5: """
    CREATE TABLE IF NOT EXISTS judgments (
        id BIGSERIAL PRIMARY KEY,
        request_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        route TEXT,
        routed_model TEXT,
        reference_model TEXT,
        judge TEXT NOT NULL,
        verdict TEXT NOT NULL,
        judge_cost_usd DOUBLE PRECISION NOT NULL,
        reference_cost_usd DOUBLE PRECISION NOT NULL,
        detail TEXT
    );
    CREATE INDEX IF NOT EXISTS judgments_ts ON judgments (ts);
    CREATE INDEX IF NOT EXISTS judgments_request_id ON judgments (request_id);
    """,
    # 6: virtual keys, the admin audit log, and indexes
    # for the operator console (issue 17).
    6: KEYS_MIGRATION.format(id="BIGSERIAL PRIMARY KEY", big="BIGINT", real="DOUBLE PRECISION"),
    # The router.experiment arm each request was routed by (A/B between router versions, issue 13 item 4).
    7: """
    ALTER TABLE requests ADD COLUMN IF NOT EXISTS arm TEXT;
    CREATE INDEX IF NOT EXISTS requests_arm_ts ON requests (arm, ts);
    """,
    # Only requests routed by an experiment have an arm: a partial index costs the others nothing on insert.
    8: """
    DROP INDEX IF EXISTS requests_arm_ts;
    CREATE INDEX IF NOT EXISTS requests_arm_ts ON requests (arm, ts) WHERE arm IS NOT NULL;
    """,
}
SCHEMA_VERSION = max(MIGRATIONS)


def _quoted(column: str) -> str:
    return '"user"' if column == "user" else column


_INSERT = f"INSERT INTO requests ({', '.join(map(_quoted, COLUMNS))}) VALUES ({', '.join('%s' for _ in COLUMNS)})"
# A replayed row (from a dead process's journal) is inserted only if that attempt is not there yet.
_INSERT_MISSING = (f"INSERT INTO requests ({', '.join(map(_quoted, COLUMNS))}) "
                   f"SELECT {', '.join('%s' for _ in COLUMNS)} "
                   "WHERE NOT EXISTS (SELECT 1 FROM requests WHERE request_id = %s AND attempt = %s)")
_REQUEST_ID, _ATTEMPT = COLUMNS.index("request_id"), COLUMNS.index("attempt")
_INSERT_FEEDBACK = (f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) "
                    f"VALUES ({', '.join('%s' for _ in FEEDBACK_COLUMNS)})")


_INSERT_JUDGMENT = (f"INSERT INTO judgments ({', '.join(JUDGMENT_COLUMNS)}) "
                   f"VALUES ({', '.join('%s' for _ in JUDGMENT_COLUMNS)})")


def migrate(conn: Any) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found before."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS tierroute_schema_version "
                     "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        found = conn.execute("SELECT coalesce(max(version), 0) FROM tierroute_schema_version").fetchone()[0]
        for target in sorted(v for v in MIGRATIONS if v > found):
            conn.execute(MIGRATIONS[target])
            conn.execute("INSERT INTO tierroute_schema_version (version) VALUES (%s)", (target,))
    return int(found)


class PostgresLedger(BatchWriter):
    def __init__(self, dsn: str, *, batch_size: int = 256, flush_interval_seconds: float = 0.2,
                 connect_timeout_seconds: float = 10.0, journal: Journal | None = None) -> None:
        super().__init__(batch_size=batch_size, flush_interval_seconds=flush_interval_seconds, journal=journal)
        if not dsn:
            from .._exceptions import ConfigError

            raise ConfigError("ledger.dsn: required when ledger.backend is 'postgres' "
                              "(e.g. postgresql://tierroute@db:5432/tierroute)")
        self.dsn = dsn
        self._connect_timeout = connect_timeout_seconds
        self._conn: Any = None
        self.start()

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install
            from .._exceptions import ConfigError

            raise ConfigError("ledger.backend is 'postgres' but psycopg is not installed; install tierroute[postgres]") from exc
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)))

    # -- writer thread -------------------------------------------------------------------------------
    def open(self) -> None:
        self._conn = self._connect()
        migrate(self._conn)

    def write_batch(self, rows: Sequence[LedgerEntry | Feedback | Judgment], *, replayed: bool = False) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()  # reconnect after a database restart; the batch is retried
        entries, feedback = split_rows(rows)
        judged = judgment_rows(rows)
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                if entries and replayed:
                    cur.executemany(_INSERT_MISSING, [(*r, r[_REQUEST_ID], r[_ATTEMPT]) for r in entries])
                elif entries:
                    cur.executemany(_INSERT, entries)
                if feedback:
                    cur.executemany(_INSERT_FEEDBACK, feedback)
                if judged:
                    cur.executemany(_INSERT_JUDGMENT, judged)
        except Exception:
            if self._conn.broken:
                self._conn.close()
            raise

    def is_bad_row(self, exc: Exception) -> bool:
        import psycopg

        return super().is_bad_row(exc) or isinstance(exc, (psycopg.DataError, psycopg.IntegrityError))

    def close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()

    # Readers use their own short-lived connection, beside the writer.
    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._connect() as conn:
            return conn.execute(sql, params).fetchall()

    def stats_rows(self, since_ts: float | None = None) -> list[StatsRow]:
        sql = f"SELECT {', '.join(STATS_COLUMNS)} FROM requests WHERE ts >= %s"
        return [StatsRow(*row) for row in self._read(sql, (since_ts or 0.0,))]

    def entries(self, since_ts: float | None = None, limit: int | None = None) -> list[LedgerEntry]:
        sql = f"SELECT {', '.join(map(_quoted, COLUMNS))} FROM requests WHERE ts >= %s ORDER BY id"
        params: list[object] = [since_ts or 0.0]
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        return [LedgerEntry(*row) for row in self._read(sql, params)]

    def labelled(self, since_ts: float | None = None) -> list[Labelled]:
        rows = self._read(LABELLED_SQL.format(true="TRUE", param="%s"), (since_ts or 0.0,))
        return [Labelled(*row) for row in rows]

    def judgments(self, since_ts: float | None = None) -> list[Judgment]:
        return [Judgment(*row) for row in self._read(JUDGMENTS_SQL.format(param="%s"), (since_ts or 0.0,))]
