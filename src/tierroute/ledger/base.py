"""The ledger interface: every request and every attempt, recorded off the request path.

``record`` only appends to an in-memory queue; one writer thread per ledger drains it in batches, one
transaction per batch, so a slow disk never slows a request and a crash loses at most the batch in flight.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Protocol, runtime_checkable

log = logging.getLogger("tierroute.ledger")


@dataclass(slots=True)
class LedgerEntry:
    """One attempt at one request. ``final`` marks the attempt whose outcome the caller saw."""

    request_id: str
    ts: float
    requested_model: str
    chosen_model: str | None = None
    deployment: str | None = None
    attempt: int = 1
    final: bool = True
    caller: str | None = None
    user: str | None = None
    reason: str | None = None
    policy: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    overhead_ms: float | None = None
    status: str = "ok"
    error_kind: str | None = None
    http_status: int = 200
    stream: bool = False
    tags: str | None = None
    prompt: str | None = None
    # True when the token counts are tierroute's (the server reported no usage), not the server's.
    usage_estimated: bool = False


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LedgerEntry))


@dataclass(frozen=True, slots=True)
class Feedback:
    """A quality label for an answered request (0 = useless, 1 = right), e.g. from a user or an evaluator."""

    request_id: str
    ts: float
    score: float
    source: str | None = None


FEEDBACK_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Feedback))


@dataclass(frozen=True, slots=True)
class Labelled:
    """An answered request with its quality label: one outcome, ready to export for training."""

    request_id: str
    ts: float
    model: str
    prompt: str | None
    cost_usd: float
    score: float


def split_rows(rows: Sequence[LedgerEntry | Feedback]) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(request rows, feedback rows) of one batch, for backends that write both in one transaction."""
    entries = [entry_row(r) for r in rows if isinstance(r, LedgerEntry)]
    feedback = [(f.request_id, f.ts, f.score, f.source) for f in rows if isinstance(f, Feedback)]
    return entries, feedback


_ROW = attrgetter(*COLUMNS)


def entry_row(entry: LedgerEntry) -> tuple[object, ...]:
    # Not dataclasses.astuple: it deep-copies every field, ~4% of the gateway's CPU under load.
    return _ROW(entry)


@dataclass(frozen=True, slots=True)
class StatsRow:
    """The columns ``tierroute stats`` needs, read back from any backend."""

    chosen_model: str | None
    status: str
    final: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    baseline_cost_usd: float
    latency_ms: float
    ttft_ms: float | None
    overhead_ms: float | None
    usage_estimated: bool = False


STATS_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(StatsRow))


@runtime_checkable
class Ledger(Protocol):
    def record(self, entry: LedgerEntry) -> None:
        """Queue ``entry`` for writing; never blocks on I/O."""
        ...

    def flush(self, timeout_seconds: float = 10.0) -> None:
        """Block until everything recorded so far is durable."""
        ...

    def close(self) -> None: ...

    def stats_rows(self, since_ts: float | None = None) -> list[StatsRow]: ...

    def entries(self, since_ts: float | None = None, limit: int | None = None) -> list[LedgerEntry]: ...

    def record_feedback(self, feedback: Feedback) -> None:
        """Queue a quality label; never blocks on I/O."""
        ...

    def labelled(self, since_ts: float | None = None) -> list[Labelled]:
        """Answered requests that have feedback, with the mean of their scores."""
        ...


class BatchWriter:
    """A writer thread that drains queued entries into ``write_batch`` one batch (one transaction) at a time.

    Subclasses implement ``open`` (run on the writer thread, for drivers that pin connections to threads),
    ``write_batch`` and ``close_connection``.
    """

    def __init__(self, *, batch_size: int = 256, flush_interval_seconds: float = 0.2) -> None:
        self._queue: queue.SimpleQueue[LedgerEntry | Feedback | threading.Event | None] = queue.SimpleQueue()
        self._batch_size = batch_size
        self._interval = flush_interval_seconds
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}-writer", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def record(self, entry: LedgerEntry) -> None:
        if self._closed:
            raise RuntimeError("ledger is closed")
        self._queue.put(entry)

    def record_feedback(self, feedback: Feedback) -> None:
        if self._closed:
            raise RuntimeError("ledger is closed")
        self._queue.put(feedback)

    def flush(self, timeout_seconds: float = 10.0) -> None:
        if self._closed:
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout_seconds):
            raise TimeoutError(f"ledger did not flush within {timeout_seconds} s")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    # -- writer thread -------------------------------------------------------------------------------
    def open(self) -> None:
        raise NotImplementedError

    def write_batch(self, rows: Sequence[LedgerEntry | Feedback]) -> None:
        """Write one batch in one transaction (``split_rows`` separates the two kinds)."""
        raise NotImplementedError

    def close_connection(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self.open()
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stop = False
        while not stop:
            items = [self._queue.get()]
            # Sleep out the interval, then take everything queued. Waiting on the queue instead would wake
            # this thread on every record(): a thread switch per request, a quarter of the gateway's CPU.
            if isinstance(items[0], (LedgerEntry, Feedback)):
                time.sleep(self._interval)
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in items if isinstance(item, (LedgerEntry, Feedback))]
            for i in range(0, len(batch), self._batch_size):
                self._write_with_retry(batch[i:i + self._batch_size])
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
                elif item is None:
                    stop = True
        # Drain anything recorded before close() so a clean shutdown loses nothing.
        rest: list[LedgerEntry | Feedback] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, (LedgerEntry, Feedback)):
                rest.append(item)
            elif isinstance(item, threading.Event):
                item.set()
        if rest:
            self._write_with_retry(rest)
        self.close_connection()

    def _write_with_retry(self, batch: list[LedgerEntry | Feedback]) -> None:
        delay = 0.05
        for attempt in range(6):
            try:
                self.write_batch(batch)
                return
            except Exception:  # noqa: BLE001 - a ledger write failure must not kill the writer
                log.exception("ledger write of %d entries failed (attempt %d)", len(batch), attempt + 1)
                time.sleep(delay)
                delay *= 2
        log.error("dropping %d ledger entries after repeated write failures", len(batch))
