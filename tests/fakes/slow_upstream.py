"""A slow OpenAI-compatible upstream that notices, like a real inference server, when its client hangs up.

It "generates" one token every ``token_seconds`` up to ``tokens``, streamed (OpenAI SSE chunks) or as one
plain completion at the end, and stops as soon as the connection closes. Each request's record says how many
tokens it generated and when (``time.monotonic()``) it saw the connection close, if it did.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from .loopback import serve_in_thread


@dataclass
class Generation:
    stream: bool
    started: float
    generated: int = 0
    closed_at: float | None = None   # when the upstream saw its client go away
    finished_at: float | None = None  # when it generated the last token


@dataclass
class SlowUpstream:
    tokens: int = 200
    token_seconds: float = 0.05
    generations: list[Generation] = field(default_factory=list)
    url: str = ""

    def start(self) -> SlowUpstream:
        def build() -> web.Application:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            return app

        self.url = serve_in_thread(build, "slow-upstream")
        return self

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        gen = Generation(stream=bool(body.get("stream")), started=time.monotonic())
        self.generations.append(gen)

        def gone() -> bool:
            return request.transport is None or request.transport.is_closing()

        def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
            data = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + orjson.dumps(data) + b"\n\n"

        resp: web.StreamResponse | None = None
        if gen.stream:
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(chunk({"role": "assistant", "content": ""}))
        try:
            while gen.generated < self.tokens:
                await asyncio.sleep(self.token_seconds)
                if gone():
                    gen.closed_at = time.monotonic()
                    return resp or web.Response()
                gen.generated += 1
                if resp is not None:
                    await resp.write(chunk({"content": " tok"}))
        except (ConnectionResetError, asyncio.CancelledError):
            gen.closed_at = time.monotonic()
            raise
        gen.finished_at = time.monotonic()
        usage = {"prompt_tokens": 9, "completion_tokens": gen.generated, "total_tokens": 9 + gen.generated}
        if resp is None:
            return web.json_response({
                "id": "chatcmpl-slow", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": " tok" * gen.generated},
                             "finish_reason": "stop"}], "usage": usage})
        await resp.write(chunk({}, "stop"))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
