"""The HTTP client interface the wire formats talk through, and the choice of implementation.

Two implementations, one file each:

* :mod:`.fast_client` (``http_client: fast``, the default): a lean keep-alive HTTP/1.1 client on an asyncio
  protocol with httptools' response parser. About a third of aiohttp's CPU per request; no proxy support.
* :mod:`.aiohttp_client` (``http_client: aiohttp``): aiohttp's pooled session. Chosen automatically when an
  ``HTTP_PROXY`` / ``HTTPS_PROXY`` environment variable applies to the provider's host (``NO_PROXY``
  respected), since the lean client does not speak to proxies.

Each implementation raises its own failures; :mod:`.errors` maps both onto the exception tree.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

from ..config import ProviderSettings


class Response(Protocol):
    """One upstream answer. ``headers`` keys are case-insensitive (the lean client lower-cases them).
    Call :meth:`release` when done: a fully read body returns the connection to the pool."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body."""
        ...

    async def readline(self) -> bytes:
        """The next line of the body, ``\\n`` included; ``b""`` once the body has ended cleanly."""
        ...

    def release(self) -> None: ...


class HTTPClient(Protocol):
    """Pooled keep-alive connections; bound to the event loop it was created in."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Response:
        """POST ``body`` and return once the response headers are in. ``headers`` is treated as immutable:
        an implementation may cache what it derives from the same mapping object."""
        ...

    async def aclose(self) -> None: ...


class ConnectFailed(OSError):
    """The TCP (or TLS) connection to the upstream could not be opened."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ResponseCutOff(Exception):
    """The connection ended in the middle of a response body."""


class MalformedResponse(Exception):
    """The upstream's bytes are not HTTP/1.1."""


def proxy_applies(url: str) -> bool:
    """Whether ``HTTP(S)_PROXY`` (minus ``NO_PROXY``) sends requests for ``url`` through a proxy."""
    parts = urlsplit(url)
    proxies = getproxies_environment()
    if parts.scheme not in proxies:
        return False
    return not proxy_bypass_environment(parts.hostname or "", proxies)


def open_client(settings: ProviderSettings, *, ssl_context: ssl.SSLContext | None = None) -> HTTPClient:
    """The client ``settings`` ask for; call inside the event loop that will use it."""
    if settings.http_client == "aiohttp" or proxy_applies(settings.api_base):
        from .aiohttp_client import AiohttpClient

        return AiohttpClient(settings, ssl_context=ssl_context, trust_env=proxy_applies(settings.api_base))
    from .fast_client import FastClient

    return FastClient(settings, ssl_context=ssl_context)
