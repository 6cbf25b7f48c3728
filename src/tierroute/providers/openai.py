"""OpenAI chat-completions wire format: OpenAI, Azure-style, vLLM, Ollama, llama.cpp, Groq, Together,
DeepSeek, Mistral, OpenRouter and Gemini's OpenAI endpoint all speak it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from .._exceptions import UpstreamEmptyAnswer, UpstreamError, UpstreamUnavailable
from ..config import ProviderSettings
from ..types import Deployment, JSONDict, Usage
from . import errors
from .base import Completion, HTTPProvider
from .client import Response
from .shapes import check_openai_chunk, check_openai_completion

DONE = b"[DONE]"


def usage_from(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    return Usage.from_openai(data)


class OpenAIProvider(HTTPProvider):
    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        self._url = f"{settings.api_base}/chat/completions"
        self._embeddings_url = f"{settings.api_base}/embeddings"
        headers = {"Content-Type": "application/json", **settings.headers}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        self._headers = headers  # one object for the provider's lifetime: the clients cache what they derive

    async def complete(self, deployment: Deployment, body: JSONDict) -> Completion:
        try:
            raw = await self.post_read(self._url, orjson.dumps(body), self._headers, deployment)
            response = orjson.loads(raw)
            check_openai_completion(response)
            return Completion(response=response, usage=usage_from(response.get("usage")))
        except UpstreamError:
            raise
        except Exception as exc:  # noqa: BLE001 - every client failure is mapped in one place
            raise self.failure(exc, deployment) from exc

    async def embed(self, deployment: Deployment, body: JSONDict) -> Completion:
        """``POST /embeddings``: the answer as the upstream gave it, with its prompt tokens as usage."""
        try:
            raw = await self.post_read(self._embeddings_url, orjson.dumps(body), self._headers, deployment)
            response = orjson.loads(raw)
            if not isinstance(response, dict) or not isinstance(response.get("data"), list):
                raise UpstreamUnavailable(f"{self.name}: embeddings response has no 'data' list", provider=self.name,
                                          deployment=deployment.id)
            return Completion(response=response, usage=usage_from(response.get("usage")))
        except UpstreamError:
            raise
        except Exception as exc:  # noqa: BLE001 - every client failure is mapped in one place
            raise errors.from_exception(exc, provider=self.name, deployment=deployment.id) from exc

    async def stream(self, deployment: Deployment, body: JSONDict) -> AsyncIterator[JSONDict]:
        body = {**body, "stream": True, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        phase = "first token"
        resp: Response | None = None
        try:
            async with asyncio.timeout(self.settings.first_token_timeout_seconds):
                resp = await self.post_ok(self._url, orjson.dumps(body), self._headers, deployment)
                chunk = await self._next_event(resp, deployment, first=True)
            phase = "stream"
            while chunk is not None:
                yield chunk
                chunk = await self._next_event(resp, deployment)
        except UpstreamError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.failure(exc, deployment, phase) from exc
        finally:
            if resp is not None:
                resp.release()

    async def _next_event(self, resp: Response, deployment: Deployment, *, first: bool = False) -> JSONDict | None:
        """The next ``data:`` event of an SSE body; None after ``[DONE]``; an error if the body just stops.

        A body that ends cleanly before its first event is an empty answer, not a broken connection: it is
        how llama.cpp's server answers a prompt it finds too long, so it may be the request's fault."""
        while True:
            line = await resp.readline()
            if not line and first:
                raise UpstreamEmptyAnswer(f"{self.name}: answered 200 with an empty stream",
                                          provider=self.name, deployment=deployment.id)
            if not line:
                raise UpstreamUnavailable(f"{self.name}: stream ended before [DONE]", provider=self.name, deployment=deployment.id)
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == DONE:
                return None
            if self.redactor:
                payload = self.redactor.bytes(payload)
            chunk = orjson.loads(payload)
            if isinstance(chunk, dict) and "error" in chunk:
                error = chunk["error"]
                status = error.get("code") if isinstance(error, dict) else None
                raise errors.from_status(status if type(status) is int and 400 <= status < 600 else 500, payload, {},
                                         provider=self.name, deployment=deployment.id, redactor=self.redactor)
            check_openai_chunk(chunk)
            return chunk
