"""A lean keep-alive HTTP/1.1 client: an asyncio protocol feeding httptools' response parser.

It does what a provider call needs and nothing else: POST with a body, Content-Length / chunked / read-to-EOF
responses, a line reader for SSE, TLS with SNI, a pool of keep-alive connections per (scheme, host, port).
No proxies, redirects, cookies or compression negotiation (it sends no ``Accept-Encoding``; a gzip or deflate
body is still decoded by :meth:`FastResponse.read`, up to the same size limit as a plain one).

Bounded memory: a body past ``max_response_bytes`` or a line past ``max_event_bytes`` raises
:class:`~.client.ResponseTooLarge`. Backpressure: once :data:`STREAM_BUFFER_BYTES` are waiting unread, the
connection stops reading from its socket until the reader wants more, so a stream relayed to a client that
stopped reading holds that much here and the rest in the kernel's socket buffers (the upstream then waits).

Timeouts: ``connect_timeout_seconds`` bounds opening a connection; ``total_timeout_seconds`` bounds the
whole exchange, from :meth:`FastClient.post` until the body is read (one timer per request).

A pooled connection the server has quietly closed fails before any response byte arrives; such a request is
sent once more on a fresh connection (it never reached the application). Any other failure is raised.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools

from ..config import ProviderSettings
from .client import ConnectFailed, MalformedResponse, ResponseCutOff, ResponseTooLarge, inflate

KEEPALIVE_SECONDS = 30.0
STREAM_BUFFER_BYTES = 256 * 1024  # unread bytes held before reading from the socket pauses
COMPACT_AFTER_BYTES = 65536  # consumed line bytes dropped from the buffer's front past this
DEFAULT_PORTS = {"http": 80, "https": 443}


class Headers(dict[str, str]):
    """Response headers under lower-cased names; lookups are case-insensitive (a repeated header keeps its
    last value)."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return dict.get(self, name.lower(), default)


class _Stale(ConnectionResetError):
    """The server closed the connection before answering (safe to resend on a fresh connection)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one request/response exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.high_water = STREAM_BUFFER_BYTES
        self._paused = False
        self._start()

    def _start(self) -> None:
        self.status = 0
        self.headers = Headers()
        self.buffer = bytearray()
        self.headers_done = False
        self.complete = False
        self.received = False
        self.error: BaseException | None = None
        self.keep_alive = False
        self._eof_body = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def send(self, data: bytes, deadline: float) -> None:
        self._start()
        self.high_water = STREAM_BUFFER_BYTES
        self._resume()
        self._timer = self._loop.call_at(deadline, self._timed_out)
        self.transport.write(data)  # type: ignore[union-attr]

    async def wait(self) -> None:
        """Until the parser makes progress, the connection ends or the timer fires."""
        if self.error is not None or self.complete:
            return
        self._resume()  # whoever waits wants more bytes
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()

    def finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.closed = True
        self.finish()
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(TimeoutError("upstream request timed out"))
        self.close()

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(MalformedResponse(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.finish()
        if self.complete:
            return
        if self.headers_done and self._eof_body and exc is None:
            self.complete = True  # a body delimited by the end of the connection
            self._wake()
        elif not self.received:
            self._fail(_Stale(f"server closed the connection before answering{f': {exc}' if exc else ''}"))
        else:
            self._fail(ResponseCutOff(f"connection closed mid-response{f': {exc}' if exc else ''}"))

    # -- httptools callbacks -------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        dict.__setitem__(self.headers, name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        headers = self.headers
        self._eof_body = (not dict.__contains__(headers, "content-length")
                          and "chunked" not in dict.get(headers, "transfer-encoding", ""))
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        buffer = self.buffer
        buffer += body
        if len(buffer) > self.high_water and not self._paused and not self.closed:
            self._paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        self.complete = True
        self.finish()
        self._wake()


class _Pool:
    """Idle keep-alive connections to one (scheme, host, port), at most ``max_connections`` open at once."""

    def __init__(self, client: FastClient, scheme: str, host: str, port: int) -> None:
        self._client = client
        self._host = host
        self._port = port
        self._ssl = client.ssl_context if scheme == "https" else None
        self._idle: deque[_Connection] = deque()  # oldest first
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self.size = 0  # open connections, idle or busy

    async def acquire(self, deadline: float, *, fresh: bool = False) -> _Connection:
        """A live idle connection (the most recently used), else a new one once a slot is free.
        ``fresh`` skips the idle ones."""
        loop = self._client.loop
        idle = self._idle
        while idle and not fresh:
            conn = idle.pop()  # the most recently used: the least likely to have been closed
            if conn.closed or conn.transport.is_closing():  # type: ignore[union-attr]
                self._forget(conn)
            elif loop.time() - conn.idle_since > KEEPALIVE_SECONDS:
                self.discard(conn)
            else:
                conn.reused = True
                return conn
        if self.size >= self._client.max_connections:
            conn_or_slot = await self._wait_for_slot(deadline)
            if conn_or_slot is not None:
                if not fresh:
                    conn_or_slot.reused = True
                    return conn_or_slot
                conn_or_slot.close()  # keep its slot for a new connection
        else:
            self.size += 1
        try:
            return await self._connect(deadline)
        except BaseException:
            self._free_slot()
            raise

    async def _wait_for_slot(self, deadline: float) -> _Connection | None:
        """A connection handed over by a request that finished, or None: a slot to open a new one."""
        waiter: asyncio.Future[_Connection | None] = self._client.loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self.release(handed)
            else:
                waiter.cancel()
            raise

    async def _connect(self, deadline: float) -> _Connection:
        client = self._client
        loop = client.loop
        timeout = min(client.connect_timeout, deadline - loop.time())
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None)
        except TimeoutError:
            raise
        except OSError as exc:
            raise ConnectFailed(exc) from exc
        return conn

    def release(self, conn: _Connection) -> None:
        """Back to the pool when the exchange completed on a keep-alive connection; closed otherwise."""
        conn.finish()
        if not (conn.complete and conn.keep_alive and not conn.closed and conn.error is None) or self._client.closed:
            self.discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        now = conn.idle_since = self._client.loop.time()
        idle = self._idle
        while idle and now - idle[0].idle_since > KEEPALIVE_SECONDS:
            self.discard(idle.popleft())
        idle.append(conn)

    def discard(self, conn: _Connection) -> None:
        conn.close()
        self._forget(conn)

    def _forget(self, conn: _Connection) -> None:
        self._free_slot()

    def _free_slot(self) -> None:
        self.size -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.size += 1
                waiter.set_result(None)
                return

    def close(self) -> None:
        while self._idle:
            self.discard(self._idle.pop())


class FastResponse:
    __slots__ = ("_conn", "_pool", "_pos", "_max_body", "_max_line", "headers", "status")

    def __init__(self, conn: _Connection, pool: _Pool, max_body: int, max_line: int) -> None:
        self._conn: _Connection | None = conn
        self._pool = pool
        self._pos = 0
        self._max_body = max_body
        self._max_line = max_line
        self.status = conn.status
        self.headers: Headers = conn.headers

    async def read(self, max_bytes: int | None = None) -> bytes:
        limit = self._max_body if max_bytes is None else max_bytes
        conn = self._connection()
        conn.high_water = limit  # reading pauses just past the limit, and the check below ends it
        while not conn.complete:
            if len(conn.buffer) - self._pos > limit:
                raise ResponseTooLarge(f"body exceeds {limit} bytes", body=conn.buffer, limit=limit)
            if conn.error is not None:
                raise conn.error
            await conn.wait()
        buffer = conn.buffer
        if len(buffer) - self._pos > limit:
            raise ResponseTooLarge(f"body exceeds {limit} bytes", body=buffer, limit=limit)
        body = bytes(buffer[self._pos:]) if self._pos else bytes(buffer)
        conn.buffer = bytearray()  # the copy is the only one kept
        self._pos = 0
        encoding = self.headers.get("content-encoding")
        if encoding in ("gzip", "deflate"):
            body = inflate(body, encoding, limit)
        return body

    async def readline(self, max_bytes: int | None = None) -> bytes:
        conn = self._connection()
        limit = self._max_line if max_bytes is None else max_bytes
        while True:
            buffer = conn.buffer
            end = buffer.find(b"\n", self._pos)
            if end >= 0:
                line = bytes(buffer[self._pos:end + 1])
                self._pos = end + 1
                if self._pos > COMPACT_AFTER_BYTES:
                    del buffer[:self._pos]
                    self._pos = 0
                if len(line) > limit:
                    raise ResponseTooLarge(f"a line exceeds {limit} bytes")
                return line
            if len(buffer) - self._pos > limit:
                raise ResponseTooLarge(f"a line exceeds {limit} bytes")
            if conn.complete:
                rest = bytes(buffer[self._pos:])
                self._pos = len(buffer)
                return rest
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    def _connection(self) -> _Connection:
        if self._conn is None:
            raise RuntimeError("response already released")
        return self._conn

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)


class FastClient:
    """Pooled keep-alive HTTP/1.1 connections; one instance per event loop."""

    def __init__(self, settings: ProviderSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = settings.connect_timeout_seconds
        self.total_timeout = settings.total_timeout_seconds
        self.max_connections = settings.max_connections
        self.max_response_bytes = settings.max_response_bytes
        self.max_event_bytes = settings.max_event_bytes
        self._ssl_context = ssl_context
        self.closed = False
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        # url -> (headers object, pool, request head up to the Content-Length value)
        self._prepared: dict[str, tuple[Mapping[str, str], _Pool, bytes]] = {}

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()  # system CAs; loading them is slow, so lazily
        return self._ssl_context

    def _prepare(self, url: str, headers: Mapping[str, str]) -> tuple[Mapping[str, str], _Pool, bytes]:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"unsupported URL {url!r}")
        host, port = parts.hostname, parts.port or DEFAULT_PORTS[scheme]
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")
        lines = [f"POST {target} HTTP/1.1", f"Host: {host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()
                  if name.lower() not in ("host", "content-length", "transfer-encoding", "connection")]
        head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        prepared = self._prepared[url] = (headers, pool, head)
        return prepared

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> FastResponse:
        if self.closed:
            raise RuntimeError("client is closed")
        prepared = self._prepared.get(url)
        if prepared is None or prepared[0] is not headers:
            prepared = self._prepare(url, headers)
        _, pool, head = prepared
        data = b"%b%d\r\n\r\n%b" % (head, len(body), body)
        deadline = self.loop.time() + self.total_timeout
        conn = await pool.acquire(deadline)
        try:
            return await self._exchange(conn, pool, data, deadline)
        except _Stale:
            if not conn.reused:
                raise
        # A keep-alive connection the server had closed: once more, on a fresh connection.
        conn = await pool.acquire(deadline, fresh=True)
        return await self._exchange(conn, pool, data, deadline)

    async def _exchange(self, conn: _Connection, pool: _Pool, data: bytes, deadline: float) -> FastResponse:
        try:
            conn.send(data, deadline)
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
        except BaseException:
            pool.discard(conn)
            raise
        return FastResponse(conn, pool, self.max_response_bytes, self.max_event_bytes)

    async def aclose(self) -> None:
        self.closed = True
        for pool in self._pools.values():
            pool.close()
