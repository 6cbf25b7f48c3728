"""Reading batch input: one JSON object per line, streamed, so memory stays flat whatever the file's size.

A line is either in the OpenAI Batch format (``{"custom_id", "method", "url", "body"}``) or a plain chat body
with an id (``custom_id`` or ``id``, else ``line-<n>``). A line that cannot be used becomes a
:class:`BatchItem` with ``error`` set, so the batch reports it by line number and goes on; a file whose first
line is not a JSON object at all is refused at once (:func:`check_jsonl`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .._exceptions import InvalidRequest

CHAT_URLS = ("/v1/chat/completions", "/chat/completions")
MAX_LINE_BYTES = 16 * 1024 * 1024  # one request body; longer lines are reported, not held in memory
TOO_LONG = b"\x00"  # what read_lines yields for such a line


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One input line: ``body`` to send, or ``error`` saying why the line cannot be sent."""

    line: int  # 1-based line number in the input file (the position for other iterables)
    custom_id: str
    body: dict[str, Any] | None
    error: str | None = None


def parse_item(line: int, raw: bytes | str | dict[str, Any]) -> BatchItem:
    """One line (or an already-decoded object) as an item; never raises."""
    fallback_id = f"line-{line}"
    if isinstance(raw, dict):
        obj: Any = raw
    elif raw == TOO_LONG:
        return BatchItem(line, fallback_id, None, f"line {line}: longer than {MAX_LINE_BYTES >> 20} MiB")
    else:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return BatchItem(line, fallback_id, None, f"line {line}: not valid JSON ({exc})")
    if not isinstance(obj, dict):
        return BatchItem(line, fallback_id, None, f"line {line}: expected a JSON object, got {type(obj).__name__}")
    custom_id = obj.get("custom_id", obj.get("id") if "body" not in obj else None)
    if custom_id is None:
        custom_id = fallback_id
    elif not isinstance(custom_id, str) or not custom_id:
        return BatchItem(line, fallback_id, None, f"line {line}: custom_id: expected a non-empty string")
    if "body" in obj:  # the OpenAI Batch format
        url, method = obj.get("url", CHAT_URLS[0]), obj.get("method", "POST")
        if url not in CHAT_URLS:
            return BatchItem(line, custom_id, None, f"line {line}: url: only /v1/chat/completions is supported, got {url!r}")
        if method != "POST":
            return BatchItem(line, custom_id, None, f"line {line}: method: expected POST, got {method!r}")
        body = obj["body"]
        if not isinstance(body, dict):
            return BatchItem(line, custom_id, None, f"line {line}: body: expected a JSON object")
    else:
        body = {k: v for k, v in obj.items() if k not in ("custom_id", "id")}
    if body.get("stream"):
        return BatchItem(line, custom_id, None, f"line {line}: stream: batch lines are answered whole; drop 'stream'")
    if not isinstance(body.get("messages"), list):
        return BatchItem(line, custom_id, None, f"line {line}: messages: expected an array of chat messages")
    return BatchItem(line, custom_id, body)


def check_jsonl(path: str | os.PathLike[str]) -> None:
    """Refuse a file that is not JSONL at once: its first non-blank line must be a JSON object."""
    with open(path, "rb") as f:
        while raw := f.readline(MAX_LINE_BYTES):
            if not raw.strip():
                continue
            try:
                ok = isinstance(orjson.loads(raw), dict)
            except orjson.JSONDecodeError:
                ok = False
            if not ok:
                raise InvalidRequest(f"{os.fspath(path)}: not a JSONL file: line 1 (first non-blank) is not a JSON "
                                     "object; expected one request per line")
            return
    raise InvalidRequest(f"{os.fspath(path)}: the file has no lines")


def read_lines(path: str | os.PathLike[str], *, start_line: int = 1,
               start_offset: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset after the line, raw bytes) for each non-blank line, from ``start_offset``.

    Blank lines keep their number (so numbers match an editor's) but yield nothing. A line longer than
    ``MAX_LINE_BYTES`` is skipped without being held in memory and yielded as :data:`TOO_LONG`."""
    number = start_line - 1
    with open(path, "rb") as f:
        f.seek(start_offset)
        offset = start_offset
        while raw := f.readline(MAX_LINE_BYTES + 1):
            number += 1
            offset += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                    offset += len(rest)
                offset += len(rest)
                raw = TOO_LONG
            if raw.strip():
                yield number, offset, raw


def read_items(path: str | os.PathLike[str]) -> Iterator[BatchItem]:
    for number, _, raw in read_lines(path):
        yield parse_item(number, raw)


def count_lines(path: str | os.PathLike[str]) -> int:
    """Non-blank lines (for the ETA and the projected spend); one pass, flat memory."""
    total = 0
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                total += 1
    return total
