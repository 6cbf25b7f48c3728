"""What the dialects share: naming a JSON value's kind, an error that names the field, and reading chat chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._exceptions import InvalidRequest

_JSON_KINDS = {str: "string", dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}


def kind(value: Any) -> str:
    """The JSON kind of a decoded value, for error messages."""
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def bad(where: str, message: str) -> InvalidRequest:
    """A 400 naming the offending field, both in the message and as ``param``."""
    return InvalidRequest(f"{where}: {message}", param=where)


class ChunkReader:
    """Walks OpenAI ``chat.completion.chunk`` dicts for a dialect's event writer: keeps the usage and the finish
    reason, and hands each piece of text and of a tool call to ``on_text`` / ``on_call``, which yield the
    dialect's events. A tool call is keyed by its chunk index, so its argument pieces reach the same block."""

    def __init__(self, input_tokens: int) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = 0
        self.finish_reason: str | None = None

    def on_text(self, text: str) -> Iterator[bytes]:
        raise NotImplementedError

    def on_call(self, key: str, call_id: str | None, name: str, arguments: str) -> Iterator[bytes]:
        raise NotImplementedError

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = int(usage.get("prompt_tokens") or self.input_tokens)
            self.output_tokens = int(usage.get("completion_tokens") or self.output_tokens)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.extend(self.on_text(text))
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                arguments = function.get("arguments")
                out.extend(self.on_call(f"tool:{call.get('index', 0)}", call.get("id"), function.get("name") or "",
                                        arguments if isinstance(arguments, str) else ""))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return b"".join(out)
