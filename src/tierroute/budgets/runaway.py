"""Runaway detection: the fingerprint of a conversation, robust to the noise a looping agent adds.

Two requests are *near-identical* when their last few messages match after lower-casing, collapsing
whitespace and replacing every number (timestamps, counters, ids) with ``#``; an agent stuck in a loop
usually resends exactly that.

The fingerprint runs on the event loop for every request, so its cost is bounded whatever the body's size:
a message's text longer than :data:`SAMPLE_CHARS` is fingerprinted from its first and last
``SAMPLE_CHARS / 2`` characters (normalised as above) plus an exact hash of everything between them (a C-speed
pass, no copies beyond one encode). So two long messages that differ anywhere still differ, and only the
number-insensitivity is limited to their two ends. (Normalising 15 MB with the regular expressions took
~0.85 s of event-loop time and ~17x the body in memory.)
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_SPACE = re.compile(r"\s+")
SAMPLE_CHARS = 16384


def normalize(text: str) -> str:
    return _SPACE.sub(" ", _NUMBER.sub("#", text.lower())).strip()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # nested past orjson's limit; the gateway refuses such bodies before they get here
        return repr(type(value))


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return _text(message)
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(_text(p.get("text", p.get("type", ""))) if isinstance(p, dict) else _text(p) for p in content)
    parts = [_text(message.get("role")), _text(content or "")]
    if message.get("tool_calls"):
        parts.append(_text(message["tool_calls"]))
    return "\x1f".join(parts)


def _bounded(text: str, near_identical: bool) -> str:
    if len(text) <= SAMPLE_CHARS:
        return normalize(text) if near_identical else text
    half = SAMPLE_CHARS // 2
    # SHA-1 for speed (CPUs hash it in hardware, ~1 GB/s), not for security: a collision only merges two counts.
    middle = hashlib.sha1(text[half:-half].encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()
    head, tail = text[:half], text[-half:]
    if near_identical:
        head, tail = normalize(head), normalize(tail)
    return f"{head}\x1c{middle}\x1c{tail}"


def fingerprint(body: Any, *, last_messages: int, near_identical: bool) -> str:
    """A short hash of the model asked for and the last ``last_messages`` messages of ``body``."""
    messages = body.get("messages") if isinstance(body, dict) else None
    tail = messages[-last_messages:] if isinstance(messages, list) else []
    text = "\x1e".join(_bounded(_message_text(m), near_identical) for m in tail)
    model = body.get("model") if isinstance(body, dict) else None
    return hashlib.blake2b(f"{model}\x1d{text}".encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def client_request_id(body: Any) -> str | None:
    """The caller's own id for this request (``tierroute.request_id``): retries with it count once."""
    options = body.get("tierroute") if isinstance(body, dict) else None
    value = options.get("request_id") if isinstance(options, dict) else None
    return value if isinstance(value, str) and value else None
