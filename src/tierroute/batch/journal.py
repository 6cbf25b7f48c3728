"""The output file, which is also the job's journal: a line is done exactly when its output line is on disk.

Output lines are appended in group commits: whatever results are ready go out in one ``write`` of whole
lines, then one ``fsync``, so a crash can tear at most the last line, never interleave two. On resume the
file is scanned once: a torn last line is cut off, and the line numbers already answered are kept in a
bitmap (one bit per input line: 125 KB for a million lines), so they are not sent again.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._exceptions import InvalidRequest, TierrouteError

# Errors that --retry-failed does not retry: resending the same malformed line cannot succeed.
PERMANENT_CODES = frozenset({"invalid_line"})
DEFAULT_MAX_PENDING = 256  # results waiting for the disk before appenders wait


class LineSet:
    """A growable bitmap of line numbers."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, line: int) -> None:
        byte = line >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte - len(self._bits) + 1 + (len(self._bits) >> 2)))
        self._bits[byte] |= 1 << (line & 7)

    def __contains__(self, line: int) -> bool:
        byte = line >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (line & 7)))


@dataclass(slots=True)
class Prior:
    """What an earlier run of the same job left in the output file."""

    done: LineSet = field(default_factory=LineSet)
    lines: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    truncated_bytes: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # failures by error code


def _scan(path: str) -> Iterator[tuple[int, bytes]]:
    """(offset after the line, line) for each complete line; a torn tail (no newline) is not yielded."""
    offset = 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                return
            offset += len(raw)
            yield offset, raw


def _is_failure(record: dict[str, Any]) -> bool:
    return record.get("error") is not None


def read_prior(path: str, *, retry_failed: bool = False) -> Prior:
    """Scan an existing output file: what is done, what it cost; cut a torn last line off the file.

    With ``retry_failed``, failed lines (other than malformed input) are dropped from the file, through a
    temporary copy renamed over it, so they run again and each input line still has one output line."""
    prior = Prior()
    if not os.path.exists(path):
        return prior
    keep_to = 0
    tmp = f"{path}.retry-tmp" if retry_failed else None
    out = open(tmp, "wb") if tmp else None
    try:
        for offset, raw in _scan(path):
            keep_to = offset
            try:
                record = orjson.loads(raw)
                meta = record["tierroute"]
                line = int(meta["line"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise InvalidRequest(f"{path}: line {prior.lines + 1} is not a tierroute batch output line; "
                                     "refusing to resume into a file another program wrote") from None
            failed = _is_failure(record)
            if failed and retry_failed and (record["error"] or {}).get("code") not in PERMANENT_CODES:
                continue
            prior.done.add(line)
            prior.lines += 1
            prior.failed += failed
            if failed:
                prior.reasons[str((record["error"] or {}).get("code") or "error")] += 1
            prior.cost_usd += float(meta.get("cost_usd") or 0.0)
            prior.baseline_cost_usd += float(meta.get("baseline_cost_usd") or 0.0)
            if out is not None:
                out.write(raw)
        size = os.path.getsize(path)
        prior.truncated_bytes = size - keep_to
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
            out.close()
            out = None
            os.replace(tmp, path)  # type: ignore[arg-type]
            _fsync_dir(path)
        elif prior.truncated_bytes:
            with open(path, "r+b") as f:
                f.truncate(keep_to)
                os.fsync(f.fileno())
    finally:
        if out is not None:
            out.close()
            os.unlink(tmp)  # type: ignore[arg-type]
    return prior


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(path: str) -> None:
    """Refuse an output path that cannot be written, before any request is sent (and so before any spend)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InvalidRequest(f"--out {path}: is a directory")
    if os.path.exists(path) and not os.path.isfile(path):
        raise InvalidRequest(f"--out {path}: not a regular file (the output is also the job's journal)")
    if not os.path.isdir(directory):
        raise InvalidRequest(f"--out {path}: the directory {directory} does not exist")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(fd)
    except OSError as exc:
        raise InvalidRequest(f"--out {path}: cannot be written ({exc.strerror})") from None


class OutputJournal:
    """Appends output lines durably. ``append`` returns a future that resolves once the line is fsync'd."""

    def __init__(self, path: str, *, fsync: bool = True, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.path = path
        # Answered lines not yet on disk are lost (and re-sent) in a crash: bounding them bounds the repeats.
        self._max_pending = max(1, max_pending)
        self._fsync = fsync
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fsync_dir(path)
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self._failed: TierrouteError | None = None
        self._writer = asyncio.create_task(self._run())

    async def append(self, line: bytes) -> asyncio.Future[None]:
        """Queue one output line; raises once writing has failed (a full disk), so the batch stops."""
        while self._failed is None and len(self._pending) >= self._max_pending:
            self._room.clear()
            await self._room.wait()
        if self._failed is not None:
            raise self._failed
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(line)
        self._waiters.append(future)
        self._wake.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            data, waiters = b"".join(self._pending), self._waiters
            self._pending, self._waiters = [], []
            self._room.set()
            try:
                await asyncio.to_thread(self._write, data)
            except OSError as exc:
                self._failed = TierrouteError(f"--out {self.path}: writing failed ({exc.strerror or exc}); the lines "
                                              "on disk are kept: free the space and run the same command again")
                for w in waiters:
                    w.cancel()  # never durable; append() and aclose() raise the error itself
                self._room.set()
                return
            for w in waiters:
                if not w.done():
                    w.set_result(None)
            self._wake.set()  # loop once more: pick up what arrived during the write, or finish closing

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._fsync:
            os.fsync(self._fd)

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()
        try:
            await self._writer
        finally:
            os.close(self._fd)
        if self._failed is not None:
            raise self._failed
