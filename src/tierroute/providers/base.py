"""The provider interface: one wire format per implementation, over pooled keep-alive connections.

A provider turns an OpenAI-shaped chat-completions body into an upstream call and answers in OpenAI shape,
whatever its own wire format. It raises only :class:`~tierroute.UpstreamError` subclasses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from collections.abc import Mapping

from .._exceptions import UpstreamError
from ..config import ProviderSettings
from ..observability.context import UPSTREAM_HEADERS
from ..redaction import Redactor, provider_secrets
from ..types import Deployment, JSONDict, Usage
from . import errors
from .client import HTTPClient, Response, ResponseTooLarge, open_client


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole (non-streamed) answer in OpenAI chat-completion shape, with its token usage."""

    response: JSONDict
    usage: Usage


@runtime_checkable
class Provider(Protocol):
    name: str

    async def complete(self, deployment: Deployment, body: JSONDict) -> Completion:
        """Send ``body`` (OpenAI shape, ``model`` already set to the upstream name) and return the answer."""
        ...

    def stream(self, deployment: Deployment, body: JSONDict) -> AsyncIterator[JSONDict]:
        """Yield OpenAI ``chat.completion.chunk`` dicts; the last one carries ``usage`` when known."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class EmbeddingProvider(Protocol):
    """A provider whose wire format has an embeddings endpoint (OpenAI's does; Anthropic's has none)."""

    async def embed(self, deployment: Deployment, body: JSONDict) -> Completion:
        """Send an OpenAI ``/embeddings`` body and return the answer in OpenAI shape."""
        ...


class HTTPProvider:
    """Shared plumbing: one pooled HTTP client (``client.py``) per provider, created inside the running loop.

    ``redactor`` holds this provider's own secrets (its key, credential headers): the only ones its upstream
    has seen and can echo. Every error a provider raises goes through it, and so does every body it relays.
    """

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self.settings = settings
        self.redactor = Redactor(provider_secrets(settings))
        self._client: HTTPClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> HTTPClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = open_client(self.settings)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    async def post_ok(self, url: str, body: bytes, headers: Mapping[str, str], deployment: Deployment) -> Response:
        """POST and return a 200 response, unread; any other status raises its mapped error."""
        extra = UPSTREAM_HEADERS.get()  # the attempt's traceparent when traces are on; else None
        if extra is not None:
            headers = {**headers, **extra}
        resp = await self.client().post(url, body, headers)
        if resp.status != 200:
            try:
                raw = await resp.read(self.settings.max_error_bytes)
            except ResponseTooLarge as exc:
                raw = exc.prefix  # the start of a huge error body still says what went wrong
            finally:
                resp.release()
            raise errors.from_status(resp.status, raw, resp.headers, provider=self.name, deployment=deployment.id,
                                     redactor=self.redactor)
        return resp

    def failure(self, exc: Exception, deployment: Deployment, phase: str = "request") -> UpstreamError:
        """A client or shape failure while talking to the upstream, as an error of the tree with this
        provider's secrets redacted from its message. (Errors built by ``errors.from_status`` are redacted
        there.)"""
        return errors.from_exception(exc, provider=self.name, deployment=deployment.id, phase=phase,
                                     redactor=self.redactor)

    async def post_read(self, url: str, body: bytes, headers: Mapping[str, str], deployment: Deployment) -> bytes:
        """POST and return the whole body of a 200 response; any other status raises its mapped error."""
        resp = await self.post_ok(url, body, headers, deployment)
        try:
            raw = await resp.read()
        finally:
            resp.release()
        return self.redactor.bytes(raw) if self.redactor else raw
