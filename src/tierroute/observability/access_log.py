"""The access log: one line per request on the ``tierroute.access`` logger, JSON or key=value text.

Levels mean something: INFO for an answered request, WARNING for a refusal (4xx), an upstream failure (the
request's, and one line per failed attempt) or a stream that ended in error, ERROR for an internal error (a 500
the upstreams did not cause). Lines carry ids, models, counts, money and times; never a prompt, an answer or a
key (the caller is its ``key-<hash>`` id).

Lines are rendered once, by us. With no handler configured for the logger, they skip the logging machinery
(no LogRecord, no formatter) and go to a deque that a writer thread drains to stdout every
:data:`WRITE_INTERVAL_SECONDS`, one write per batch: the event loop never blocks on a slow stdout and the gateway
pays no thread wake-up per request. An operator who configures the logger's handlers (dictConfig) gets records
through them instead.
"""

from __future__ import annotations

import collections
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

LOGGER_NAME = "tierroute.access"
WRITE_INTERVAL_SECONDS = 0.05
MAX_PENDING_LINES = 100_000  # past this (stdout stuck), the oldest unwritten lines are dropped: memory stays bounded


class LineWriter:
    """Writes queued lines to a stream from a daemon thread, in batches."""

    def __init__(self, stream: TextIO, interval_seconds: float = WRITE_INTERVAL_SECONDS) -> None:
        self._stream = stream
        self._interval = interval_seconds
        self.lines: collections.deque[str] = collections.deque(maxlen=MAX_PENDING_LINES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tierroute-access-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        lines = self.lines
        batch = []
        while lines:
            batch.append(lines.popleft())
        if batch:
            try:
                self._stream.write("\n".join(batch) + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # stdout closed or gone: the gateway keeps serving
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class RequestRecord:
    """What one request did, filled in as it goes: by the gateway (route, status) and the router (the rest)."""

    __slots__ = ("route", "method", "started", "status", "request_id", "caller", "requested_model", "model",
                 "deployment", "attempts", "outcome", "prompt_tokens", "completion_tokens", "cost_usd", "overhead_ms",
                 "stream", "reason", "error", "upstream_status", "span", "client_trace")

    def __init__(self, route: str, method: str, started: float) -> None:
        self.route = route
        self.method = method
        self.started = started
        self.status = 0
        self.request_id: str | None = None
        self.caller: str | None = None
        self.requested_model: str | None = None
        self.model: str | None = None
        self.deployment: str | None = None
        self.attempts = 0
        self.outcome: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.overhead_ms: float | None = None
        self.stream = False
        self.reason: str | None = None
        self.error: str | None = None  # the error kind or refusal code
        self.upstream_status: int | None = None
        self.span: Any = None
        self.client_trace: str | None = None


_LEVEL_NAMES = {logging.INFO: "INFO", logging.WARNING: "WARNING", logging.ERROR: "ERROR"}


class _Timestamps:
    """ISO 8601 UTC with milliseconds; the seconds part is formatted once per second, not per line."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._millisecond = -1
        self._last = ""

    def __call__(self, ts: float) -> str:
        millisecond = int(ts * 1000)
        if millisecond == self._millisecond:  # under load, many lines a millisecond
            return self._last
        second = millisecond // 1000
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._millisecond, self._last = millisecond, f"{self._prefix}.{millisecond % 1000:03d}Z"
        return self._last


_MAX_REMEMBERED = 4096
_PLAIN = re.compile(r'[^\s"=\\]+')


def _value(value: str) -> str:
    """A text-format value: bare when it holds no space, quote, ``=`` or backslash, else quoted and escaped
    (newlines too, so a client-chosen value cannot forge a line)."""
    if _PLAIN.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _text(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        parts.append(f"{key}={value:.6g}" if isinstance(value, float) else f"{key}={_value(str(value))}")
    return " ".join(parts)


class AccessLog:
    """Renders and emits access-log lines in one format (``json`` or ``text``)."""

    def __init__(self, fmt: str, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.logger = logging.getLogger(LOGGER_NAME)
        self._render: Callable[[dict[str, Any]], str] = (
            (lambda f: orjson.dumps(f).decode()) if fmt == "json" else _text)
        self._text = fmt != "json"
        self._seen: dict[str, str] = {}  # value -> its text-format form
        self._wall = wall_clock
        self._iso = _Timestamps()
        self._writer: LineWriter | None = None

    # -- lifecycle (the gateway's lifespan) ----------------------------------------------------------
    def start(self) -> None:
        """Write to stdout ourselves unless the operator configured this logger's handlers."""
        logger = self.logger
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        if not logger.handlers and self._writer is None:
            self._writer = LineWriter(sys.stdout)

    def stop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()  # writes what is queued

    def _emit(self, level: int, fields: dict[str, Any]) -> None:
        self._emit_line(level, self._render(fields))

    def _emit_line(self, level: int, line: str) -> None:
        writer = self._writer
        if writer is not None:
            writer.lines.append(line)
        else:
            self.logger.log(level, line)

    # -- lines ---------------------------------------------------------------------------------------
    def request(self, record: RequestRecord, latency_ms: float) -> None:
        level = self._level(record)
        if not self.logger.isEnabledFor(level):
            return
        if self._text:
            self._emit_line(level, self._request_text(record, latency_ms, level))
            return
        fields = {
            "ts": self._iso(self._wall()), "level": logging.getLevelName(level), "event": "request",
            "request_id": record.request_id, "caller": record.caller, "method": record.method,
            "route": record.route, "status": record.status, "outcome": record.outcome,
            "requested_model": record.requested_model, "model": record.model, "deployment": record.deployment,
            "attempts": record.attempts, "stream": record.stream,
            "prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
            "cost_usd": round(record.cost_usd, 10), "latency_ms": round(latency_ms, 3),
            "overhead_ms": round(record.overhead_ms, 3) if record.overhead_ms is not None else None,
            "error": record.error, "upstream_status": record.upstream_status, "reason": record.reason,
            "trace_id": record.client_trace,
        }
        self._emit(level, fields)

    def _request_text(self, record: RequestRecord, latency_ms: float, level: int) -> str:
        """The request line in the text format, as one f-string: the same line ``_text`` makes of the JSON
        format's fields (a test holds them equal), at a fraction of its cost on the request path. Values that
        repeat from line to line (models, routes, reasons) are quoted once and remembered."""
        q = self._quoted
        r = record
        line = (f"ts={self._iso(self._wall())} level={_LEVEL_NAMES[level]} event=request"
                f"{'' if r.request_id is None else ' request_id=' + _value(r.request_id)}"
                f"{'' if r.caller is None else ' caller=' + q(r.caller)}"
                f" method={q(r.method)} route={q(r.route)} status={r.status}"
                f"{'' if r.outcome is None else ' outcome=' + q(r.outcome)}"
                f"{'' if r.requested_model is None else ' requested_model=' + q(r.requested_model)}"
                f"{'' if r.model is None else ' model=' + q(r.model)}"
                f"{'' if r.deployment is None else ' deployment=' + q(r.deployment)}"
                f" attempts={r.attempts} stream={r.stream} prompt_tokens={r.prompt_tokens}"
                f" completion_tokens={r.completion_tokens} cost_usd={round(r.cost_usd, 10):.6g}"
                f" latency_ms={round(latency_ms, 3):.6g}")
        if r.overhead_ms is not None:
            line += f" overhead_ms={round(r.overhead_ms, 3):.6g}"
        if r.error is not None:
            line += f" error={q(r.error)}"
        if r.upstream_status is not None:
            line += f" upstream_status={r.upstream_status}"
        if r.reason is not None:
            line += f" reason={q(r.reason)}"
        if r.client_trace is not None:
            line += f" trace_id={_value(r.client_trace)}"
        return line

    def _quoted(self, value: str) -> str:
        quoted = self._seen.get(value)
        if quoted is None:
            if len(self._seen) >= _MAX_REMEMBERED:  # client-chosen values: bounded, start again
                self._seen.clear()
            quoted = self._seen[value] = _value(value)
        return quoted

    def attempt_failed(self, record: RequestRecord | None, request_id: str, number: int, deployment: str,
                       kind: str, http_status: int | None, latency_ms: float) -> None:
        if not self.logger.isEnabledFor(logging.WARNING):
            return
        fields = {"ts": self._iso(self._wall()), "level": "WARNING", "event": "upstream_attempt_failed",
                  "request_id": request_id, "route": record.route if record is not None else None,
                  "attempt": number, "deployment": deployment, "error": kind, "upstream_status": http_status,
                  "latency_ms": round(latency_ms, 3)}
        self._emit(logging.WARNING, fields)

    @staticmethod
    def _level(record: RequestRecord) -> int:
        status = record.status
        if status >= 500 and record.upstream_status is None and record.error in (None, "internal_error", "error"):
            return logging.ERROR  # nothing upstream explains it: ours
        if status >= 400 or record.outcome == "error" or record.error is not None:
            return logging.WARNING
        return logging.INFO
