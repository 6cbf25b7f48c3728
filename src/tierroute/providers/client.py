"""The HTTP client interface the wire formats talk through, and the choice of implementation.

Two implementations, one file each:

* :mod:`.fast_client` (``http_client: fast``, the default): a lean keep-alive HTTP/1.1 client on an asyncio
  protocol with httptools' response parser. About a third of aiohttp's CPU per request; no proxy support.
* :mod:`.aiohttp_client` (``http_client: aiohttp``): aiohttp's pooled session. Chosen automatically when an
  ``HTTP_PROXY`` / ``HTTPS_PROXY`` environment variable applies to the provider's host (``NO_PROXY``
  respected), since the lean client does not speak to proxies.

Each implementation raises its own failures; :mod:`.errors` maps both onto the exception tree.

Both bound what one answer may cost (``max_response_bytes`` for a body, after gzip/deflate are undone with
the same limit; ``max_event_bytes`` for a line) and never read a streamed body faster than it is consumed:
while the caller does not take lines, at most a few hundred KB wait in memory and the upstream's socket
fills (TCP flow control slows the upstream down).
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

    async def read(self, max_bytes: int | None = None) -> bytes:
        """The whole body, decoded. Raises :class:`ResponseTooLarge` (with the first ``max_bytes`` bytes) once
        it exceeds ``max_bytes`` (default: the provider's ``max_response_bytes``)."""
        ...

    async def readline(self, max_bytes: int | None = None) -> bytes:
        """The next line of the body, ``\\n`` included; ``b""`` once the body has ended cleanly. Raises
        :class:`ResponseTooLarge` for a line longer than ``max_bytes`` (default: ``max_event_bytes``)."""
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
    """The upstream's bytes are not HTTP/1.1, or its answer is not the shape its wire format promises."""


class ResponseTooLarge(Exception):
    """A body, decoded body or line went past its limit. :attr:`prefix` gives the bytes up to the limit (an
    error body's message is still worth relaying); it is copied only when asked for, so refusing a 100 MB
    answer never holds two copies of it."""

    def __init__(self, message: str, *, body: bytes | bytearray = b"", limit: int = 0) -> None:
        super().__init__(message)
        self._body = body
        self._limit = limit

    @property
    def prefix(self) -> bytes:
        return bytes(self._body[:self._limit])


def inflate(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo ``gzip`` / ``deflate`` without ever holding more than ``max_bytes + 1`` inflated bytes: a small
    body that inflates to gigabytes (a decompression bomb) stops at the limit."""
    import zlib

    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:  # deflate: zlib-wrapped as the RFC says, or raw as some servers send it
        wbits = zlib.MAX_WBITS if body[:1] and body[0] & 0x0F == 8 else -zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedResponse(f"cannot decode content-encoding {encoding}: {exc}") from None
    if len(out) > max_bytes:
        raise ResponseTooLarge(f"{encoding} body inflates past {max_bytes} bytes", body=out, limit=max_bytes)
    return out


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
