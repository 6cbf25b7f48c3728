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
    UpstreamNotFound,
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


# A Retry-After longer than this is read as this: a provider asking for hours (or "inf") is told to wait a
# day at most, and the breaker caps its own cool-down far lower (``breaker.max_rate_limit_cooldown_seconds``).
MAX_RETRY_AFTER_SECONDS = 86400.0


def _seconds(value: str, scale: float = 1.0) -> float | None:
    """A finite, non-negative, capped number of seconds from a header value, or None if it is not a number."""
    try:
        seconds = float(value) * scale
    except ValueError:
        return None
    if seconds != seconds:  # nan says nothing
        return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))


def retry_after_seconds(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Whatever the header says, the answer is None or a finite number from 0 to ``MAX_RETRY_AFTER_SECONDS``:
    ``inf``, ``nan``, negative numbers, dates in the past and garbage are all handled here, once."""
    ms = headers.get("retry-after-ms")
    if ms:
        seconds = _seconds(ms.strip(), 0.001)
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, delta))


def error_fields(body: bytes) -> tuple[str, str, str | None, str | None]:
    """(message, lower-cased searchable text, param, code) from an upstream error body, whatever its shape."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:500].decode("utf-8", "replace")
        return text, text.lower(), None, None
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        searchable = " ".join(str(error.get(k, "")) for k in ("message", "code", "type")).lower()
        param, code = error.get("param"), error.get("code")
        return (message, searchable, param if isinstance(param, str) else None,
                code if isinstance(code, str) else None)
    return str(error), str(error).lower(), None, None


def error_message(body: bytes) -> tuple[str, str]:
    """(message, lower-cased searchable text) from an upstream error body, whatever its shape."""
    message, searchable, _, _ = error_fields(body)
    return message, searchable


def _short(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return f"{message[:MAX_MESSAGE_CHARS]}... ({len(message) - MAX_MESSAGE_CHARS} more characters)"


def from_status(status: int, body: bytes, headers: Mapping[str, str], *, provider: str, deployment: str,
                redactor: Redactor | None = None) -> UpstreamError:
    """The error for a non-200 answer (or an error event in a stream). Who is at fault decides what dispatch
    does with it (``retry.fault_of``): 401/403 and 404 blame the deployment (a bad key, URL or upstream model
    name answers every request so), a 400 may blame either, 5xx and timeouts are passing trouble.
    ``redactor`` removes the provider's secrets from the message: upstreams echo keys in their errors."""
    message, searchable, param, code = error_fields(body)
    message = _short(message)
    if redactor is not None:
        message = redactor.text(message)
    text = f"{provider} answered {status}: {message}"
    kwargs = {"provider": provider, "deployment": deployment, "upstream_status": status,
              "upstream_param": param, "upstream_code": code}
    if status == 429:
        return UpstreamRateLimited(text, retry_after_seconds=retry_after_seconds(headers), **kwargs)
    if status in (400, 413, 422) and any(m in searchable for m in CONTEXT_MARKERS):
        return UpstreamContextTooLong(text, **kwargs)
    if status in (400, 403) and any(m in searchable for m in FILTER_MARKERS):
        return UpstreamContentFiltered(text, **kwargs)
    if status in (401, 403):
        return UpstreamAuthError(text, **kwargs)
    if status == 404:
        return UpstreamNotFound(text, **kwargs)
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
