"""Anthropic Messages API wire format (``POST {api_base}/v1/messages``).

The translation to and from OpenAI shapes lives in :mod:`.anthropic_translate`; this module only talks HTTP
and maps failures through :mod:`.errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from .._exceptions import UpstreamBadRequest, UpstreamError, UpstreamUnavailable
from ..config import ProviderSettings
from ..types import Deployment, JSONDict
from . import errors
from .anthropic_translate import SSEParser, StreamTranslator, error_status, to_anthropic_request, to_openai_response, usage_from
from .base import Completion, HTTPProvider
from .client import MalformedResponse, Response
from .shapes import check_anthropic_event, check_anthropic_message

ANTHROPIC_VERSION = "2023-06-01"
# Chunks held back until the first content block (a real stream has one: message_start's); more means an
# upstream repeating itself, and holding them all would let it grow memory until the first-token timeout.
MAX_PENDING_CHUNKS = 64


class AnthropicProvider(HTTPProvider):
    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        self._url = f"{settings.api_base}/v1/messages"
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        # Configured headers come last so a deployment can pin another version or add ``anthropic-beta``.
        self._headers = {**headers, **settings.headers}

    def _payload(self, deployment: Deployment, body: JSONDict) -> JSONDict:
        try:
            payload = to_anthropic_request(body)
        except UpstreamBadRequest as exc:
            exc.provider, exc.deployment = self.name, deployment.id
            raise
        payload["model"] = payload["model"] or deployment.upstream
        return payload

    async def complete(self, deployment: Deployment, body: JSONDict) -> Completion:
        payload = self._payload(deployment, body)
        try:
            raw = await self.post_read(self._url, orjson.dumps(payload), self._headers, deployment)
            message = orjson.loads(raw)
            check_anthropic_message(message)
            response = to_openai_response(message, payload["model"])
            return Completion(response=response, usage=usage_from(message.get("usage")))
        except UpstreamError:
            raise
        except Exception as exc:  # noqa: BLE001 - every client failure is mapped in one place
            raise self.failure(exc, deployment) from exc

    async def stream(self, deployment: Deployment, body: JSONDict) -> AsyncIterator[JSONDict]:
        payload = {**self._payload(deployment, body), "stream": True}
        translator = StreamTranslator(payload["model"])
        parser = SSEParser(self.settings.max_event_bytes)
        phase = "first token"
        resp: Response | None = None
        try:
            # message_start arrives before the model produces anything, so the first-token clock runs until
            # the first content block (or the end), and the chunks seen meanwhile are held back.
            async with asyncio.timeout(self.settings.first_token_timeout_seconds):
                resp = await self.post_ok(self._url, orjson.dumps(payload), self._headers, deployment)
                pending: list[JSONDict] = []
                while not translator.output_started:
                    pending += await self._next_chunks(resp, parser, translator, deployment)
                    if len(pending) > MAX_PENDING_CHUNKS:
                        raise MalformedResponse(f"more than {MAX_PENDING_CHUNKS} events before any content")
            phase = "stream"
            for chunk in pending:
                yield chunk
            while not translator.done:
                for chunk in await self._next_chunks(resp, parser, translator, deployment):
                    yield chunk
        except UpstreamError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.failure(exc, deployment, phase) from exc
        finally:
            if resp is not None:
                resp.release()

    async def _next_chunks(
        self, resp: Response, parser: SSEParser, translator: StreamTranslator, deployment: Deployment
    ) -> list[JSONDict]:
        """Read one SSE event and translate it; ``error`` events and a body that just stops raise."""
        while True:
            line = await resp.readline()
            if not line:
                raise UpstreamUnavailable(f"{self.name}: stream ended before message_stop", provider=self.name, deployment=deployment.id)
            decoded = parser.feed(line)
            if decoded is None:
                continue
            data = decoded[1]
            if self.redactor:
                data = self.redactor.bytes(data)
            event = orjson.loads(data)
            if isinstance(event, dict) and (event.get("type") == "error" or decoded[0] == "error"):
                error = event.get("error")
                status = error_status(error.get("type") if isinstance(error, dict) else None)
                raise errors.from_status(status, data, {}, provider=self.name, deployment=deployment.id,
                                         redactor=self.redactor)
            check_anthropic_event(event)
            return translator.feed(event)
