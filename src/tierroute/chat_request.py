"""Validate an OpenAI chat-completions body and compute its routing features in one pass.

The body itself is forwarded untouched (minus routing-only fields), so validation checks only what the
router relies on and what a provider would reject confusingly; every error names the offending field.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from ._exceptions import InvalidRequest
from .tokens import OPENAI_O200K, QUICK_TOKENS_PER_BYTE, PromptTokens
from .types import JSONDict, RequestFeatures

# Client-chosen labels become limiter and ledger keys: bounded, so no request can make the gateway hold megabytes.
MAX_USER_CHARS = 256
MAX_TAGS = 64
MAX_TAG_CHARS = 128
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
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
    # Encoding is the exact test; it costs microseconds a kilobyte, so only a body with enough opening
    # brackets to be that deep takes it (counting them is a memchr-speed scan).
    if len(raw) > 2 * MAX_JSON_DEPTH and raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        try:
            orjson.dumps(body)
        except TypeError:
            raise InvalidRequest(f"request body: JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    return body


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


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


def client_labels(body: JSONDict) -> tuple[str | None, tuple[str, ...], JSONDict]:
    """The labels a client attaches to a request (``user``, ``tierroute.tags``) and its ``tierroute`` options,
    validated and bounded: every limiter and the ledger key on them, so their size is capped here, once."""
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest(f"user: expected a string, got {_kind(user)}", param="user")
    if user is not None and len(user) > MAX_USER_CHARS:
        raise InvalidRequest(f"user: expected at most {MAX_USER_CHARS} characters, got {len(user)}", param="user")
    options = body.get("tierroute") or {}
    if not isinstance(options, dict):
        raise InvalidRequest(f"tierroute: expected an object of routing options, got {_kind(options)}", param="tierroute")
    if not options:
        return user, (), options
    tags = options.get("tags", ())
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise InvalidRequest("tierroute.tags: expected an array of strings", param="tierroute.tags")
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"tierroute.tags: expected at most {MAX_TAGS} tags, got {len(tags)}", param="tierroute.tags")
    if any(len(t) > MAX_TAG_CHARS for t in tags):
        longest = max(len(t) for t in tags)
        raise InvalidRequest(f"tierroute.tags: expected tags of at most {MAX_TAG_CHARS} characters, got one of {longest}",
                             param="tierroute.tags")
    return user, tuple(tags), options


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

    # The prompt as a chat template frames it: each message's role, name and content are tokenized apart.
    pieces: list[str] = []
    extra_tokens = 0
    has_system = False
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
        pieces.append(role)
        pieces.append(text)
        name = message.get("name")
        if isinstance(name, str) and name:
            pieces.append(name)
        tool_calls = message.get("tool_calls")
        if tool_calls:
            pieces.append(_json_text(tool_calls, f"{where}.tool_calls"))
        texts.append(text)
        has_system = has_system or role in ("system", "developer")
        needs_vision = needs_vision or has_image
        extra_tokens += extra

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
            pieces.append(_json_text(tools, "tools"))
    response_format = body.get("response_format")
    needs_json = False
    if response_format is not None:
        if not isinstance(response_format, dict) or not isinstance(response_format.get("type"), str):
            raise InvalidRequest("response_format: expected an object with a string 'type'", param="response_format")
        needs_json = response_format["type"] in ("json_object", "json_schema")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise InvalidRequest(f"stream_options: expected an object, got {_kind(stream_options)}", param="stream_options")

    user, tags, options = client_labels(body)
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

    size = sum(_utf8_len(p) for p in pieces)
    prompt = PromptTokens(pieces, len(messages), extra_tokens, has_system, bound=size)
    # The central guess for cost and budgets costs nothing; exact counts are taken where they matter
    # (a context window near, a stream without usage: ``tokens.py``).
    estimated = math.ceil(size * QUICK_TOKENS_PER_BYTE) + extra_tokens
    return RequestFeatures(
        requested_model=model,
        prompt_tokens=estimated + OPENAI_O200K.per_message * len(messages) + OPENAI_O200K.per_reply,
        max_tokens=max_tokens,
        text=routing_text(messages, texts),
        n_messages=len(messages),
        needs_tools=needs_tools,
        needs_vision=needs_vision,
        needs_json=needs_json,
        stream=stream,
        caller=caller,
        user=user,
        tags=tags,
        max_cost_usd=float(max_cost) if max_cost is not None else None,
        timeout_seconds=float(timeout) if timeout is not None else None,
        client_request_id=request_id,
        prompt=prompt,
    )


def _json_text(value: Any, where: str) -> str:
    """Tool definitions and calls as the model sees them: JSON text (its count is close, not the template's).
    A value too deep to encode is refused by name (a library caller's body is not depth-checked at the door)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        raise InvalidRequest(f"{where}: nested more than {MAX_JSON_DEPTH} levels deep", param=where) from None


def upstream_body(body: JSONDict, upstream_model: str) -> JSONDict:
    """The body to send upstream: the caller's fields, the chosen model, routing-only fields removed."""
    out = {k: v for k, v in body.items() if k not in ROUTING_FIELDS}
    out["model"] = upstream_model
    return out
