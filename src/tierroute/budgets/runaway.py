"""Runaway detection: the fingerprint of a conversation, robust to the noise a looping agent adds.

Two requests are *near-identical* when their last few messages match after lower-casing, collapsing
whitespace and replacing every number (timestamps, counters, ids) with ``#``; an agent stuck in a loop
usually resends exactly that.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _SPACE.sub(" ", _NUMBER.sub("#", text.lower())).strip()


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return repr(message)
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(str(p.get("text", p.get("type", ""))) if isinstance(p, dict) else str(p) for p in content)
    parts = [str(message.get("role")), str(content or "")]
    if message.get("tool_calls"):
        parts.append(str(message["tool_calls"]))
    return "\x1f".join(parts)


def fingerprint(body: Any, *, last_messages: int, near_identical: bool) -> str:
    """A short hash of the model asked for and the last ``last_messages`` messages of ``body``."""
    messages = body.get("messages") if isinstance(body, dict) else None
    tail = messages[-last_messages:] if isinstance(messages, list) else []
    text = "\x1e".join(_message_text(m) for m in tail)
    if near_identical:
        text = normalize(text)
    model = body.get("model") if isinstance(body, dict) else None
    return hashlib.blake2b(f"{model}\x1d{text}".encode(), digest_size=12).hexdigest()


def client_request_id(body: Any) -> str | None:
    """The caller's own id for this request (``tierroute.request_id``): retries with it count once."""
    options = body.get("tierroute") if isinstance(body, dict) else None
    value = options.get("request_id") if isinstance(options, dict) else None
    return value if isinstance(value, str) and value else None
