"""Stable, non-secret names for gateway keys, used by the ledger and by per-key limits."""

from __future__ import annotations

import hashlib
import re

CALLER_ID = re.compile(r"^key-[0-9a-f]{12}$")


def caller_id(key: str) -> str:
    """``key-`` plus the first 12 hex digits of the key's SHA-256: never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def as_caller_id(key_or_id: str) -> str:
    """Limits may name a gateway key itself (usually as ``${ENV}``) or its caller id."""
    return key_or_id if CALLER_ID.match(key_or_id) else caller_id(key_or_id)
