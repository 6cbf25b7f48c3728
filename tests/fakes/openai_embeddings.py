"""A fake OpenAI-compatible embeddings endpoint on loopback: ``POST /v1/embeddings``, the exact wire format.

Each text's vector is a hashed bag of its words (so similar prompts get similar vectors and a router can learn
from them), answered in reverse index order to check that clients sort by ``index``. Tests set the status, a
raw body, a wrong dimension or a delay, and read back the requests.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .loopback import serve_in_thread


@dataclass
class EmbeddingsBehaviour:
    status: int = 200
    raw_body: bytes | None = None  # sent as is with ``status`` (e.g. not JSON)
    dim: int = 16
    dim_override: int | None = None  # answer with this many numbers instead of ``dim``
    delay_seconds: float = 0.0


def bag_of_words(text: str, dim: int) -> list[float]:
    vec = [0.0] * dim
    for word in text.lower().split():
        vec[zlib.crc32(word.encode()) % dim] += 1.0
    vec[0] += 0.5  # never all zero
    return vec


@dataclass
class FakeEmbeddings:
    behaviour: EmbeddingsBehaviour = field(default_factory=EmbeddingsBehaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def reset(self) -> None:
        self.behaviour = EmbeddingsBehaviour()
        self.requests.clear()
        self.headers.clear()

    def start(self) -> FakeEmbeddings:
        def build() -> web.Application:
            app = web.Application()
            app.router.add_post("/v1/embeddings", self._embeddings)
            return app

        self.url = serve_in_thread(build, "fake-embeddings")
        return self

    async def _embeddings(self, request: web.Request) -> web.Response:
        b = self.behaviour
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if b.delay_seconds:
            await asyncio.sleep(b.delay_seconds)
        if b.raw_body is not None:
            return web.Response(body=b.raw_body, status=b.status, content_type="application/json")
        if b.status != 200:
            return web.json_response({"error": {"message": f"fake embeddings failure {b.status}", "type": "server_error",
                                                "code": None}}, status=b.status)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        n = b.dim_override or b.dim
        data = [{"object": "embedding", "index": i, "embedding": bag_of_words(t, b.dim)[:n] + [0.0] * (n - b.dim)}
                for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response({"object": "list", "data": data[::-1], "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
