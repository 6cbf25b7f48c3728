"""The observer: the one object the gateway and the router call so operators can see each request.

The gateway wraps each API request in :meth:`Observer.serve` (a record in a contextvar, the request span); the
router calls :meth:`attempt_started` as each upstream attempt begins, :meth:`request_done` where the request's
outcome is known (``Recorder.attempts``), and :meth:`refused` when it turns a request away before dispatch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from .._exceptions import ConfigError, TierrouteError
from .access_log import AccessLog, RequestRecord
from .context import CURRENT
from .settings import TelemetrySettings

log = logging.getLogger("tierroute.observability")

# Probes and scrapes: polled every few seconds by machines, they would drown the lines about requests.
QUIET_PATHS = frozenset({"/health", "/livez", "/readyz", "/metrics"})

Message = MutableMapping[str, Any]
App = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
               Awaitable[None]]


def build_observer(access_log: str, telemetry: TelemetrySettings) -> Observer | None:
    """None when nothing is asked for: the gateway and router then skip every hook."""
    if access_log == "off" and not telemetry.tracing:
        return None
    return Observer(AccessLog(access_log) if access_log != "off" else None, _tracing(telemetry))


def _tracing(telemetry: TelemetrySettings) -> Any:
    if not telemetry.tracing:
        return None
    try:
        from .tracing import Tracing
    except ImportError as exc:
        field = "telemetry.otlp_endpoint" if telemetry.otlp_endpoint else "telemetry.traces"
        raise ConfigError(f"{field}: traces need OpenTelemetry; pip install 'tierroute[otel]' ({exc})",
                          param=field) from None
    return Tracing(telemetry)


def _operation(route: str) -> str:
    return "embeddings" if route.endswith("/embeddings") else "chat"


class Observer:
    def __init__(self, access: AccessLog | None, tracing: Any) -> None:
        self.access = access
        self.tracing = tracing

    # -- the gateway ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self.access is not None:
            self.access.start()

    def stop(self) -> None:
        if self.access is not None:
            self.access.stop()

    async def serve(self, app: App, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                    send: Callable[[Message], Awaitable[None]]) -> None:
        path = scope["path"]
        if path in QUIET_PATHS:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        record = RequestRecord(path, scope["method"], started)
        if self.tracing is not None:
            traceparent = tracestate = None
            for name, value in scope["headers"]:
                if name == b"traceparent":
                    traceparent = value.decode("latin-1")
                elif name == b"tracestate":
                    tracestate = value.decode("latin-1")
            if traceparent is not None and len(traceparent) == 55:
                record.client_trace = traceparent[3:35]
            self.tracing.start_request(record, traceparent, tracestate)

        def observed_send(message: Message) -> Awaitable[None]:  # not a coroutine: no frame of its own
            if message["type"] == "http.response.start":
                record.status = message["status"]
            return send(message)

        token = CURRENT.set(record)
        try:
            await app(scope, receive, observed_send)
        except BaseException:
            if not record.status:
                record.status = 500
            raise
        finally:
            CURRENT.reset(token)
            if self.access is not None:
                self.access.request(record, (time.perf_counter() - started) * 1000)
            if self.tracing is not None:
                self.tracing.end_request(record)

    # -- the router ----------------------------------------------------------------------------------
    def attempt_started(self, attempt: Any) -> None:
        if self.tracing is None:
            return
        record = CURRENT.get()
        if record is not None:
            self.tracing.start_attempt(record, attempt, _operation(record.route))

    def refused(self, exc: TierrouteError) -> None:
        record = CURRENT.get()
        if record is not None:
            record.error = exc.code or type(exc).__name__

    def request_done(self, plan: Any, attempts: Sequence[Any], *, status: str, error: Any,
                     overhead_ms: float | None) -> None:
        record = CURRENT.get()
        features = plan.features
        if record is not None:
            record.request_id = plan.request_id
            record.caller = features.caller
            record.requested_model = features.requested_model
            record.reason = plan.decision.reason
            record.stream = bool(getattr(features, "stream", False))
            record.outcome = status
            record.attempts = len(attempts)
            record.overhead_ms = overhead_ms
            if len(attempts) == 1:  # the common case, without three generators
                answered = attempts[0]
                record.prompt_tokens = answered.usage.prompt_tokens
                record.completion_tokens = answered.usage.completion_tokens
                record.cost_usd = answered.cost_usd
            else:
                record.prompt_tokens = sum(a.usage.prompt_tokens for a in attempts)
                record.completion_tokens = sum(a.usage.completion_tokens for a in attempts)
                record.cost_usd = sum(a.cost_usd for a in attempts)
            if attempts:
                record.model = attempts[-1].model.id
                record.deployment = attempts[-1].deployment.id
            if error is not None:
                record.error = error.kind
                record.upstream_status = error.upstream_status
        if self.access is not None and record is not None:  # library calls: no gateway, no access log
            for attempt in attempts:
                err = attempt.error
                if err is not None:
                    self.access.attempt_failed(record, plan.request_id, attempt.number, attempt.deployment.id,
                                               err.kind, err.upstream_status, attempt.latency_ms)
        if self.tracing is not None and record is not None:
            self.tracing.finish(record, plan, attempts, _operation(record.route))

    def close(self) -> None:
        if self.tracing is not None:
            try:
                self.tracing.close()
            except Exception:  # noqa: BLE001 - a collector that is gone must not fail shutdown
                log.warning("could not flush traces at shutdown", exc_info=True)
