"""Anthropic's Messages API as a client-facing dialect: ``POST /v1/messages`` in, routed as a chat completion.

Pure translation, no I/O. A Messages request becomes an OpenAI chat-completions body (which every provider
already speaks, Anthropic's included through ``providers/anthropic_translate.py``), and the routed answer is
turned back into a Messages ``message`` or its event stream.

What does not map one-to-one, and what is done about it:

* ``top_k``, ``cache_control`` markers, ``output_config.effort`` and the deployment hints (``service_tier``,
  ``speed``, ``inference_geo``, ``diagnostics``, ``workspace_id``, ``user_profile_id``) have no chat-completions
  equivalent and are dropped; an answering Anthropic model runs without them. ``thinking``, ``container``,
  ``mcp_servers`` and ``context_management`` are refused: what they return could not be relayed back.
* ``output_config.format`` (a JSON schema) becomes ``response_format`` ``json_schema``, so routing only picks
  models that can answer in JSON.
* ``tool_result`` blocks become ``tool`` messages placed before the rest of that user turn, which is where
  chat-completions expects them. ``is_error`` is kept as an ``Error:`` prefix of the result text.
* ``stop_reason`` comes from the chat ``finish_reason``: ``stop`` is ``end_turn`` unless the text ended with
  one of the request's ``stop_sequences`` (it never does: servers strip the sequence), ``length`` is
  ``max_tokens``, ``tool_calls`` is ``tool_use``, ``content_filter`` is ``refusal``.
* ``document`` blocks (PDFs) are refused with a message naming the block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from .._exceptions import InvalidRequest, TierrouteError
from ..types import JSONDict
from ._fields import ChunkReader
from ._fields import bad as _bad
from ._fields import kind as _kind

ROLES = ("user", "assistant")
# Anthropic's error ``type`` for each HTTP status the gateway answers with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
# Messages-API fields translated below; any other top-level field is an error rather than silently dropped.
KNOWN_FIELDS = frozenset({"model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k",
                          "stream", "tools", "tool_choice", "metadata", "tierroute", "service_tier", "container",
                          "thinking", "mcp_servers", "context_management", "cache_control", "diagnostics",
                          "inference_geo", "output_config", "speed", "user_profile_id", "workspace_id"})
REFUSED_FIELDS = ("thinking", "mcp_servers", "container", "context_management")


def _text_of(content: Any, where: str) -> str:
    """Plain text of a string or of an array of text blocks (system prompts, tool results)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(where, f"expected a string or an array of content blocks, got {_kind(content)}")
    parts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise _bad(f"{where}[{i}]", "expected a text block {\"type\": \"text\", \"text\": \"...\"}")
        parts.append(block["text"])
    return "\n".join(parts)


def _image_part(block: JSONDict, where: str) -> JSONDict:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad(f"{where}.source", f"expected an object, got {_kind(source)}")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise _bad(f"{where}.source", "a base64 image needs string 'media_type' and 'data'")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise _bad(f"{where}.source.type", f"expected 'base64' or 'url', got {kind!r}")


def _tool_message(block: JSONDict, where: str) -> JSONDict:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise _bad(f"{where}.tool_use_id", "expected the id of the tool_use block this result answers")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "image"):
                raise _bad(f"{where}.content[{i}]", "expected a text or image block")
            if part["type"] == "text":
                texts.append(str(part.get("text", "")))
        text = "\n".join(texts)
    elif isinstance(content, str):
        text = content
    else:
        raise _bad(f"{where}.content", f"expected a string or an array of blocks, got {_kind(content)}")
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _tool_call(block: JSONDict, where: str) -> JSONDict:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise _bad(where, "a tool_use block needs string 'id' and 'name'")
    if not isinstance(arguments, dict):
        raise _bad(f"{where}.input", f"expected an object, got {_kind(arguments)}")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}


def _translate_message(message: Any, where: str) -> list[JSONDict]:
    if not isinstance(message, dict):
        raise _bad(where, f"expected a message object, got {_kind(message)}")
    role = message.get("role")
    if role not in ROLES:
        raise _bad(f"{where}.role", f"expected 'user' or 'assistant', got {role!r}")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _bad(f"{where}.content", f"expected a string or an array of content blocks, got {_kind(content)}")
    parts: list[JSONDict] = []
    tool_messages: list[JSONDict] = []
    tool_calls: list[JSONDict] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        if not isinstance(block, dict):
            raise _bad(at, f"expected a content block object, got {_kind(block)}")
        kind = block.get("type")
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _bad(f"{at}.text", "expected a string")
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and role == "user":
            parts.append(_image_part(block, at))
        elif kind == "tool_result" and role == "user":
            tool_messages.append(_tool_message(block, at))
        elif kind == "tool_use" and role == "assistant":
            tool_calls.append(_tool_call(block, at))
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # earlier turns' reasoning; no chat-completions model can take it back
        else:
            raise _bad(f"{at}.type", f"content block type {kind!r} is not supported in a {role} message")
    out: list[JSONDict] = list(tool_messages)
    if role == "assistant":
        text = "".join(p["text"] for p in parts)
        reply: JSONDict = {"role": "assistant", "content": text if text or not tool_calls else None}
        if tool_calls:
            reply["tool_calls"] = tool_calls
        out.append(reply)
    elif parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text and len(parts) == 1 else parts})
    return out


def _tools(tools: Any) -> list[JSONDict]:
    if not isinstance(tools, list):
        raise _bad("tools", f"expected an array, got {_kind(tools)}")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _bad(f"tools[{i}]", "expected an object with a string 'name'")
        if tool.get("type") not in (None, "custom"):
            raise _bad(f"tools[{i}].type", f"server tool {tool.get('type')!r} is not supported; define a custom tool")
        schema = tool.get("input_schema", {"type": "object", "properties": {}})
        if not isinstance(schema, dict):
            raise _bad(f"tools[{i}].input_schema", f"expected a JSON schema object, got {_kind(schema)}")
        function: JSONDict = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, body: JSONDict) -> None:
    if not isinstance(choice, dict):
        raise _bad("tool_choice", f"expected an object with a 'type', got {_kind(choice)}")
    kind = choice.get("type")
    if kind == "auto":
        body["tool_choice"] = "auto"
    elif kind == "any":
        body["tool_choice"] = "required"
    elif kind == "none":
        body["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise _bad("tool_choice.type", f"expected 'auto', 'any', 'tool' (with a name) or 'none', got {kind!r}")
    if choice.get("disable_parallel_tool_use") is True:
        body["parallel_tool_calls"] = False


def _output_config(config: Any, body: JSONDict) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise _bad("output_config", f"expected an object, got {_kind(config)}")
    output_format = config.get("format")
    if output_format is None:
        return
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema" \
            or not isinstance(output_format.get("schema"), dict):
        raise _bad("output_config.format", "expected {\"type\": \"json_schema\", \"schema\": {...}}")
    body["response_format"] = {"type": "json_schema",
                               "json_schema": {"name": "output", "schema": output_format["schema"], "strict": True}}


def to_chat_request(body: Any) -> JSONDict:
    """A Messages API request as an OpenAI chat-completions body. Raises :class:`InvalidRequest` naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body: expected a JSON object, got {_kind(body)}")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise _bad(unknown[0], "unknown field for the Messages API")
    for name in REFUSED_FIELDS:
        if body.get(name) not in (None, {"type": "disabled"}):
            raise _bad(name, "not supported by tierroute's Messages endpoint")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _bad("max_tokens", "required field is missing")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _bad("max_tokens", f"expected a positive integer, got {max_tokens!r}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", f"expected a non-empty array of messages, got {_kind(messages)}")
    chat_messages: list[JSONDict] = []
    if body.get("system") is not None:
        system = _text_of(body["system"], "system")
        if system:
            chat_messages.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        chat_messages.extend(_translate_message(message, f"messages[{i}]"))
    chat: JSONDict = {"model": body.get("model"), "messages": chat_messages, "max_tokens": max_tokens}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences", "expected an array of strings")
        if stops:
            chat["stop"] = stops
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", f"expected a boolean, got {stream!r}")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    _output_config(body.get("output_config"), chat)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _bad("metadata", f"expected an object, got {_kind(metadata)}")
        if isinstance(metadata.get("user_id"), str):
            chat["user"] = metadata["user_id"]
    if body.get("tierroute") is not None:
        chat["tierroute"] = body["tierroute"]
    return chat


# --------------------------------------------------------------------------------------------- answers


def message_id(request_id: str) -> str:
    return "msg_" + request_id.removeprefix("chatcmpl-")


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = orjson.loads(raw or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {"_raw": raw}  # a model's malformed arguments, kept visible rather than lost
    return parsed if isinstance(parsed, dict) else {"_value": parsed}


def stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def to_message(response: JSONDict, body: JSONDict | None = None, *, request_id: str, model: str) -> JSONDict:
    """A routed chat completion as a Messages API ``message``."""
    choice = (response.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    content: list[JSONDict] = []
    text = reply.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in reply.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "",
                        "input": _arguments(function.get("arguments"))})
    usage = response.get("usage") or {}
    return {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": {"input_tokens": int(usage.get("prompt_tokens") or 0),
                  "output_tokens": int(usage.get("completion_tokens") or 0)},
    }


def sse(event: str, data: JSONDict) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageStream(ChunkReader):
    """Turns OpenAI ``chat.completion.chunk`` dicts into the Messages API's event sequence.

    ``start()`` gives ``message_start``; ``feed(chunk)`` the block events a chunk produces; ``finish()`` closes
    the open block and ends with ``message_delta`` and ``message_stop``. Text and each tool call are blocks of
    their own, numbered in the order they begin.
    """

    def __init__(self, body: JSONDict | None = None, *, request_id: str, model: str, input_tokens: int) -> None:
        super().__init__(input_tokens)
        self.id = message_id(request_id)
        self.model = model
        self._index = -1
        self._open: str | None = None  # "text" or "tool:<openai index>"

    def start(self) -> bytes:
        message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self.input_tokens, "output_tokens": 0}}
        return sse("message_start", {"type": "message_start", "message": message}) + sse("ping", {"type": "ping"})

    def _close(self) -> Iterator[bytes]:
        if self._open is not None:
            yield sse("content_block_stop", {"type": "content_block_stop", "index": self._index})
            self._open = None

    def _begin(self, kind: str, block: JSONDict) -> Iterator[bytes]:
        yield from self._close()
        self._index += 1
        self._open = kind
        yield sse("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block})

    def on_text(self, text: str) -> Iterator[bytes]:
        if self._open != "text":
            yield from self._begin("text", {"type": "text", "text": ""})
        yield sse("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                          "delta": {"type": "text_delta", "text": text}})

    def on_call(self, key: str, call_id: str | None, name: str, arguments: str) -> Iterator[bytes]:
        if self._open != key:
            yield from self._begin(key, {"type": "tool_use", "id": call_id or "", "name": name, "input": {}})
        if arguments:
            yield sse("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                              "delta": {"type": "input_json_delta", "partial_json": arguments}})

    def fail(self, status: int, exc: BaseException) -> bytes:
        return error_event(status, exc)

    def finish(self) -> bytes:
        out = list(self._close())
        out.append(sse("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop_reason(self.finish_reason), "stop_sequence": None},
                                         "usage": {"output_tokens": self.output_tokens}}))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)


def error_body(status: int, exc: BaseException) -> JSONDict:
    """An error in the Messages API's shape: ``{"type": "error", "error": {"type", "message"}}``."""
    kind = ERROR_TYPES.get(status, "api_error")
    message = exc.message if isinstance(exc, TierrouteError) else "internal error in tierroute; see the gateway log"
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_event(status: int, exc: BaseException) -> bytes:
    return sse("error", error_body(status, exc))
