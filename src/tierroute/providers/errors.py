"""Translate upstream HTTP failures into the exception tree; every wire format maps errors through here."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import aiohttp
import orjson

from .._exceptions import (
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamContentFiltered,
    UpstreamContextTooLong,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .client import ConnectFailed, MalformedResponse, ResponseCutOff

CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "prompt is too long", "context window",
                   "too many tokens", "input is too long")
FILTER_MARKERS = ("content_filter", "content_policy", "safety", "responsible ai")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def error_message(body: bytes) -> tuple[str, str]:
    """(message, lower-cased searchable text) from an upstream error body, whatever its shape."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:500].decode("utf-8", "replace")
        return text, text.lower()
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        searchable = " ".join(str(error.get(k, "")) for k in ("message", "code", "type")).lower()
        return message, searchable
    return str(error), str(error).lower()


def from_status(status: int, body: bytes, headers: Mapping[str, str], *, provider: str, deployment: str) -> UpstreamError:
    message, searchable = error_message(body)
    text = f"{provider} answered {status}: {message}"
    kwargs = {"provider": provider, "deployment": deployment, "upstream_status": status}
    if status == 429:
        return UpstreamRateLimited(text, retry_after_seconds=retry_after_seconds(headers), **kwargs)
    if status in (400, 413, 422) and any(m in searchable for m in CONTEXT_MARKERS):
        return UpstreamContextTooLong(text, **kwargs)
    if status in (400, 403) and any(m in searchable for m in FILTER_MARKERS):
        return UpstreamContentFiltered(text, **kwargs)
    if status in (401, 403):
        return UpstreamAuthError(text, **kwargs)
    if status in (408, 504):
        return UpstreamTimeout(text, **kwargs)
    if status >= 500:
        return UpstreamUnavailable(text, **kwargs)
    return UpstreamBadRequest(text, **kwargs)


def from_exception(exc: BaseException, *, provider: str, deployment: str, phase: str = "request") -> UpstreamError:
    """Map a client-side failure (connection, timeout, protocol) raised by either HTTP client (``client.py``)."""
    kwargs = {"provider": provider, "deployment": deployment}
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(f"{provider}: timed out during {phase}", **kwargs)
    if isinstance(exc, (aiohttp.ClientConnectorError, ConnectFailed)):
        return UpstreamUnavailable(f"{provider}: cannot connect: {exc.os_error or exc}", **kwargs)
    if isinstance(exc, (aiohttp.ClientPayloadError, ResponseCutOff)):
        return UpstreamUnavailable(f"{provider}: response cut off during {phase}", **kwargs)
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return UpstreamUnavailable(f"{provider}: connection failed during {phase}: {exc}", **kwargs)
    if isinstance(exc, (orjson.JSONDecodeError, MalformedResponse, ValueError, KeyError, TypeError, AttributeError)):
        return UpstreamUnavailable(f"{provider}: malformed response during {phase}: {exc}", **kwargs)
    raise exc
