"""The settlement journal: what an answered request still owes the ledger and the budgets, on local disk.

The ledger writes in batches off the request path, and settlement needs the shared store; either can be
lost when the process dies or the store is down. So before a request's entries are queued and before its
budget hold is settled, one line is appended to this journal: a plain ``write`` per turn of the event loop
(no fsync: the page cache survives the process, SIGKILL and OOM included; see "Durability" in
docs/cost-control.md). When the
ledger has committed the entries, or the store has taken the settlement, the line is *done*. Whatever is
not done when a process dies is replayed by the next process that finds its journal: the ledger inserts a
replayed row only if ``(request_id, attempt)`` is not there yet, and a replayed settlement charges only a
hold that is still live or expired unsettled (see ``state.base``), so replay never counts anything twice.

Layout: one directory shared by the gateway processes of a host. Each process (*owner*) holds an
exclusive ``flock`` on ``<owner>.lock`` for its lifetime and appends to ``<owner>.<n>.log`` segments,
starting a new one every ``segment_seconds``; a segment is deleted once it is closed and all its lines are
done. A lock that can be taken belongs to a dead process: its segments are renamed into the taker's own
name (atomic, so only one process adopts them) and replayed through the handlers registered per kind.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("tierroute.journal")

LEDGER_ENTRY = "L"
SETTLEMENT = "S"

Handler = Callable[[Any, "Segment"], None]


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=repr)
    except TypeError:  # an integer beyond 64 bits (absurd usage, which the ledger quarantines): keep it exact
        return json.dumps(value, default=repr).encode()


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


@dataclass(slots=True, eq=False)
class Segment:
    """One log file; a line's *mark* is its segment, handed back to :meth:`Journal.done`."""

    path: str
    fd: int = -1
    opened: float = 0.0
    outstanding: int = 0
    closed: bool = False


class Journal:
    def __init__(self, directory: str | os.PathLike[str], *, segment_seconds: float = 1.0,
                 adopt_every_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        # Locked under a temporary name, then renamed into place: another process never sees the lock file
        # unlocked, which would read as "owner dead" and hand this live journal to it.
        claiming = self.directory / f".{self.owner}.claim"
        self._lock_fd = os.open(claiming, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(claiming, self.directory / f"{self.owner}.lock")
        self._segment_seconds = segment_seconds
        self._adopt_every = adopt_every_seconds
        self._clock = clock
        self._mutex = threading.Lock()  # the writer thread marks lines done while the event loop appends
        self._segment: Segment | None = None
        self._buffer: list[bytes] = []  # lines of this event loop iteration, all for the current segment
        self._numbers = 0
        self._handlers: dict[str, Handler] = {}
        self._next_adopt = 0.0
        self._closed = False

    def on(self, kind: str, handler: Handler) -> None:
        """Who replays lines of ``kind`` found in a dead process's journal: ``handler(payload, mark)``."""
        self._handlers[kind] = handler

    # -- the request path ----------------------------------------------------------------------------
    def append(self, kind: str, payload: Any) -> Segment:
        """Append one line and return its mark.

        On an event loop the lines of one loop iteration are written together by one ``write`` at the end
        of it (``call_soon``): a request's entry and settlement, and under load many requests', share a
        system call. So a line reaches the page cache by the next turn of the loop (typically well under a
        millisecond after it was appended); elsewhere it is written at once.
        """
        line = _dumps((kind, payload)) + b"\n"
        with self._mutex:
            segment = self._segment
            if segment is None or self._clock() - segment.opened >= self._segment_seconds:
                segment = self._rotate()
            segment.outstanding += 1
            if self._buffer:
                self._buffer.append(line)
                return segment
            try:
                asyncio.get_running_loop().call_soon(self._flush)
            except RuntimeError:  # no event loop here: write now
                self._write(segment, line)
                return segment
            self._buffer.append(line)
        return segment

    def _flush(self) -> None:
        with self._mutex:
            self._flush_locked()

    def flush(self) -> None:
        """Write what this loop iteration appended now, not at its end: the router calls it once a request is
        recorded and settled, so its lines are on their way to disk before its answer leaves. Nearly free
        when the iteration's write already happened (an await in between), which is the common case."""
        if self._buffer:
            self._flush()

    def _flush_locked(self) -> None:
        if self._buffer and self._segment is not None:
            lines, self._buffer = self._buffer, []
            self._write(self._segment, b"".join(lines))

    @staticmethod
    def _write(segment: Segment, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(segment.fd, view):]

    def done(self, mark: Segment, count: int = 1) -> None:
        with self._mutex:
            mark.outstanding -= count
            if mark.closed and mark.outstanding <= 0:
                self._remove(mark)

    def quarantine(self, kind: str, payload: Any, reason: str) -> None:
        """Keep a line no backend will take (e.g. a row the database rejects) for a human to look at."""
        line = _dumps({"kind": kind, "reason": reason, "payload": payload}) + b"\n"
        with self._mutex, open(self.directory / "quarantine.jsonl", "ab") as f:
            f.write(line)

    # -- segments ------------------------------------------------------------------------------------
    def _rotate(self) -> Segment:
        old = self._segment
        if old is not None:
            self._flush_locked()  # its buffered lines belong to it
            os.close(old.fd)
            old.fd, old.closed = -1, True
            if old.outstanding <= 0:
                self._remove(old)
        self._numbers += 1
        path = str(self.directory / f"{self.owner}.{self._numbers:08d}.log")
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        self._segment = Segment(path=path, fd=fd, opened=self._clock())
        return self._segment

    @staticmethod
    def _remove(segment: Segment) -> None:
        try:
            os.unlink(segment.path)
        except FileNotFoundError:
            pass

    def pending_segments(self) -> list[str]:
        """Segment files in the directory not yet done (every owner's): for tests and operators."""
        return sorted(str(p) for p in self.directory.glob("*.log"))

    # -- recovery ------------------------------------------------------------------------------------
    def maybe_adopt(self) -> int:
        """Every ``adopt_every_seconds`` (and on the first call), :meth:`adopt`; one clock read otherwise."""
        now = self._clock()
        if now < self._next_adopt:
            return 0
        self._next_adopt = now + self._adopt_every
        return self.adopt()

    def adopt(self) -> int:
        """Replay the undone lines of every dead process's journal through the handlers; returns how many."""
        replayed = 0
        for lock_path in sorted(self.directory.glob("*.lock")):
            owner = lock_path.name[:-len(".lock")]
            if owner == self.owner:
                continue
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its owner is alive
                segments = self._take_segments(owner)
                os.unlink(lock_path)  # before unlocking: whoever opened it meanwhile finds nothing left
            finally:
                os.close(fd)
            for segment in segments:
                replayed += self._replay(segment)
        if replayed:
            log.warning("replayed %d journal lines left by processes that died", replayed)
        return replayed

    def _take_segments(self, owner: str) -> list[Segment]:
        taken = []
        for path in sorted(self.directory.glob(f"{owner}.*.log")):
            with self._mutex:
                self._numbers += 1
                mine = self.directory / f"{self.owner}.{self._numbers:08d}.log"
            os.rename(path, mine)  # atomic: from now on this segment is ours alone
            taken.append(Segment(path=str(mine), closed=True))
        return taken

    def _replay(self, segment: Segment) -> int:
        lines = Path(segment.path).read_bytes().splitlines()
        records = []
        for line in lines:
            try:
                kind, payload = _loads(line)
            except (ValueError, TypeError):
                log.error("journal %s: skipping an unreadable line (%d bytes)", segment.path, len(line))
                continue
            records.append((kind, payload))
        with self._mutex:
            segment.outstanding = len(records)
        if not records:
            self._remove(segment)
            return 0
        for kind, payload in records:
            handler = self._handlers.get(kind)
            if handler is None:
                log.error("journal %s: no one replays %r lines here (configuration changed?); "
                          "quarantined", segment.path, kind)
                self.quarantine(kind, payload, "no handler for this kind in the adopting process")
                self.done(segment)
                continue
            try:
                handler(payload, segment)
            except Exception as exc:  # noqa: BLE001 - e.g. a line from a newer version with more columns
                log.exception("journal %s: could not replay a %r line; quarantined", segment.path, kind)
                self.quarantine(kind, payload, f"replay failed: {type(exc).__name__}: {exc}")
                self.done(segment)
        return len(records)

    def close(self) -> None:
        """Clean shutdown: delete the journal when everything is done, else leave it for the next process."""
        if self._closed:
            return
        self._closed = True
        with self._mutex:
            self._flush_locked()
            segment, self._segment = self._segment, None
            if segment is not None:
                os.close(segment.fd)
                segment.fd, segment.closed = -1, True
                if segment.outstanding <= 0:
                    self._remove(segment)
            left = list(self.directory.glob(f"{self.owner}.*.log"))
        if not left:
            os.unlink(self.directory / f"{self.owner}.lock")
        os.close(self._lock_fd)  # releases the flock: a later process adopts whatever is left
