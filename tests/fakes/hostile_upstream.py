"""A hostile or broken upstream on loopback, speaking both wire formats (OpenAI chat-completions at
``/v1/chat/completions``, Anthropic Messages at ``/v1/messages``).

What it does is chosen by the request itself: the last user message names a scenario (``"scenario: echo-key"``),
so one server can serve many tests and gateway processes at once. Each scenario is the kind of answer a real
provider, proxy or attacker-controlled endpoint can send: an error echoing the API key, a 100 MB body, a gzip
bomb, an endless stream, an event that is a JSON array.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from .loopback import serve_in_thread

MB = 1024 * 1024
Handler = Callable[[web.Request, dict[str, Any], str], Awaitable[web.StreamResponse]]


def scenario_of(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str) and "scenario:" in content:
            return content.split("scenario:", 1)[1].strip().split()[0]
    return "ok"


def gzip_bomb(inflated_bytes: int) -> bytes:
    """``inflated_bytes`` of zeros, gzip-compressed (about 1000:1), built without holding the inflated body."""
    out = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    parts = [out.compress(block) for _ in range(inflated_bytes // MB)]
    parts.append(out.flush())
    return b"".join(parts)


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-hostile", "object": "chat.completion.chunk", "created": int(time.time()), "model": "h",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


def sse(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else orjson.dumps(data)) + b"\n\n"


def anthropic_event(kind: str, **fields: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"


class HostileUpstream:
    """The server; ``api_key`` is the key the gateway is configured with (some scenarios echo it)."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.url = ""
        self.stream_bytes_sent = 0  # by the endless stream, so a test can see how far the gateway read
        self.bomb = gzip_bomb(256 * MB)

    def start(self) -> HostileUpstream:
        def build() -> web.Application:
            app = web.Application(client_max_size=16 * MB)
            app.router.add_post("/v1/chat/completions", self._openai)
            app.router.add_post("/v1/messages", self._anthropic)
            return app

        self.url = serve_in_thread(build, "hostile-upstream")
        return self

    # -- OpenAI wire format ---------------------------------------------------------------------------
    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        scenario = scenario_of(body)
        key = self.api_key
        masked = f"{key[:6]}...{key[-4:]}"
        if scenario == "echo-key":
            return web.json_response({"error": {"message": f"Incorrect API key provided: {key}. You can find "
                                                f"your API key at https://platform.openai.com/account/api-keys.",
                                                "type": "invalid_request_error", "code": "invalid_api_key"}},
                                      status=401)
        if scenario == "echo-key-masked":
            return web.json_response({"error": {"message": f"Incorrect API key provided: {masked}. Also tried "
                                                f"{key[:8]}********{key[-4:]}.", "type": "server_error"}}, status=500)
        if scenario == "echo-key-text":
            return web.Response(text=f"upstream proxy failed; request had Authorization: Bearer {key}", status=502)
        if scenario == "echo-key-in-stream":
            resp = await self._sse_start(request)
            await resp.write(sse(openai_chunk({"role": "assistant", "content": "partial "})))
            await resp.write(sse({"error": {"message": f"key {masked} was revoked mid-stream: {key}", "code": 500}}))
            await resp.write_eof()
            return resp
        if scenario == "echo-prompt":
            prompt = body["messages"][-1]["content"]
            return web.json_response({"error": {"message": f"Invalid value in messages[0].content: {prompt!r}",
                                                "type": "invalid_request_error"}}, status=400)
        if scenario == "bad-usage-body":
            return web.json_response({**self._completion("fine words"), "usage": {"prompt_tokens": 5, "completion_tokens": -9}})
        if scenario == "choices-string-body":
            return web.json_response({**self._completion("fine words"), "choices": "none"})
        if scenario == "echo-key-in-answer":
            return web.json_response(self._completion(f"your key is {key}, keep it safe"))
        if scenario == "big-body":
            return await self._huge(request, 100 * MB, status=200)
        if scenario == "big-error":
            return await self._huge(request, 100 * MB, status=500)
        if scenario == "gzip-bomb":
            return web.Response(body=self.bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        if scenario == "gzip-ok":
            return web.Response(body=gzip.compress(orjson.dumps(self._completion("compressed hello"))),
                                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        if scenario == "endless-stream":
            return await self._endless(request)
        if scenario == "huge-event":
            resp = await self._sse_start(request)
            await resp.write(sse(openai_chunk({"role": "assistant", "content": "x" * (8 * MB)})))
            await resp.write(b"data: [DONE]\n\n")
            return resp
        if scenario.startswith("bad-event-"):
            return await self._bad_openai_stream(request, scenario.removeprefix("bad-event-"))
        if body.get("stream"):
            resp = await self._sse_start(request)
            for word in ("Hello", " from", " hostile"):
                await resp.write(sse(openai_chunk({"content": word})))
            await resp.write(sse({**openai_chunk({}, "stop"), "choices": [],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}))
            await resp.write(b"data: [DONE]\n\n")
            return resp
        return web.json_response(self._completion("Hello from hostile"))

    @staticmethod
    def _completion(text: str) -> dict[str, Any]:
        return {"id": "chatcmpl-hostile", "object": "chat.completion", "created": int(time.time()), "model": "h",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}

    @staticmethod
    async def _sse_start(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        return resp

    @staticmethod
    async def _huge(request: web.Request, size: int, *, status: int) -> web.StreamResponse:
        """A JSON document of ``size`` bytes (a long string value), sent with its Content-Length."""
        head, tail = b'{"error": {"message": "', b'"}}'
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        resp.content_length = size
        await resp.prepare(request)
        block = b"x" * MB
        left = size - len(head) - len(tail)
        try:
            await resp.write(head)
            while left > 0:
                await resp.write(block[:left])
                left -= MB
            await resp.write(tail)
        except (ConnectionResetError, RuntimeError):
            pass  # the gateway stopped reading: exactly what a bounded client does
        return resp

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        """Content events as fast as the gateway takes them, for ever (until the connection goes)."""
        resp = await self._sse_start(request)
        batch = sse(openai_chunk({"content": "y" * 200})) * 256  # ~80 KB a write
        try:
            while True:
                await resp.write(batch)
                self.stream_bytes_sent += len(batch)
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    async def _bad_openai_stream(self, request: web.Request, kind: str) -> web.StreamResponse:
        """``<where>-<what>``: a malformed event ``first`` (before any content) or ``after`` some content."""
        where, what = kind.split("-", 1)
        bad: Any = {
            "array": [1, 2, 3],
            "usage-string": {**openai_chunk({"content": "z"}), "usage": "x"},
            "usage-negative": {**openai_chunk({}), "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": -7}},
            "choices-object": {**openai_chunk({}), "choices": {"0": {"delta": {"content": "q"}}}},
            "content-number": openai_chunk({"content": 42}),
            "string": "just a string",
        }[what]
        resp = await self._sse_start(request)
        if where == "after":
            await resp.write(sse(openai_chunk({"role": "assistant", "content": "Hello"})))
            await resp.write(sse(openai_chunk({"content": " there"})))
        await resp.write(sse(bad))
        await resp.write(sse(openai_chunk({"content": " more"})))
        await resp.write(b"data: [DONE]\n\n")
        return resp

    # -- Anthropic wire format ------------------------------------------------------------------------
    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        scenario = scenario_of(body)
        key = self.api_key
        if scenario == "echo-key":
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": f"invalid x-api-key: {key[:10]}…{key[-3:]}"}},
                                     status=401)
        if scenario == "big-body":
            return await self._huge(request, 100 * MB, status=200)
        if scenario == "gzip-bomb":
            return web.Response(body=self.bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        if scenario == "ok" and not body.get("stream"):
            return web.json_response({"id": "msg_h", "type": "message", "role": "assistant", "model": "h",
                                      "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
                                      "usage": {"input_tokens": 5, "output_tokens": 1}})
        resp = await self._sse_start(request)
        start = {"id": "msg_h", "type": "message", "role": "assistant", "model": "h", "content": [],
                 "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
        if scenario.startswith("bad-event-"):
            where, what = scenario.removeprefix("bad-event-").split("-", 1)
            if where == "first":
                bad = {"array": b"event: message_start\ndata: [1, 2]\n\n",
                       "usage-string": anthropic_event("message_start", message={**start, "usage": "x"})}[what]
                await resp.write(bad)
                return resp
            await resp.write(anthropic_event("message_start", message=start))
            await resp.write(anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}))
            await resp.write(anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"}))
            bad = {"array": b"event: content_block_delta\ndata: [1, 2]\n\n",
                   "usage-string": anthropic_event("message_delta", delta={"stop_reason": "end_turn"}, usage="x"),
                   "usage-negative": anthropic_event("message_delta", delta={"stop_reason": "end_turn"},
                                                     usage={"output_tokens": -3}),
                   "text-number": anthropic_event("content_block_delta", index=0,
                                                  delta={"type": "text_delta", "text": 42})}[what]
            await resp.write(bad)
            await resp.write(anthropic_event("message_stop"))
            return resp
        await resp.write(anthropic_event("message_start", message=start))
        await resp.write(anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}))
        await resp.write(anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}))
        await resp.write(anthropic_event("content_block_stop", index=0))
        await resp.write(anthropic_event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2}))
        await resp.write(anthropic_event("message_stop"))
        return resp
