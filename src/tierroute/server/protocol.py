"""uvicorn's httptools protocol with the limits a gateway facing hostile clients needs.

httptools accepts request headers of any size (accumulating a long header by repeated ``bytes +=``, so in
time quadratic in its size), and uvicorn never times out a connection that has not finished sending its
headers, nor caps how many connections it holds. :class:`GuardedHttpToolsProtocol` adds, per connection:

* a cap on the request head (request line plus headers) in bytes and in lines, answered with 431;
* a deadline for the head to arrive, from the connection's opening or from a request's first byte after an
  idle keep-alive (slowloris), answered with 408, or a silent close for a connection that sent nothing;
* a cap on open connections: one over it is answered with 503 and closed at once, so the process keeps
  file descriptors to spare and goes on answering the connections it has.

It also sends each response's head with its first body bytes: uvicorn writes the head on
``http.response.start`` and the body on the next message, two writes (two system calls, two TCP segments)
for every answer. :class:`_HeadWithBody` holds the head until the body's first write, or until the end of the
event loop's current pass if no body comes in it (a stream's first token may be far off), so no client waits
for headers longer than before.

It is given to uvicorn as ``http=functools.partial(GuardedHttpToolsProtocol, limits=...)`` (see
:func:`uvicorn_options`); a partial of module-level objects pickles, so ``--workers N`` works too.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import ServerSettings

_END_OF_HEAD = b"\r\n\r\n"
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, server: ServerSettings) -> ConnectionLimits:
        return cls(max_header_bytes=server.max_header_bytes, max_headers=server.max_headers,
                   header_timeout_seconds=server.header_timeout_seconds, max_connections=server.max_connections)


def _error_response(status: int, message: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": None}})
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status], len(body)) + body)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that bounds each request head in size, line count and time."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._reading_head = True  # from a request's first byte until httptools calls on_headers_complete
        self._head_started: float | None = None  # loop time of the current head's first byte
        self._head_bytes = 0
        self._head_lines = 0
        self._tail = b""  # the last bytes seen, so an end of head split across two reads is still found
        # One timer per connection, re-armed when it fires, rather than one per request: a timer per request
        # cost ~2% of the gateway's throughput.
        self._head_timer: asyncio.TimerHandle | None = None

    # -- connection -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            self._refuse(503, f"the gateway holds its maximum of {self._limits.max_connections} connections; "
                              "retry shortly")
            return
        self._head_started = self.loop.time()  # a connection that sends nothing is held to the same deadline
        self._head_timer = self.loop.call_later(self._limits.header_timeout_seconds, self._check_head_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head and not self._head_within_limits(data):
            return
        super().data_received(data)

    # -- httptools callbacks --------------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_started = None
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None:  # not yet running: its task starts on the loop's next pass
            cycle.transport = _HeadWithBody(self.transport, self.loop)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head, self._head_bytes, self._head_lines, self._tail = True, 0, 0, b""

    # -- limits ---------------------------------------------------------------------------------------
    def _head_within_limits(self, data: bytes) -> bool:
        """Count ``data``'s share of the request head before httptools sees it; refuse past the limits."""
        if self._head_started is None:
            self._head_started = self.loop.time()  # the first byte of a request on a kept-alive connection
        tail = self._tail
        window = tail + data if tail else data
        end = window.find(_END_OF_HEAD)
        in_head = len(data) if end < 0 else max(0, end + len(_END_OF_HEAD) - len(tail))
        self._tail = window[-3:]
        self._head_bytes += in_head
        self._head_lines += data.count(b"\n", 0, in_head)
        limits = self._limits
        if self._head_bytes > limits.max_header_bytes:
            self._refuse(431, f"request headers exceed the limit of {limits.max_header_bytes} bytes")
            return False
        if self._head_lines > limits.max_headers + 2:  # the request line and the empty line that ends the head
            self._refuse(431, f"more than {limits.max_headers} request headers")
            return False
        return True

    def _check_head_deadline(self) -> None:
        """The connection's timer: refuse a head that is overdue, else sleep until the current one would be."""
        self._head_timer = None
        if self.transport.is_closing():
            return
        timeout = self._limits.header_timeout_seconds
        started = self._head_started
        now = self.loop.time()
        if started is not None and now - started >= timeout:
            if self._head_bytes == 0 and self.cycle is None:
                self.transport.close()  # opened and never used: nothing to answer
            else:
                self._refuse(408, f"request headers not received within {timeout:g} s")
            return
        wait = timeout if started is None else started + timeout - now
        self._head_timer = self.loop.call_later(wait, self._check_head_deadline)

    def _refuse(self, status: int, message: str) -> None:
        self._reading_head = False
        if not self.transport.is_closing():
            self.transport.write(_error_response(status, message))
            self.transport.close()


class _HeadWithBody:
    """The transport as one request's response cycle sees it: its first write (the response head) is held and
    sent with the second (the body), or at the end of the loop's current pass, whichever comes first."""

    __slots__ = ("_transport", "_loop", "_held", "_first")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._held = data
            self._loop.call_soon(self._flush)
            return
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self._transport.write(data)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def uvicorn_options(server: ServerSettings) -> dict[str, Any]:
    """The uvicorn options that apply ``server:``'s connection limits."""
    return {"http": functools.partial(GuardedHttpToolsProtocol, limits=ConnectionLimits.from_settings(server)),
            "timeout_keep_alive": server.keep_alive_seconds}
