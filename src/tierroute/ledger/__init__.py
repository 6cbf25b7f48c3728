"""Ledgers: where every request, attempt, token and cent is recorded."""

from __future__ import annotations

from ..config import LedgerSettings
from ..journal import Journal
from .base import BatchWriter, Ledger, LedgerEntry, StatsRow
from .sqlite import SQLiteLedger


def open_ledger(settings: LedgerSettings, *, journal: Journal | None = None) -> Ledger | None:
    """The ledger backend named by ``ledger.backend`` (None for ``none``), journaling into ``journal``."""
    if settings.backend == "none":
        return None
    if settings.backend == "postgres":
        from .postgres import PostgresLedger

        return PostgresLedger(settings.dsn or "", batch_size=settings.batch_size,
                              flush_interval_seconds=settings.flush_interval_seconds, journal=journal)
    return SQLiteLedger(settings.path, batch_size=settings.batch_size, flush_interval_seconds=settings.flush_interval_seconds,
                        journal=journal)


__all__ = ["BatchWriter", "Ledger", "LedgerEntry", "SQLiteLedger", "StatsRow", "open_ledger"]
