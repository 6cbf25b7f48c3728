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
from ..redaction import Redactor
from .client import ConnectFailed, MalformedResponse, ResponseCutOff, ResponseTooLarge

CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "prompt is too long", "context window",
                   "too many tokens", "input is too long")
FILTER_MARKERS = ("content_filter", "content_policy", "safety", "responsible ai")
# An upstream's error message relayed to the caller is cut here; the error body read is bounded apart
# (``max_error_bytes``). Several attempts' messages end up in one AllAttemptsFailed, so each stays short.
MAX_MESSAGE_CHARS = 2000


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


def _short(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return f"{message[:MAX_MESSAGE_CHARS]}... ({len(message) - MAX_MESSAGE_CHARS} more characters)"


def from_status(status: int, body: bytes, headers: Mapping[str, str], *, provider: str, deployment: str,
                redactor: Redactor | None = None) -> UpstreamError:
    """The error for a non-200 answer (or an error event in a stream). ``redactor`` removes the provider's
    secrets from the message: upstreams echo keys in their errors."""
    message, searchable = error_message(body)
    message = _short(message)
    if redactor is not None:
        message = redactor.text(message)
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


def from_exception(exc: BaseException, *, provider: str, deployment: str, phase: str = "request",
                   redactor: Redactor | None = None) -> UpstreamError:
    """Map a client-side failure (connection, timeout, protocol, size) raised by either HTTP client
    (``client.py``) or a wire format's shape checks."""
    if isinstance(exc, UpstreamError):
        return exc
    error = _mapped(exc, provider=provider, deployment=deployment, phase=phase)
    error.message = _short(error.message)
    error.args = (error.message,)
    return redactor.error(error) if redactor is not None else error  # type: ignore[return-value]


def _mapped(exc: BaseException, *, provider: str, deployment: str, phase: str) -> UpstreamError:
    kwargs = {"provider": provider, "deployment": deployment}
    if isinstance(exc, ResponseTooLarge):
        # Counted against the deployment like any broken answer; another deployment may answer sanely.
        return UpstreamUnavailable(f"{provider}: response too large during {phase}: {exc}", **kwargs)
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
