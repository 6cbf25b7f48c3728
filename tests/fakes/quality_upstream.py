"""A fake OpenAI-compatible upstream whose answers have a quality, and a judge model that compares them.

Every answer ends with ``[q=N]``. ``fake-strong`` always answers at quality 5; ``fake-cheap`` at 5, or at 1 on
prompts containing one of ``degraded_words`` (a class of prompts it has stopped handling well). ``fake-judge``
reads the two answers in its prompt and says which has the higher ``q`` (a tie when equal), so judging is
deterministic; ``judge_mode`` makes it answer garbage, or always "A" (a position-biased judge).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .loopback import serve_in_thread

_Q = re.compile(r"\[q=(\d+)\]")


@dataclass
class FakeQuality:
    degraded_words: set[str] = field(default_factory=set)
    judge_mode: str = "fair"  # fair | garbage | first | fail
    failing_models: set[str] = field(default_factory=set)  # upstream names answering 500
    calls: dict[str, int] = field(default_factory=dict)
    url: str = ""

    def start(self) -> FakeQuality:
        def build() -> web.Application:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            return app

        self.url = serve_in_thread(build, "fake-quality")
        return self

    def answer(self, model: str, messages: list[dict[str, Any]]) -> str:
        text = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
        if model == "fake-judge":
            return self._verdict(text)
        quality = 5
        if model == "fake-cheap" and any(w in text for w in self.degraded_words):
            quality = 1
        return f"Here is the answer from {model} [q={quality}]"

    def _verdict(self, prompt: str) -> str:
        if self.judge_mode == "garbage":
            return "I think both are nice."
        if self.judge_mode == "first":
            return '{"verdict": "A"}'
        a_part, _, b_part = prompt.partition("[Answer B]")
        qa, qb = _Q.findall(a_part.partition("[Answer A]")[2]), _Q.findall(b_part)
        a, b = int(qa[-1]) if qa else 0, int(qb[-1]) if qb else 0
        return '{"verdict": "%s"}' % ("A" if a > b else "B" if b > a else "tie")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = body["model"]
        self.calls[model] = self.calls.get(model, 0) + 1
        if model in self.failing_models or (model == "fake-judge" and self.judge_mode == "fail"):
            return web.json_response({"error": {"message": "down", "type": "server_error"}}, status=500)
        text = self.answer(model, body.get("messages") or [])
        usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-q", "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        words = text.split(" ")
        for i, word in enumerate(words):
            chunk = {"id": "chatcmpl-q", "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word},
                                  "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        end = {"id": "chatcmpl-q", "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await resp.write(b"data: " + orjson.dumps(end) + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp
