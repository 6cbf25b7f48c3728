"""The ledger interface: every request and every attempt, recorded off the request path.

``record`` only appends to an in-memory queue (and, with a journal, one line to a local file); one writer
thread per ledger drains it in batches, one transaction per batch, so a slow disk never slows a request.
Without a journal a crash loses the batch in flight; with one, nothing (see ``tierroute.journal``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Protocol, runtime_checkable

from ..journal import LEDGER_ENTRY, Journal, Segment

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
    usage_note: str | None = None  # why the provider's usage was suspect and how it was clamped
    arm: str | None = None  # the router.experiment arm that decided this request (A/B between routers)


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
class Judgment:
    """One evaluation of a routed answer (``tierroute.evals``): the pair's arms, the judge, its verdict (win,
    tie, loss for the routed arm; skipped; good or bad for user feedback; degraded or restored for the quality
    guard's decisions) and what the evaluation cost. ``detail`` is JSON."""

    request_id: str
    ts: float
    route: str | None
    routed_model: str | None
    reference_model: str | None
    judge: str
    verdict: str
    judge_cost_usd: float = 0.0
    reference_cost_usd: float = 0.0
    detail: str | None = None


JUDGMENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Judgment))


def judgment_rows(rows: Sequence[object]) -> list[tuple[object, ...]]:
    return [tuple(getattr(j, c) for c in JUDGMENT_COLUMNS) for j in rows if isinstance(j, Judgment)]


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

    def record_judgment(self, judgment: Judgment) -> None:
        """Queue an evaluation's judgment; never blocks on I/O."""
        ...

    def judgments(self, since_ts: float | None = None) -> list[Judgment]: ...


@dataclass(slots=True)
class Journaled:
    """A queued entry with its journal mark; ``replayed`` when it comes from a dead process's journal."""

    entry: LedgerEntry
    mark: Segment
    replayed: bool = False


Item = LedgerEntry | Feedback | Judgment | Journaled

# How long a batch that keeps failing (the database is down) waits before its next try, at most.
MAX_RETRY_DELAY_SECONDS = 5.0


class BatchWriter:
    """A writer thread that drains queued entries into ``write_batch`` one batch (one transaction) at a time.

    Subclasses implement ``open`` (run on the writer thread, for drivers that pin connections to threads),
    ``write_batch``, ``is_bad_row`` and ``close_connection``.

    With a :class:`~tierroute.journal.Journal`, ``record`` first appends the entry to it, and the writer
    marks it done once committed: a crash then loses nothing (the next process replays the journal), and
    a batch that fails for good stays in the journal and is retried instead of dropped. Without one, a
    crash loses the batch in flight.
    """

    def __init__(self, *, batch_size: int = 256, flush_interval_seconds: float = 0.2,
                 journal: Journal | None = None) -> None:
        self._queue: queue.SimpleQueue[Item | threading.Event | None] = queue.SimpleQueue()
        self._batch_size = batch_size
        self._interval = flush_interval_seconds
        self._journal = journal
        self._backlog: list[Item] = []  # batches the database refused for now; retried between batches
        self._next_backlog_try = 0.0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}-writer", daemon=True)
        self._closed = False
        if journal is not None:
            journal.on(LEDGER_ENTRY, self._replayed)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def record(self, entry: LedgerEntry) -> None:
        if self._closed:
            raise RuntimeError("ledger is closed")
        journal = self._journal
        if journal is None:
            self._queue.put(entry)
            return
        try:
            mark = journal.append(LEDGER_ENTRY, entry_row(entry))
        except OSError as exc:  # a full disk must not fail the answer; this entry is just not crash-proof
            log.error("could not journal ledger entry %s: %s", entry.request_id, exc)
            self._queue.put(entry)
            return
        self._queue.put(Journaled(entry, mark))

    def _replayed(self, payload: Any, mark: Segment) -> None:
        self._queue.put(Journaled(LedgerEntry(*payload), mark, replayed=True))

    def record_feedback(self, feedback: Feedback) -> None:
        if self._closed:
            raise RuntimeError("ledger is closed")
        self._queue.put(feedback)

    def record_judgment(self, judgment: Judgment) -> None:
        # Not journaled: a judgment lost in a crash costs one sample, never a charge or a request row.
        if self._closed:
            raise RuntimeError("ledger is closed")
        self._queue.put(judgment)

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

    def write_batch(self, rows: Sequence[LedgerEntry | Feedback | Judgment], *, replayed: bool = False) -> None:
        """Write one batch in one transaction (``split_rows`` and ``judgment_rows`` separate the kinds). With ``replayed``,
        skip request rows whose ``(request_id, attempt)`` is already there: replay never duplicates."""
        raise NotImplementedError

    def is_bad_row(self, exc: Exception) -> bool:
        """Whether ``exc`` means the data was refused (retrying cannot help), not that the database failed."""
        return isinstance(exc, (OverflowError, ValueError, TypeError))

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
            if not isinstance(items[0], threading.Event) and items[0] is not None:
                time.sleep(self._interval)
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in items if not isinstance(item, threading.Event) and item is not None]
            if self._backlog and time.monotonic() >= self._next_backlog_try:
                batch, self._backlog = self._backlog + batch, []
            for i in range(0, len(batch), self._batch_size):
                self._write(batch[i:i + self._batch_size], final=stop)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
                elif item is None:
                    stop = True
        # Drain anything recorded before close() so a clean shutdown loses nothing.
        rest: list[Item] = list(self._backlog)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, threading.Event):
                item.set()
            elif item is not None:
                rest.append(item)
        if rest:
            self._write(rest, final=True)
        self.close_connection()

    def _write(self, batch: list[Item], *, final: bool) -> None:
        """Write a batch; on a data error find the bad rows one by one and quarantine only them."""
        rows = [item.entry if isinstance(item, Journaled) else item for item in batch]
        replayed = any(isinstance(item, Journaled) and item.replayed for item in batch)
        delay = 0.05
        for attempt in range(6):
            try:
                self.write_batch(rows, replayed=replayed)
                self._written(batch)
                return
            except Exception as exc:  # noqa: BLE001 - a ledger write failure must not kill the writer
                if self.is_bad_row(exc):
                    if len(batch) == 1:
                        self._quarantine(batch[0], exc)
                    else:
                        for item in batch:
                            self._write([item], final=final)
                    return
                log.warning("ledger write of %d entries failed (attempt %d): %s: %s", len(batch), attempt + 1,
                            type(exc).__name__, exc)
                time.sleep(delay)
                delay *= 2
        self._gave_up(batch, final=final)

    def _written(self, batch: list[Item]) -> None:
        journal = self._journal
        if journal is None:
            return
        for item in batch:
            if isinstance(item, Journaled):
                journal.done(item.mark)

    def _quarantine(self, item: Item, exc: Exception) -> None:
        entry = item.entry if isinstance(item, Journaled) else item
        reason = f"{type(exc).__name__}: {exc}"
        log.error("ledger refused a row (%s); quarantined, the rest of its batch is written: %r", reason, entry)
        if self._journal is not None:
            self._journal.quarantine(LEDGER_ENTRY, list(entry_row(entry)) if isinstance(entry, LedgerEntry)
                                     else repr(entry), reason)
            self._written([item])

    def _gave_up(self, batch: list[Item], *, final: bool) -> None:
        journaled = [item for item in batch if isinstance(item, Journaled)]
        if journaled and not final:
            self._backlog.extend(journaled)
            self._next_backlog_try = time.monotonic() + MAX_RETRY_DELAY_SECONDS
            log.error("ledger write of %d entries keeps failing; they stay in the journal and are retried",
                      len(journaled))
        elif journaled:
            log.error("ledger write of %d entries failed at shutdown; they stay in the journal for the next "
                      "process", len(journaled))
        lost = len(batch) - len(journaled)
        if lost:
            log.error("dropping %d ledger entries after repeated write failures", lost)
