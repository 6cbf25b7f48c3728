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
from ..chat_request import decode_body, parse_chat_request
from ..identity import caller_id
from ..ingress import ANTHROPIC_MESSAGES, OPENAI_RESPONSES, Dialect, EventWriter
from ..redaction import Redactor, install_log_redaction
from ..observability.probes import Probes
from ..router import Router
from .disconnect import DisconnectWatcher, Watch
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
    # A content-length spares the client chunked framing (and the server a chunk header to format).
    head = [*JSON, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": head + headers if headers else head})
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
        # Virtual keys (keys.enabled): the guard that enforces them owns the registry they are looked up in.
        self._registry = next((g.registry for g in router.guards if hasattr(g, "registry")), None)
        self._console: Handler | None = None
        if settings.admin_key or self._registry is not None:
            from ..admin.app import AdminConsole

            self._console = AdminConsole(router, self._registry, settings.admin_key)
        # Every configured secret: scrubbed from each error body sent and each log record written.
        self._redactor = Redactor.from_settings(router.settings)
        self._undo_log_redaction: Callable[[], None] | None = None
        self._max_body = settings.max_body_bytes
        self._disconnects = DisconnectWatcher()
        self._observer = router.observer  # access log and traces; None when both are off
        self.probes = Probes(router)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/chat/completions"): self.chat_completions,
            ("POST", "/v1/messages"): self.messages,
            ("POST", "/v1/messages/count_tokens"): self.count_tokens,
            ("POST", "/v1/responses"): self.responses,
            ("POST", "/v1/embeddings"): self.embeddings,
            ("POST", "/embeddings"): self.embeddings,
            ("POST", "/v1/feedback"): self.feedback,
            ("GET", "/v1/models"): self.models,
            ("GET", "/models"): self.models,
            ("GET", "/health"): self.health,
            ("GET", "/livez"): self.probes.livez,
            ("GET", "/readyz"): self.probes.readyz,
            ("GET", "/metrics"): self.metrics,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self._observer is not None:
                await self._observer.serve(self._http, scope, receive, send)
            else:
                await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._keys and self._registry is None:
            try:
                check_same_machine(scope["method"], scope["headers"])
            except TierrouteError as exc:
                status, payload, headers = error_response(exc, self._redactor)
                await send_json(send, status, payload, headers)
                return
        handler = self._routes.get((scope["method"], scope["path"]))
        if handler is None and self._console is not None and scope["path"].startswith(("/admin", "/ui")):
            handler = self._console
        if handler is None:
            paths = {p for _, p in self._routes}
            status = 405 if scope["path"] in paths else 404
            message = "method not allowed" if status == 405 else f"no route for {scope['path']}"
            body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
            await send_json(send, status, orjson.dumps(body))
            return
        await handler(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # At startup, the server has configured logging: its handlers exist now.
                self._undo_log_redaction = install_log_redaction(self._redactor)
                if self._observer is not None:
                    self._observer.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._undo_log_redaction is not None:
                    self._undo_log_redaction()
                if self._observer is not None:
                    self._observer.stop()
                try:
                    await self.router.aclose()
                except Exception:  # noqa: BLE001
                    log.exception("error while shutting down")
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- request plumbing ---------------------------------------------------------------------------
    def _authenticate(self, scope: Scope) -> str | None:
        if not self._keys and self._registry is None:
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
        if self._registry is not None:
            # One SHA-256 and one dict lookup: the hash is the dict key, so no secret is compared here.
            virtual = self._registry.lookup(token)
            if virtual is not None:
                if virtual.expires_at is not None and time.time() >= virtual.expires_at:
                    raise AuthenticationError("API key expired")
                return virtual.caller
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
    async def _request(self, scope: Scope, receive: Receive, send: Send,
                       dialect: Dialect | None = None) -> tuple[str | None, Any] | None:
        """The caller and the decoded body (translated to chat completions for a dialect); None when the request
        was refused (the error response is sent) or the client left while sending it."""
        try:
            caller = self._authenticate(scope)
            body = decode_body(await self._read_body(scope, receive))
            return caller, (body if dialect is None else (body, dialect.to_chat_request(body)))
        except ConnectionResetError:
            return None
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error response
            await self._send_error(send, exc, dialect)
            return None

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = await self._request(scope, receive, send)
        if request is None:
            return
        caller, body = request
        if isinstance(body, dict):
            _attach_client_request_id(scope, body)
        if isinstance(body, dict) and body.get("stream") is True:
            with self._watched(receive):
                await self._stream(body, caller, started, send)
        else:
            with self._watched(receive):
                await self._complete(body, caller, started, send)

    def _watched(self, receive: Receive) -> Watch:
        """``with self._watched(receive): await work``: if the client hangs up, ``work`` is cancelled
        (server/disconnect.py) and the block ends quietly; the router records the request as cancelled,
        settles its budget for what was generated and stops the upstream."""
        task = asyncio.current_task()
        assert task is not None
        return self._disconnects.watch(receive, task)

    async def _send_error(self, send: Send, exc: Exception, dialect: Dialect | None = None) -> None:
        """The error response, in the OpenAI shape or the dialect's, with every configured secret redacted."""
        status, payload, headers = error_response(exc, self._redactor)
        if dialect is not None:
            payload = orjson.dumps(dialect.error_body(status, self._redacted(exc)))
        await send_json(send, status, payload, headers)

    def _redacted(self, exc: BaseException) -> BaseException:
        return self._redactor.error(exc) if self._redactor and isinstance(exc, TierrouteError) else exc

    async def _complete(self, chat: Any, caller: str | None, started: float, send: Send,
                        dialect: Dialect | None = None, original: Any = None) -> None:
        """Answer a non-streamed request; ``original`` is the dialect's own request when ``chat`` translates it."""
        try:
            routed = await self.router.acompletion(chat, caller=caller, started=started)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error response
            await self._send_error(send, exc, dialect)
            return
        answer = routed.response if dialect is None else dialect.answer(
            routed.response, original, request_id=routed.plan.request_id, model=routed.headers["x-tierroute-model"])
        await send_json(send, 200, orjson.dumps(answer), _response_headers(routed.headers))

    async def _stream(self, chat: dict[str, Any], caller: str | None, started: float, send: Send,
                      dialect: Dialect | None = None, original: Any = None) -> None:
        """Stream a routed answer as chat-completion chunks, or in ``dialect``'s event format (``original`` is
        then the dialect's own request, and ``chat`` its chat-completions translation)."""
        try:
            routed = await self.router.astream(chat, caller=caller, started=started)
        except Exception as exc:  # noqa: BLE001 - before the first chunk, a failure is a plain error response
            await self._send_error(send, exc, dialect)
            return
        events: EventWriter = _ChatChunks(self._redactor) if dialect is None else dialect.events(
            original, request_id=routed.plan.request_id, model=routed.headers["x-tierroute-model"],
            input_tokens=routed.plan.features.prompt_tokens)
        try:
            await self._write_stream(routed, send, events)
        finally:
            await routed.aclose()

    async def _write_stream(self, routed: Any, send: Send, events: EventWriter) -> None:
        headers = SSE + _response_headers(routed.headers)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            opening = events.start()
            if opening:
                await send({"type": "http.response.body", "body": opening, "more_body": True})
            try:
                async for chunk in routed.chunks:
                    data = events.feed(chunk)
                    if data:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - a stream that breaks, whatever broke it, ends with an error event
                status, _, _ = error_response(exc, self._redactor)
                await send({"type": "http.response.body", "body": events.fail(status, self._redacted(exc)),
                            "more_body": False})
                return
            await send({"type": "http.response.body", "body": events.finish(), "more_body": False})
        except OSError:
            pass  # the client went away; the relay's cleanup records the request as cancelled

    # -- other client APIs, translated to chat completions (ingress/) --------------------------------
    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/messages``: Anthropic's Messages API."""
        await self._serve_dialect(ANTHROPIC_MESSAGES, scope, receive, send)

    async def responses(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/responses``: OpenAI's Responses API, stateless (``store: false``)."""
        await self._serve_dialect(OPENAI_RESPONSES, scope, receive, send)

    async def _serve_dialect(self, dialect: Dialect, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = await self._request(scope, receive, send, dialect)
        if request is None:
            return
        caller, (body, chat) = request
        _attach_client_request_id(scope, chat)
        if chat.get("stream"):
            with self._watched(receive):
                await self._stream(chat, caller, started, send, dialect, body)
        else:
            with self._watched(receive):
                await self._complete(chat, caller, started, send, dialect, body)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/embeddings``: passed through to the named (or default) embedding model's deployments."""
        started = time.perf_counter()
        request = await self._request(scope, receive, send)
        if request is None:
            return
        caller, body = request
        with self._watched(receive):
            await self._embed(body, caller, started, send)

    async def _embed(self, body: Any, caller: str | None, started: float, send: Send) -> None:
        try:
            routed = await self.router.aembedding(body, caller=caller, started=started)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error response
            await self._send_error(send, exc)
            return
        await send_json(send, 200, orjson.dumps(routed.response), _response_headers(routed.headers))

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/messages/count_tokens``: the prompt's size as the router counts it for routing and limits."""
        try:
            self._authenticate(scope)
            body = decode_body(await self._read_body(scope, receive))
            if isinstance(body, dict):
                body = {**body, "max_tokens": 1}
            features = parse_chat_request(ANTHROPIC_MESSAGES.to_chat_request(body))
        except ConnectionResetError:
            return
        except Exception as exc:  # noqa: BLE001
            await self._send_error(send, exc, ANTHROPIC_MESSAGES)
            return
        await send_json(send, 200, orjson.dumps({"input_tokens": features.prompt_tokens}))

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
            status, payload, headers = error_response(exc, self._redactor)
            await send_json(send, status, payload, headers)
            return
        await send_json(send, 202, b'{"status":"recorded"}')

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._authenticate(scope)
        except AuthenticationError as exc:
            status, payload, headers = error_response(exc, self._redactor)
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


class _ChatChunks:
    """Chat-completion chunks as server-sent events, ending with ``[DONE]`` (the native stream format)."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def start(self) -> bytes:
        return b""

    def feed(self, chunk: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self) -> bytes:
        return DONE

    def fail(self, status: int, exc: BaseException) -> bytes:
        return sse_error_event(exc, self._redactor)


def _response_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """tierroute's headers, plus ``request-id``, which the anthropic SDK exposes as ``_request_id``."""
    out = [(k.encode(), v.encode()) for k, v in headers.items()]
    request_id = headers.get("x-tierroute-request-id")
    if request_id:
        out.append((b"request-id", request_id.encode()))
    return out


def create_app(router: Router) -> Gateway:
    return Gateway(router)


__all__ = ["Gateway", "create_app"]
