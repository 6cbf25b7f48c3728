"""A fake OpenAI-compatible upstream on loopback, speaking the exact chat-completions wire format.

Tests tell it how to behave (answer, stream, delay, fail with a status, cut a stream) and read back what it
received. It runs on its own event loop in a background thread, so sync and async tests can share it.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .loopback import serve_in_thread


@dataclass
class Behaviour:
    """What the fake does with the next requests (until changed)."""

    status: int = 200
    text: str = "Hello from the fake upstream."
    delay_seconds: float = 0.0          # before the response headers
    first_token_delay_seconds: float = 0.0  # after headers, before the first stream chunk
    chunk_delay_seconds: float = 0.0
    cut_stream_after: int | None = None  # close the connection after this many chunks, without [DONE]
    retry_after: str | None = None
    error_body: dict[str, Any] | None = None
    prompt_tokens: int = 11
    # Part of prompt_tokens read from the prompt cache, reported as OpenAI does (prompt_tokens_details).
    cached_tokens: int | None = None
    send_usage: bool = True
    # What GET /v1/models lists (a local server's models, for discovery).
    model_ids: tuple[str, ...] = ("fake-model",)
    tool_call: dict[str, Any] | None = None
    failure_rate: float = 0.0  # this fraction of requests (drawn at random) fail with failure_status
    failure_status: int = 500
    stall_after_chunks: int | None = None  # a stream sends this many chunks, then goes silent for stall_seconds
    stall_seconds: float = 0.0
    # A streamed request whose text contains this gets 200 and an empty body, as llama.cpp's server answers a
    # prompt longer than its context.
    empty_stream_if: str | None = None
    max_in_flight: int | None = None  # answer 429 to requests beyond this many at once (a provider's concurrency cap)
    text_by_model: dict[str, str] = field(default_factory=dict)  # upstream model name -> its answer (else text)
    status_by_model: dict[str, int] = field(default_factory=dict)  # upstream model name -> its status (else status)


@dataclass
class FakeOpenAI:
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request
    outcomes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (status answered, request body)
    in_flight: int = 0
    peak_in_flight: int = 0
    url: str = ""
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.requests.clear()
        self.headers.clear()
        self.arrivals.clear()
        self.outcomes.clear()

    # -- server -------------------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        def build() -> web.Application:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._models)
            return app

        self.url = serve_in_thread(build, "fake-openai")
        return self

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"}
                                                             for m in self.behaviour.model_ids]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        self.arrivals.append(time.monotonic())
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if b.delay_seconds:
            await asyncio.sleep(b.delay_seconds)
        status = b.status_by_model.get(body.get("model"), b.status)
        if b.failure_rate and self.rng.random() < b.failure_rate:
            status = b.failure_status
        if b.max_in_flight is not None and self.in_flight > b.max_in_flight:
            status = 429
        self.outcomes.append((status, body))
        if status != 200:
            headers = {"retry-after": b.retry_after} if b.retry_after is not None else {}
            error = b.error_body or {"error": {"message": f"fake failure {status}", "type": "server_error", "code": None}}
            return web.json_response(error, status=status, headers=headers)
        text = b.text_by_model.get(body.get("model"), b.text)
        completion_tokens = max(1, len(text.split()))
        usage: dict[str, Any] = {"prompt_tokens": b.prompt_tokens, "completion_tokens": completion_tokens,
                                 "total_tokens": b.prompt_tokens + completion_tokens}
        if b.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": b.cached_tokens, "audio_tokens": 0}
        created = int(time.time())
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            finish = "stop"
            if b.tool_call is not None:
                message = {"role": "assistant", "content": None, "tool_calls": [b.tool_call]}
                finish = "tool_calls"
            response = {"id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": body["model"],
                        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}
            if b.send_usage:
                response["usage"] = usage
            return web.json_response(response)

        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await resp.prepare(request)
        if b.empty_stream_if is not None and b.empty_stream_if in orjson.dumps(body.get("messages")).decode():
            await resp.write_eof()
            return resp
        if b.first_token_delay_seconds:
            await asyncio.sleep(b.first_token_delay_seconds)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
            return b"data: " + orjson.dumps(data) + b"\n\n"

        pieces = [chunk({"role": "assistant", "content": ""})]
        if b.tool_call is not None:  # as OpenAI streams a call: id and name first, then the arguments in pieces
            call, arguments = b.tool_call, b.tool_call["function"]["arguments"]
            pieces.append(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                                 "function": {"name": call["function"]["name"], "arguments": ""}}]}))
            pieces += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i:i + 8]}}]})
                       for i in range(0, len(arguments), 8)]
            pieces.append(chunk({}, "tool_calls"))
        else:
            # Word by word, whatever max_tokens says: like a server that sends more than it was allowed.
            words = text.split(" ")
            pieces += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
            pieces.append(chunk({}, "stop"))
        if b.send_usage and (body.get("stream_options") or {}).get("include_usage"):
            data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                    "model": body["model"], "choices": [], "usage": usage}
            pieces.append(b"data: " + orjson.dumps(data) + b"\n\n")
        for i, piece in enumerate(pieces):
            if b.cut_stream_after is not None and i >= b.cut_stream_after:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            if b.stall_after_chunks is not None and i == b.stall_after_chunks:
                await asyncio.sleep(b.stall_seconds)
            await resp.write(piece)
            if b.chunk_delay_seconds:
                await asyncio.sleep(b.chunk_delay_seconds)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
