"""A small Anthropic Messages API on loopback, close enough to the real wire format for the official SDK.

``POST /v1/messages`` checks the key (``x-api-key``, or ``Authorization: Bearer`` as recent SDKs send it) and
that ``anthropic-version`` is the one version it speaks, rejects fields the real API rejects,
records every request, and answers with the next queued :class:`Reply` (a canned text message if none):
a JSON message, the same message as an SSE stream (``stream: true``), an error body, or a stream that is
cut short, aborted, stalled or ends in an ``error`` event.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

API_KEY = "sk-ant-test-key"
ANTHROPIC_VERSION = "2023-06-01"

REQUEST_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers", "context_management",
})
BLOCK_TYPES = frozenset({
    "text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking", "search_result",
})


def text_message(text: str = "Hi! My name is Claude.", *, model: str = "claude-sonnet-4-5",
                 input_tokens: int = 21, output_tokens: int = 9) -> dict[str, Any]:
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


@dataclass
class Reply:
    """What the next request gets.

    ``status`` != 200 sends ``{"type": "error", "error": {...}}``. For streams: ``cut_after_events`` ends the
    body cleanly after that many events, ``abort`` drops the connection there instead, ``stream_error``
    sends an ``error`` event there, and ``stall`` makes the server go quiet there until it is closed.
    """

    message: dict[str, Any] | None = None
    status: int = 200
    error_type: str = "api_error"
    error_message: str = "Internal server error"
    headers: dict[str, str] = field(default_factory=dict)
    cut_after_events: int | None = None
    abort: bool = False
    stream_error: tuple[str, str] | None = None
    stall: bool = False


@dataclass
class Recorded:
    headers: dict[str, str]
    body: dict[str, Any]


def _chunks(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def message_events(message: dict[str, Any], *, chunk_chars: int = 6) -> list[dict[str, Any]]:
    """The event sequence the real API streams for ``message``, deltas split every ``chunk_chars``."""
    usage = message.get("usage") or {}
    start_usage = {**usage, "output_tokens": 1}
    events: list[dict[str, Any]] = [{
        "type": "message_start",
        "message": {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage},
    }]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            events.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            deltas = [{"type": "text_delta", "text": t} for t in _chunks(block["text"], chunk_chars)]
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            arguments = orjson.dumps(block["input"]).decode() if block["input"] else ""
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            if arguments:
                deltas += [{"type": "input_json_delta", "partial_json": p} for p in _chunks(arguments, chunk_chars)]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            deltas = [{"type": "thinking_delta", "thinking": t} for t in _chunks(block["thinking"], chunk_chars)]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "EqQBCgIYAhIM")})
        else:
            raise ValueError(f"fake cannot stream block type {kind!r}")
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append({
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message.get("stop_sequence")},
        "usage": {"output_tokens": usage.get("output_tokens", 0)},
    })
    events.append({"type": "message_stop"})
    return events


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def error_body(error_type: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})


def _validate(body: Any) -> str | None:
    """The first problem the real API would report, or None."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    for name in body:
        if name not in REQUEST_FIELDS:
            return f"{name}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            return f"messages.{i}: all messages must have non-empty content"
        for j, block in enumerate(content):
            if block.get("type") not in BLOCK_TYPES:
                return f"messages.{i}.content.{j}.type: unknown block type {block.get('type')!r}"
            if block["type"] == "text" and not block.get("text"):
                return f"messages.{i}.content.{j}: text content blocks must be non-empty"
    return None


class FakeAnthropic:
    def __init__(self, *, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._ids = itertools.count(1)

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _error(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, body=error_body(error_type, message), content_type="application/json",
                            headers={"request-id": f"req_{next(self._ids):08d}", **(headers or {})})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if self.api_key not in (request.headers.get("x-api-key"), request.headers.get("Authorization", "")[7:]):
            return self._error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") != ANTHROPIC_VERSION:
            return self._error(400, "invalid_request_error", f"anthropic-version: this fake speaks only {ANTHROPIC_VERSION}")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._error(400, "invalid_request_error", "request body is not valid JSON")
        self.requests.append(Recorded(headers=dict(request.headers), body=body))
        problem = _validate(body)
        if problem:
            return self._error(400, "invalid_request_error", problem)
        reply = self.replies.popleft() if self.replies else Reply()
        if reply.status != 200:
            return self._error(reply.status, reply.error_type, reply.error_message, reply.headers)
        message = reply.message or text_message(model=body["model"])
        if not body.get("stream"):
            return web.Response(body=orjson.dumps(message), content_type="application/json",
                                headers={"request-id": f"req_{next(self._ids):08d}", **reply.headers})
        return await self._stream(request, message, reply)

    async def _stream(self, request: web.Request, message: dict[str, Any], reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "request-id": f"req_{next(self._ids):08d}",
            **reply.headers,
        })
        await response.prepare(request)
        events = message_events(message)
        stop_at = reply.cut_after_events if reply.cut_after_events is not None else len(events)
        for event in events[:stop_at]:
            await response.write(sse(event))
        if reply.stream_error is not None:
            await response.write(sse({"type": "error", "error": {"type": reply.stream_error[0], "message": reply.stream_error[1]}}))
        elif reply.stall or reply.abort:
            if reply.stall:
                await self._closing.wait()
            # Dropping the connection mid-body is what a crashed upstream or a proxy timeout looks like.
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
