"""An OpenAI-compatible embeddings endpoint: ``POST {base_url}/embeddings`` with ``{"model", "input": [...]}``.

OpenAI, vLLM, Ollama (``http://127.0.0.1:11434/v1``) and llama.cpp's server (``--embedding``) all answer
``{"data": [{"index": i, "embedding": [...]}, ...]}``. Requests go through the gateway's own HTTP client
(``providers/client.py``), so the gateway awaits them on its event loop; training calls :meth:`encode`, which
runs the same code on a private loop, 64 texts a request. Every failure (status, timeout, connection, a body
that is not that shape, a vector of the wrong size) raises one :class:`EncoderError` naming the endpoint.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import numpy as np
import orjson

from ...config import ProviderSettings
from ...providers.client import ConnectFailed, HTTPClient, MalformedResponse, ResponseCutOff, open_client
from ...providers.errors import error_message
from .base import EncoderError, unit_rows

DEFAULT_TIMEOUT_SECONDS = 5.0
BATCH_SIZE = 64
_T = TypeVar("_T")


class EndpointEncoder:
    kind = "endpoint"

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, dim: int | None = None,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        if timeout_seconds <= 0:
            raise EncoderError(f"encoder: timeout_seconds must be positive, got {timeout_seconds}")
        try:
            self._settings = ProviderSettings(api_base=base_url, api_key=api_key, total_timeout_seconds=timeout_seconds,
                                              connect_timeout_seconds=min(timeout_seconds, 5.0))
        except ValueError as exc:
            raise EncoderError(f"encoder: base_url: expected an http:// or https:// URL, got {base_url!r}") from exc
        self.base_url = self._settings.api_base
        self.model = model
        self.timeout_seconds = timeout_seconds
        self._dim = None if dim is None else int(dim)
        self._url = f"{self.base_url}/embeddings"
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        self._client: HTTPClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def dim(self) -> int | None:
        return self._dim

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "dim": self._dim, "base_url": self.base_url}

    async def aencode(self, text: str) -> np.ndarray:
        return (await self._post(self._loop_client(), [text]))[0]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return _run(self._encode_all(list(texts)))

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    def _loop_client(self) -> HTTPClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = open_client(self._settings), loop
        return self._client

    async def _encode_all(self, texts: list[str]) -> np.ndarray:
        client = open_client(self._settings)
        try:
            parts = [await self._post(client, texts[i:i + BATCH_SIZE]) for i in range(0, len(texts), BATCH_SIZE)]
        finally:
            await client.aclose()
        return np.concatenate(parts) if parts else np.zeros((0, self._dim or 0), np.float32)

    async def _post(self, client: HTTPClient, texts: list[str]) -> np.ndarray:
        body = orjson.dumps({"model": self.model, "input": texts})
        try:
            async with asyncio.timeout(self.timeout_seconds):
                resp = await client.post(self._url, body, self._headers)
                try:
                    status, raw = resp.status, await resp.read()
                finally:
                    resp.release()
        except TimeoutError:
            raise self._error(f"no answer within {self.timeout_seconds:g}s") from None
        except ConnectFailed as exc:
            raise self._error(f"cannot connect: {exc.os_error}") from None
        except (ResponseCutOff, MalformedResponse, OSError) as exc:
            raise self._error(f"connection failed: {exc or type(exc).__name__}") from None
        if status != 200:
            raise self._error(f"answered {status}: {error_message(raw)[0][:200]}")
        return self._vectors(raw, len(texts))

    def _vectors(self, raw: bytes, n: int) -> np.ndarray:
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._error(f"answer is not JSON: {raw[:80]!r}") from None
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != n or not all(isinstance(d, dict) for d in data):
            got = f"{len(data)} items" if isinstance(data, list) else "no 'data' list"
            raise self._error(f"expected 'data' with {n} embedding objects, got {got}")
        ordered = sorted(data, key=lambda d: d.get("index", 0))
        try:
            vectors = np.array([d["embedding"] for d in ordered], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise self._error("an item's 'embedding' is missing or not a list of numbers of one length") from None
        if vectors.ndim != 2 or not np.isfinite(vectors).all():
            raise self._error("an item's 'embedding' is not a list of finite numbers")
        if self._dim is None:
            self._dim = vectors.shape[1]
        elif vectors.shape[1] != self._dim:
            raise self._error(f"returned {vectors.shape[1]}-dimensional vectors, the router expects {self._dim} "
                              f"(is {self.model!r} the model it was trained with?)")
        return unit_rows(vectors)

    def _error(self, what: str) -> EncoderError:
        return EncoderError(f"encoder endpoint {self._url} (model {self.model!r}): {what}")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion from synchronous code, even when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
