"""Map exceptions to OpenAI-shaped error responses."""

from __future__ import annotations

import logging
import math

import orjson

from .._exceptions import LimitExceeded, TierrouteError, UpstreamRateLimited
from ..redaction import Redactor

log = logging.getLogger("tierroute.server")

# The longest Retry-After the gateway ever tells a caller; the value is always a whole number of seconds.
MAX_RETRY_AFTER_SECONDS = 86400


def retry_after_header(seconds: float) -> bytes | None:
    """``Retry-After`` for a wait in seconds, rounded up to at least 1; None for nan (nothing to say)."""
    if math.isnan(seconds):
        return None
    capped = min(float(MAX_RETRY_AFTER_SECONDS), seconds)  # inf included
    return str(max(1, math.ceil(capped))).encode()


def error_response(exc: BaseException, redactor: Redactor | None = None) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, body, extra headers) for any exception raised while serving a request. ``redactor`` (every
    configured secret) cleans every string of the body: the last line of defence for what upstreams echo.

    A request that was given an id before it failed says so in ``x-tierroute-request-id``, refusals included,
    so the caller can find it in the ledger."""
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(exc, TierrouteError):
        status, body = exc.http_status, exc.to_dict()
        if redactor:
            body = redactor.json(body)
        retry_after = None
        if isinstance(exc, LimitExceeded):
            retry_after = exc.reset_seconds
        elif isinstance(exc, UpstreamRateLimited):
            retry_after = exc.retry_after_seconds
        if retry_after is not None and (value := retry_after_header(retry_after)) is not None:
            headers.append((b"retry-after", value))
        if exc.request_id is not None:
            headers.append((b"x-tierroute-request-id", exc.request_id.encode("latin-1", "replace")))
    else:
        log.exception("unhandled error while serving a request", exc_info=exc)
        status = 500
        body = {"error": {"message": "internal error in tierroute; see the gateway log", "type": "server_error",
                          "param": None, "code": "internal_error"}}
    return status, orjson.dumps(body), headers


def sse_error_event(exc: BaseException, redactor: Redactor | None = None) -> bytes:
    """A well-formed SSE error event, so a stream that breaks never looks like a clean end."""
    _, body, _ = error_response(exc, redactor)
    return b"data: " + body + b"\n\n"
