"""Map exceptions to OpenAI-shaped error responses."""

from __future__ import annotations

import logging

import orjson

from .._exceptions import LimitExceeded, TierrouteError, UpstreamRateLimited
from ..redaction import Redactor

log = logging.getLogger("tierroute.server")


def error_response(exc: BaseException, redactor: Redactor | None = None) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, body, extra headers) for any exception raised while serving a request. ``redactor`` (every
    configured secret) cleans every string of the body: the last line of defence for what upstreams echo."""
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
        if retry_after is not None:
            headers.append((b"retry-after", str(max(1, int(retry_after + 0.999))).encode()))
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
