"""``/livez`` and ``/readyz``: the probes an orchestrator polls.

Live: the process serves HTTP (always 200 while it answers). Ready: at least one model can be routed (some
deployment's breaker lets requests through) and each backend a request cannot do without answers: Redis when
the limits store is Redis and fails closed (requests are refused without it), PostgreSQL when it is the ledger.
A fail-open Redis is not required: requests go on with local limits. The answer is cached for
``telemetry.readiness_cache_seconds`` and concurrent probes share one check, so a probe storm costs the
backends at most one check per period. Not ready: 503 with a JSON body naming what is not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
CHECK_TIMEOUT_SECONDS = 2.0


async def _send(send: Callable[[MutableMapping[str, Any]], Awaitable[None]], status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": body})


class Probes:
    def __init__(self, router: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._router = router
        self._clock = clock
        self._ttl = router.settings.telemetry.readiness_cache_seconds
        self._cached: tuple[float, int, bytes] | None = None
        self._running: asyncio.Future[tuple[int, bytes]] | None = None

    async def livez(self, scope: Any, receive: Any, send: Any) -> None:
        await _send(send, 200, b'{"status":"live"}')

    async def readyz(self, scope: Any, receive: Any, send: Any) -> None:
        status, body = await self.readiness()
        await _send(send, status, body)

    async def readiness(self) -> tuple[int, bytes]:
        now = self._clock()
        cached = self._cached
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1], cached[2]
        if self._running is None:  # one check at a time; probes arriving meanwhile wait for its answer
            self._running = asyncio.ensure_future(self._check())
        running = self._running
        try:
            status, body = await asyncio.shield(running)
        finally:
            if self._running is running and running.done():
                self._running = None
        self._cached = (self._clock(), status, body)
        return status, body

    async def _check(self) -> tuple[int, bytes]:
        checks: dict[str, str] = {}
        failing: list[str] = []
        routable = self._routable()
        checks["routing"] = f"{len(routable)} models routable" if routable else "no model routable: every deployment's breaker is open"
        if not routable:
            failing.append("routing")
        for name, check in self._backend_checks():
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
                checks[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready, and is named
                checks[name] = f"unavailable: {type(exc).__name__}: {str(exc)[:200] or 'no answer'}"
                failing.append(name)
        body = {"status": "not ready" if failing else "ready", "failing": failing, "checks": checks}
        return (503 if failing else 200), orjson.dumps(body)

    def _routable(self) -> list[str]:
        unavailable = self._router.dispatcher.unavailable()
        return [model for model, deps in self._router.catalog.deployments.items()
                if deps and model not in unavailable]

    def _backend_checks(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        settings = self._router.settings
        out: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        state = settings.limits.state
        if settings.limits.enabled and state.backend == "redis" and state.on_error == "closed":
            for guard in self._router.guards:
                store = getattr(guard, "store", None)
                store = getattr(store, "primary", store)
                if store is not None and hasattr(store, "ping"):
                    out.append(("redis", store.ping))
                    break
        if settings.ledger.backend == "postgres" and self._router.ledger is not None:
            dsn = settings.ledger.dsn or ""
            out.append(("postgres", lambda: asyncio.to_thread(_postgres_ping, dsn)))
        return out


def _postgres_ping(dsn: str) -> None:
    """A fresh short connection: it proves the server answers now, whatever the ledger's writer is doing."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=int(CHECK_TIMEOUT_SECONDS), autocommit=True) as conn:
        conn.execute("SELECT 1")
