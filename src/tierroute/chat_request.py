"""Validate an OpenAI chat-completions body and compute its routing features in one pass.

The body itself is forwarded untouched (minus routing-only fields), so validation checks only what the
router relies on and what a provider would reject confusingly; every error names the offending field.
"""

from __future__ import annotations

from typing import Any

import orjson

from ._exceptions import InvalidRequest
from .types import JSONDict, RequestFeatures

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Per-message framing tokens (role markers, separators) as chat templates add them.
MESSAGE_OVERHEAD_TOKENS = 4
# What an image costs in prompt tokens is provider-specific; this is a middle-of-the-road figure.
IMAGE_TOKENS = 800
# Routing-only fields the gateway reads and never forwards upstream.
ROUTING_FIELDS = ("tierroute",)
# orjson decodes JSON nested up to 1024 levels but encodes only up to 254: a body between the two would decode
# here and then fail when forwarded upstream, so the gateway refuses it at the door.
MAX_JSON_DEPTH = 254


def decode_body(raw: bytes) -> Any:
    """Decode a request body, refusing invalid JSON and nesting deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    # Encoding is the exact test and costs ~0.5 us for a typical body (less than counting its brackets);
    # a body that deep needs two bytes a level, so short ones skip it.
    if len(raw) > 2 * MAX_JSON_DEPTH:
        try:
            orjson.dumps(body)
        except TypeError:
            raise InvalidRequest(f"request body: JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    return body


def json_size(value: Any, where: str) -> int:
    """Length of ``value`` as JSON, for token estimates; a value too deep to encode is refused by name."""
    try:
        return len(orjson.dumps(value, default=str))
    except TypeError:
        raise InvalidRequest(f"{where}: nested more than {MAX_JSON_DEPTH} levels deep", param=where) from None


def estimate_tokens(text: str) -> int:
    """Estimate the token count of ``text`` without a tokenizer.

    English prose and code average about four characters a token in current BPE vocabularies; other
    scripts take roughly one token for every two or three UTF-8 bytes. Cost: one ``len`` and, only for
    non-ASCII text, one encode, so microseconds even on long prompts.
    """
    n = len(text)
    if text.isascii():
        return (n + 3) // 4
    return (len(text.encode("utf-8")) + 2) // 3


def _content_text(content: Any, where: str) -> tuple[str, int, bool]:
    """Return (text, extra_tokens, has_image) for a message's ``content``."""
    if content is None:
        return "", 0, False
    if isinstance(content, str):
        return content, 0, False
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: expected a string or an array of content parts, got {_kind(content)}", param=where)
    texts: list[str] = []
    extra = 0
    has_image = False
    for j, part in enumerate(content):
        pwhere = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"{pwhere}: expected a content part object, got {_kind(part)}", param=pwhere)
        ptype = part.get("type")
        if ptype == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{pwhere}.text: expected a string, got {_kind(text)}", param=f"{pwhere}.text")
            texts.append(text)
        elif ptype in ("image_url", "image", "input_image"):
            has_image = True
            extra += IMAGE_TOKENS
        elif ptype in ("input_audio", "file", "refusal"):
            extra += 200
        else:
            raise InvalidRequest(f"{pwhere}.type: unknown content part type {ptype!r}", param=f"{pwhere}.type")
    return "\n".join(texts), extra, has_image


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _optional_int(body: JSONDict, name: str, *, minimum: int = 1) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidRequest(f"{name}: expected an integer >= {minimum}, got {value!r}", param=name)
    return value


def _optional_number(body: JSONDict, name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{name}: expected a number from {low} to {high}, got {value!r}", param=name)


def routing_text(messages: list[JSONDict], texts: list[str]) -> str:
    """The part of the conversation that drives the routing decision: the last user turn.

    Few-shot examples and earlier turns describe the task's format, not its difficulty; the newest user
    turn is what the model must answer now. (``docs/routing-quality.md`` measures this choice.)
    """
    for message, text in zip(reversed(messages), reversed(texts)):
        if message.get("role") == "user":
            return text
    return texts[-1] if texts else ""


def parse_chat_request(body: Any, *, caller: str | None = None, default_model: str = "auto") -> RequestFeatures:
    """Validate ``body`` (a decoded JSON value) and return its :class:`RequestFeatures`.

    Raises :class:`InvalidRequest` naming the first offending field.
    """
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body: expected a JSON object, got {_kind(body)}")
    model = body.get("model", default_model)
    if model is None:
        model = default_model
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"model: expected a non-empty string, got {model!r}", param="model")
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("messages: required field is missing", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(f"messages: expected a non-empty array of messages, got {_kind(messages)}", param="messages")

    tokens = 3  # every reply is primed with an assistant header
    texts: list[str] = []
    needs_vision = False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: expected a message object, got {_kind(message)}", param=where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequest(f"{where}.role: expected one of {', '.join(sorted(ROLES))}, got {role!r}", param=f"{where}.role")
        text, extra, has_image = _content_text(message.get("content"), f"{where}.content")
        if "content" not in message and role in ("user", "system", "developer"):
            raise InvalidRequest(f"{where}.content: required field is missing", param=f"{where}.content")
        tool_calls = message.get("tool_calls")
        if tool_calls:
            extra += (json_size(tool_calls, f"{where}.tool_calls") + 3) // 4
        texts.append(text)
        needs_vision = needs_vision or has_image
        tokens += MESSAGE_OVERHEAD_TOKENS + estimate_tokens(text) + extra

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest(f"stream: expected a boolean, got {stream!r}", param="stream")
    max_tokens = _optional_int(body, "max_completion_tokens") or _optional_int(body, "max_tokens")
    _optional_int(body, "n")
    _optional_number(body, "temperature", 0.0, 2.0)
    _optional_number(body, "top_p", 0.0, 1.0)

    tools = body.get("tools")
    needs_tools = False
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest(f"tools: expected an array, got {_kind(tools)}", param="tools")
        needs_tools = bool(tools)
        if needs_tools:
            tokens += (json_size(tools, "tools") + 3) // 4
    response_format = body.get("response_format")
    needs_json = False
    if response_format is not None:
        if not isinstance(response_format, dict) or not isinstance(response_format.get("type"), str):
            raise InvalidRequest("response_format: expected an object with a string 'type'", param="response_format")
        needs_json = response_format["type"] in ("json_object", "json_schema")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise InvalidRequest(f"stream_options: expected an object, got {_kind(stream_options)}", param="stream_options")

    user = body.get("user")
    options = body.get("tierroute") or {}
    if not isinstance(options, dict):
        raise InvalidRequest(f"tierroute: expected an object of routing options, got {_kind(options)}", param="tierroute")
    tags = options.get("tags", ())
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise InvalidRequest("tierroute.tags: expected an array of strings", param="tierroute.tags")
    max_cost = options.get("max_cost_usd")
    if max_cost is not None and (not isinstance(max_cost, (int, float)) or isinstance(max_cost, bool) or max_cost <= 0):
        raise InvalidRequest(f"tierroute.max_cost_usd: expected a positive number, got {max_cost!r}", param="tierroute.max_cost_usd")

    timeout = options.get("timeout_seconds")
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0):
        raise InvalidRequest(f"tierroute.timeout_seconds: expected a positive number, got {timeout!r}",
                             param="tierroute.timeout_seconds")
    request_id = options.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest(f"tierroute.request_id: expected a string, got {_kind(request_id)}", param="tierroute.request_id")

    return RequestFeatures(
        requested_model=model,
        prompt_tokens=tokens,
        max_tokens=max_tokens,
        text=routing_text(messages, texts),
        n_messages=len(messages),
        needs_tools=needs_tools,
        needs_vision=needs_vision,
        needs_json=needs_json,
        stream=stream,
        caller=caller,
        user=user if isinstance(user, str) else None,
        tags=tuple(tags),
        max_cost_usd=float(max_cost) if max_cost is not None else None,
        timeout_seconds=float(timeout) if timeout is not None else None,
        client_request_id=request_id,
    )


def upstream_body(body: JSONDict, upstream_model: str) -> JSONDict:
    """The body to send upstream: the caller's fields, the chosen model, routing-only fields removed."""
    out = {k: v for k, v in body.items() if k not in ROUTING_FIELDS}
    out["model"] = upstream_model
    return out
