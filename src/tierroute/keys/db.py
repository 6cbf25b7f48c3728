"""One connection to the ledger's database (SQLite or PostgreSQL) for the key store and the admin API.

Queries are written with ``?`` placeholders and translated for psycopg. The ledger's own migrations
create the tables (ledger/sqlite.py and ledger/postgres.py, migration 6), so every replica agrees on them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from .._exceptions import ConfigError
from ..config import LedgerSettings


class Database:
    """A locked connection: calls come from the event loop's worker threads and the key poller."""

    def __init__(self, settings: LedgerSettings) -> None:
        if settings.backend == "none":
            raise ConfigError("keys.enabled: virtual keys live in the ledger's database; set ledger.backend to "
                              "sqlite or postgres", param="keys.enabled")
        self.postgres = settings.backend == "postgres"
        self._settings = settings
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._lock:
            self._open()

    def _open(self) -> None:
        if self.postgres:
            import psycopg

            from ..ledger.postgres import migrate

            self._conn = psycopg.connect(self._settings.dsn or "", autocommit=True, connect_timeout=10)
            migrate(self._conn)
        else:
            from pathlib import Path

            from ..ledger.sqlite import _connect, migrate

            if self._settings.path != ":memory:":
                Path(self._settings.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = _connect(self._settings.path)
            migrate(self._conn)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def _ready(self) -> Any:
        if self.postgres and (self._conn is None or self._conn.closed or self._conn.broken):
            self._open()  # the database restarted: reconnect
        return self._conn

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._ready().execute(self._sql(sql), params).fetchall())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yields ``run(sql, params) -> rows``; everything inside commits or rolls back together."""
        with self._lock:
            conn = self._ready()

            def run(sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
                cur = conn.execute(self._sql(sql), params)
                return list(cur.fetchall()) if cur.description else []

            if self.postgres:
                with conn.transaction():
                    yield run
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield run
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.Error)
