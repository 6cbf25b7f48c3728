"""Shape checks on what upstreams send, before anything reads or relays it.

A broken or hostile upstream can send valid JSON of the wrong shape: an event that is an array, ``"usage": "x"``,
``choices`` as an object, a number where text belongs. Unchecked, such a value breaks
the relay deep inside the router (the stream stops with no error event and the ledger says 200) or turns into
a negative cost. Each check raises :class:`~.client.MalformedResponse` naming what is wrong (never echoing
the upstream's values), which the wire format maps to an upstream error: before any content it fails over,
after content it ends the stream with an error event.

Only what tierroute reads or relays is checked, with exact type tests: a few microseconds an event.
"""

from __future__ import annotations

from typing import Any

from .client import MalformedResponse

OPENAI_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
ANTHROPIC_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_usage(usage: Any, fields: tuple[str, ...], where: str) -> None:
    """``usage`` is absent (None) or an object whose token counts are absent or numbers.

    Implausible numbers (negative, fractional, 1e30) are not the answer's fault: the answer is relayed, and
    ``usage_check.checked_usage`` clamps the counts and records the row as suspect before anything is charged."""
    if usage is None:
        return
    if type(usage) is not dict:
        raise MalformedResponse(f"{where}: usage is {_type(usage)}, expected an object")
    for name in fields:
        value = usage.get(name)
        if value is not None and type(value) is not int and type(value) is not float:
            raise MalformedResponse(f"{where}: usage.{name} is {_type(value)}, expected a number")


def _check_choices(choices: Any, key: str, where: str) -> None:
    if type(choices) is not list:
        raise MalformedResponse(f"{where}: choices is {_type(choices)}, expected a list")
    for choice in choices:
        if type(choice) is not dict:
            raise MalformedResponse(f"{where}: a choice is {_type(choice)}, expected an object")
        part = choice.get(key)
        if part is None:
            continue
        if type(part) is not dict:
            raise MalformedResponse(f"{where}: choices[].{key} is {_type(part)}, expected an object")
        content = part.get("content")
        if content is not None and type(content) is not str and not (key == "message" and type(content) is list):
            raise MalformedResponse(f"{where}: choices[].{key}.content is {_type(content)}, expected a string")


def check_openai_chunk(chunk: Any) -> None:
    """One ``chat.completion.chunk`` event."""
    if type(chunk) is not dict:
        raise MalformedResponse(f"stream event is {_type(chunk)}, expected an object")
    choices = chunk.get("choices")
    if choices is not None:
        _check_choices(choices, "delta", "stream event")
    usage = chunk.get("usage")
    if usage is not None:
        check_usage(usage, OPENAI_USAGE_FIELDS, "stream event")


def check_openai_completion(response: Any) -> None:
    """A whole ``chat.completion``."""
    if type(response) is not dict:
        raise MalformedResponse(f"response is {_type(response)}, expected an object")
    if "choices" not in response:
        raise MalformedResponse("response has no 'choices'")
    _check_choices(response["choices"], "message", "response")
    check_usage(response.get("usage"), OPENAI_USAGE_FIELDS, "response")


def _check_object(event: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    value = event.get(name)
    if value is None:
        return {}
    if type(value) is not dict:
        raise MalformedResponse(f"{kind} event: {name} is {_type(value)}, expected an object")
    return value


def _check_text(part: dict[str, Any], name: str, kind: str) -> None:
    value = part.get(name)
    if value is not None and type(value) is not str:
        raise MalformedResponse(f"{kind} event: {name} is {_type(value)}, expected a string")


def _check_index(event: dict[str, Any], kind: str) -> None:
    index = event.get("index")
    if index is not None and (type(index) is not int or index < 0):
        raise MalformedResponse(f"{kind} event: index is not a non-negative integer")


def check_anthropic_event(event: Any) -> None:
    """One Messages API stream event (the types tierroute translates; others are ignored downstream)."""
    if type(event) is not dict:
        raise MalformedResponse(f"stream event is {_type(event)}, expected an object")
    kind = event.get("type")
    if kind == "message_start":
        message = _check_object(event, "message", kind)
        check_usage(message.get("usage"), ANTHROPIC_USAGE_FIELDS, f"{kind} event")
        _check_text(message, "id", kind)
        _check_text(message, "model", kind)
    elif kind == "content_block_start":
        _check_index(event, kind)
        block = _check_object(event, "content_block", kind)
        for name in ("type", "text", "id", "name"):
            _check_text(block, name, kind)
    elif kind == "content_block_delta":
        _check_index(event, kind)
        delta = _check_object(event, "delta", kind)
        for name in ("type", "text", "partial_json"):
            _check_text(delta, name, kind)
    elif kind == "message_delta":
        delta = _check_object(event, "delta", kind)
        _check_text(delta, "stop_reason", kind)
        check_usage(event.get("usage"), ANTHROPIC_USAGE_FIELDS, f"{kind} event")


def check_anthropic_message(message: Any) -> None:
    """A whole (non-streamed) Messages API answer."""
    if type(message) is not dict or message.get("type") != "message":
        raise MalformedResponse("response is not a message")
    content = message.get("content")
    if content is not None:
        if type(content) is not list or any(type(block) is not dict for block in content):
            raise MalformedResponse("response: content is not a list of blocks")
        for block in content:
            for name in ("type", "text", "id", "name"):
                _check_text(block, name, "response")
    check_usage(message.get("usage"), ANTHROPIC_USAGE_FIELDS, "response")
