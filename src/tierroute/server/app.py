"""A plain ASGI application: the OpenAI-compatible routes over one :class:`Router`.

No framework: the hot path is a dict lookup, one body read, one JSON decode and one encode.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from .._exceptions import AuthenticationError, InvalidRequest, PayloadTooLarge, TierrouteError
from ..chat_request import decode_body
from ..identity import caller_id
from ..router import Router
from .disconnect import DisconnectWatcher
from .errors import error_response, sse_error_event
from .same_machine import check_same_machine

log = logging.getLogger("tierroute.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
DONE = b"data: [DONE]\n\n"


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON + (headers or [])})
    await send({"type": "http.response.body", "body": body})


def _attach_client_request_id(scope: Scope, body: dict[str, Any]) -> None:
    """A client's ``x-request-id`` marks retries of one logical request (runaway guards count it once)."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            options = body.get("tierroute")
            if options is None:
                body["tierroute"] = options = {}
            if isinstance(options, dict):
                options.setdefault("request_id", value.decode("latin-1"))
            return


class Gateway:
    """The ASGI app. Build it with :func:`create_app`."""

    def __init__(self, router: Router) -> None:
        self.router = router
        settings = router.settings.server
        self._keys = tuple(k.encode() for k in settings.api_keys)
        self._max_body = settings.max_body_bytes
        self._disconnects = DisconnectWatcher()
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/chat/completions"): self.chat_completions,
            ("POST", "/v1/feedback"): self.feedback,
            ("GET", "/v1/models"): self.models,
            ("GET", "/models"): self.models,
            ("GET", "/health"): self.health,
            ("GET", "/metrics"): self.metrics,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._keys:
                try:
                    check_same_machine(scope["method"], scope["headers"])
                except TierrouteError as exc:
                    status, payload, headers = error_response(exc)
                    await send_json(send, status, payload, headers)
                    return
            handler = self._routes.get((scope["method"], scope["path"]))
            if handler is None:
                paths = {p for _, p in self._routes}
                status = 405 if scope["path"] in paths else 404
                message = "method not allowed" if status == 405 else f"no route for {scope['path']}"
                body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
                await send_json(send, status, orjson.dumps(body))
                return
            await handler(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.router.aclose()
                except Exception:  # noqa: BLE001
                    log.exception("error while shutting down")
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- request plumbing ---------------------------------------------------------------------------
    def _authenticate(self, scope: Scope) -> str | None:
        if not self._keys:
            return None
        token = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                if value[:7].lower() == b"bearer ":
                    token = value[7:].strip()
                break
            if name == b"x-api-key":
                token = value.strip()
                break
        if not token:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        for key in self._keys:
            if hmac.compare_digest(token, key):
                return caller_id(key.decode())
        raise AuthenticationError("invalid API key")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidRequest("content-length header is not a number") from None
                if declared > self._max_body:
                    raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {self._max_body} bytes")
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise PayloadTooLarge(f"request body exceeds the limit of {self._max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    # -- routes -------------------------------------------------------------------------------------
    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            caller = self._authenticate(scope)
            raw = await self._read_body(scope, receive)
            body = decode_body(raw)
        except ConnectionResetError:
            return
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error response
            status, payload, headers = error_response(exc)
            await send_json(send, status, payload, headers)
            return
        if isinstance(body, dict):
            _attach_client_request_id(scope, body)
        # From here on the upstream works for this client: if it hangs up, stop the upstream (server/disconnect.py).
        task = asyncio.current_task()
        assert task is not None
        try:
            with self._disconnects.watch(receive, task) as watch:
                if isinstance(body, dict) and body.get("stream") is True:
                    await self._stream(body, caller, started, send)
                else:
                    await self._complete(body, caller, started, send)
        except asyncio.CancelledError:
            if not watch.fired:
                raise  # cancelled from outside (server shutdown): not ours to swallow
            task.uncancel()  # the client left; the router has recorded the request as cancelled

    async def _complete(self, body: Any, caller: str | None, started: float, send: Send) -> None:
        try:
            routed = await self.router.acompletion(body, caller=caller, started=started)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error response
            status, payload, headers = error_response(exc)
            await send_json(send, status, payload, headers)
            return
        headers = [(k.encode(), v.encode()) for k, v in routed.headers.items()]
        await send_json(send, 200, orjson.dumps(routed.response), headers)

    async def _stream(self, body: dict[str, Any], caller: str | None, started: float, send: Send) -> None:
        try:
            routed = await self.router.astream(body, caller=caller, started=started)
        except Exception as exc:  # noqa: BLE001 - before the first chunk, a failure is a plain error response
            status, payload, headers = error_response(exc)
            await send_json(send, status, payload, headers)
            return
        headers = SSE + [(k.encode(), v.encode()) for k, v in routed.headers.items()]
        chunks = routed.chunks
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(chunk) + b"\n\n", "more_body": True})
            except TierrouteError as exc:
                await send({"type": "http.response.body", "body": sse_error_event(exc), "more_body": False})
                return
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
        except OSError:
            pass  # the client went away; the relay's cleanup records the request as cancelled
        finally:
            await routed.aclose()

    async def feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/feedback``: a quality label for an answered request, for training on your own traffic."""
        try:
            self._authenticate(scope)
            raw = await self._read_body(scope, receive)
            body = decode_body(raw)
            self.router.record_feedback(body)
        except ConnectionResetError:
            return
        except TierrouteError as exc:
            status, payload, headers = error_response(exc)
            await send_json(send, status, payload, headers)
            return
        await send_json(send, 202, b'{"status":"recorded"}')

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._authenticate(scope)
        except AuthenticationError as exc:
            status, payload, headers = error_response(exc)
            await send_json(send, status, payload, headers)
            return
        catalog = self.router.catalog
        data: list[dict[str, Any]] = [{"id": "auto", "object": "model", "created": 0, "owned_by": "tierroute",
                                       "tierroute": {"kind": "router", "tier": catalog.default_tier}}]
        for tier, members in catalog.tiers.items():
            if members:
                data.append({"id": tier, "object": "model", "created": 0, "owned_by": "tierroute",
                             "tierroute": {"kind": "tier", "models": [m.id for m in members]}})
        for model in catalog.models.values():
            data.append({"id": model.id, "object": "model", "created": 0, "owned_by": model.provider,
                         "tierroute": {"kind": "model", "tier": model.tier, "context_window": model.context_window,
                                       "max_output_tokens": model.max_output_tokens,
                                       "input_price_per_mtok": model.input_price, "output_price_per_mtok": model.output_price,
                                       "capabilities": sorted(model.capabilities), "price_source": model.source,
                                       "price_as_of": model.as_of}})
        await send_json(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def health(self, scope: Scope, receive: Receive, send: Send) -> None:
        catalog = self.router.catalog
        body = {"status": "ok", "models": len(catalog.models), "providers": sorted(self.router.providers),
                "policy": self.router.policy.name,
                "unavailable": sorted(self.router.dispatcher.unavailable())}
        await send_json(send, 200, orjson.dumps(body))

    async def metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        payload = self.router.metrics.render()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", self.router.metrics.content_type.encode())]})
        await send({"type": "http.response.body", "body": payload})


def create_app(router: Router) -> Gateway:
    return Gateway(router)


__all__ = ["Gateway", "create_app"]
