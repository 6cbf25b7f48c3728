"""Per-request values that cross layers without widening their interfaces (contextvars follow the task).

``UPSTREAM_HEADERS`` is what the attempt being made adds to its upstream request (a ``traceparent``); providers
merge it in. ``CURRENT`` is the access-log record of the request the task serves. Both are unset (None) unless
an observer is configured, so reading them costs one lookup.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

UPSTREAM_HEADERS: ContextVar[dict[str, str] | None] = ContextVar("tierroute_upstream_headers", default=None)
CURRENT: ContextVar[Any] = ContextVar("tierroute_request_record", default=None)
