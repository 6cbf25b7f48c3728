"""Pure translation between OpenAI chat-completions and Anthropic's Messages API (``anthropic-version: 2023-06-01``).

Nothing here does I/O, so every shape is testable against recorded payloads. Requests are built from a
whitelist: any OpenAI field not listed below is dropped rather than forwarded, because the Messages API
rejects unknown fields.

Choices that are not one-to-one:

* ``response_format`` ``json_object`` / ``json_schema`` becomes an extra system instruction (with the schema
  for ``json_schema``). Anthropic's native structured output is a beta behind a header and only on some
  models; an instruction works on every model, and the schema is still the caller's to validate.
* ``temperature`` is clamped to Anthropic's range 0-1 (OpenAI allows up to 2).
* ``max_tokens`` is required by Anthropic; :data:`DEFAULT_MAX_TOKENS` is used when the caller sets none.
* ``n`` > 1 has no equivalent and is refused with :class:`~tierroute.UpstreamBadRequest`.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from .._exceptions import UpstreamBadRequest
from ..types import JSONDict, Usage
from .client import ResponseTooLarge

DEFAULT_MAX_TOKENS = 4096
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")
MAX_TEMPERATURE = 1.0
JSON_OBJECT_INSTRUCTION = "Respond only with a single valid JSON object, with no text before or after it."

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# HTTP status Anthropic documents for each error ``type``; used for errors that arrive inside an SSE stream.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_status(error_type: str | None) -> int:
    return ERROR_STATUS.get(error_type or "", 500)


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_from(data: Any) -> Usage:
    """Anthropic reports cached prompt tokens apart from ``input_tokens``; OpenAI counts them all as prompt."""
    if not isinstance(data, dict):
        return Usage()
    written = int(data.get("cache_creation_input_tokens") or 0)
    cached = int(data.get("cache_read_input_tokens") or 0)
    return Usage(prompt_tokens=int(data.get("input_tokens") or 0) + written + cached,
                 completion_tokens=int(data.get("output_tokens") or 0), cached_tokens=cached,
                 cache_write_tokens=written)


def openai_usage(data: Any) -> JSONDict:
    """The OpenAI ``usage`` for an Anthropic one. Cache writes have no OpenAI field: they travel as
    ``cache_creation_input_tokens`` (LiteLLM's name for it) so the gateway can price them at the write rate."""
    usage = usage_from(data)
    out: JSONDict = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
    if usage.cache_write_tokens:
        out["cache_creation_input_tokens"] = usage.cache_write_tokens
    return out


# ---------------------------------------------------------------------------------------------- request


def _bad(message: str) -> UpstreamBadRequest:
    return UpstreamBadRequest(f"anthropic: {message}")


def _text_block(text: str, part: JSONDict | None = None) -> JSONDict:
    block: JSONDict = {"type": "text", "text": text}
    if part is not None and "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _data_url_source(url: str, where: str) -> JSONDict:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise _bad(f"{where}: malformed data: URL")
    media_type, _, params = header.partition(";")
    if "base64" in params.split(";"):
        data = payload
    else:
        data = base64.b64encode(unquote_to_bytes(payload)).decode("ascii")
    return {"type": "base64", "media_type": media_type or "application/octet-stream", "data": data}


def _image_block(part: JSONDict, where: str) -> JSONDict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _bad(f"{where}.image_url: expected a URL")
    if url.startswith("data:"):
        source = _data_url_source(url, where)
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        raise _bad(f"{where}.image_url: only data: and http(s) URLs are supported")
    block: JSONDict = {"type": "image", "source": source}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _file_block(part: JSONDict, where: str) -> JSONDict:
    file = part.get("file") if isinstance(part.get("file"), dict) else {}
    data = file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise _bad(f"{where}.file: only inline file_data (a data: URL) is supported")
    return {"type": "document", "source": _data_url_source(data, where)}


def _content_blocks(content: Any, where: str) -> list[JSONDict]:
    """OpenAI ``content`` (string or parts) as Anthropic blocks; empty text is dropped (Anthropic rejects it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_block(content)] if content else []
    if not isinstance(content, list):
        raise _bad(f"{where}: expected a string or an array of content parts")
    blocks: list[JSONDict] = []
    for j, part in enumerate(content):
        pwhere = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if text:
                blocks.append(_text_block(str(text), part))
        elif kind == "image_url":
            blocks.append(_image_block(part, pwhere))
        elif kind == "file":
            blocks.append(_file_block(part, pwhere))
        else:
            raise _bad(f"{pwhere}: content part type {kind!r} is not supported by the Messages API")
    return blocks


def tool_id(value: Any) -> str:
    """Tool-call ids from other providers (``functions.get_weather:0``) made to fit Anthropic's ``[A-Za-z0-9_-]+``."""
    return _UNSAFE_ID.sub("_", str(value))


def _tool_use_block(call: Any, where: str) -> JSONDict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise _bad(f"{where}: expected a function tool call with a name")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise _bad(f"{where}.function.arguments: not valid JSON") from None
    if not isinstance(parsed, dict):
        raise _bad(f"{where}.function.arguments: must be a JSON object")
    if not call.get("id"):
        raise _bad(f"{where}.id: required")
    return {"type": "tool_use", "id": tool_id(call["id"]), "name": function["name"], "input": parsed}


def _tool_result_block(message: JSONDict, where: str) -> JSONDict:
    tool_use_id = message.get("tool_call_id")
    if not tool_use_id:
        raise _bad(f"{where}.tool_call_id: required on tool messages")
    content = message.get("content")
    block: JSONDict = {"type": "tool_result", "tool_use_id": tool_id(tool_use_id)}
    if isinstance(content, str):
        block["content"] = content
    elif content is not None:
        block["content"] = _content_blocks(content, f"{where}.content")
    return block


def _system_blocks(content: Any, where: str) -> list[JSONDict]:
    blocks = _content_blocks(content, where)
    if any(b["type"] != "text" for b in blocks):
        raise _bad(f"{where}: system messages may contain only text")
    return blocks


def _translate_messages(messages: Any) -> tuple[list[JSONDict], list[JSONDict]]:
    """(system blocks, alternating user/assistant messages)."""
    if not isinstance(messages, list):
        raise _bad("messages: expected an array")
    system: list[JSONDict] = []
    turns: list[JSONDict] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.extend(_system_blocks(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), f"{where}.content")
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"), f"{where}.content")
            blocks += [_tool_use_block(call, f"{where}.tool_calls[{j}]") for j, call in enumerate(message.get("tool_calls") or [])]
        elif role == "tool":
            role, blocks = "user", [_tool_result_block(message, where)]
        else:
            raise _bad(f"{where}.role: {role!r} is not supported (use tools and role 'tool' instead of functions)")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        # Anthropic wants tool results ahead of any other content in their user turn.
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    if turns and turns[-1]["role"] == "assistant":
        last = turns[-1]["content"][-1]
        if last["type"] == "text":
            # A prefilled assistant turn may not end in whitespace.
            last["text"] = last["text"].rstrip() or last["text"]
    return system, turns


def _translate_tools(tools: Any) -> list[JSONDict]:
    if not isinstance(tools, list):
        raise _bad("tools: expected an array")
    translated: list[JSONDict] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(function, dict) or not function.get("name"):
            raise _bad(f"tools[{i}]: only function tools with a name are supported")
        entry: JSONDict = {"name": function["name"]}
        if function.get("description"):
            entry["description"] = function["description"]
        entry["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        if "cache_control" in tool:
            entry["cache_control"] = tool["cache_control"]
        translated.append(entry)
    return translated


def _translate_tool_choice(choice: Any, parallel: Any) -> JSONDict | None:
    if choice is None:
        translated: JSONDict | None = None
    elif choice == "auto":
        translated = {"type": "auto"}
    elif choice == "required":
        translated = {"type": "any"}
    elif choice == "none":
        translated = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        translated = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise _bad(f"tool_choice: unsupported value {choice!r}")
    if parallel is False:
        translated = translated or {"type": "auto"}
        if translated["type"] != "none":
            translated["disable_parallel_tool_use"] = True
    return translated


def _format_instruction(response_format: Any) -> str | None:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = orjson.dumps(spec.get("schema") or {}).decode()
        return f"{JSON_OBJECT_INSTRUCTION} It must conform to this JSON Schema: {schema}"
    if kind in (None, "text"):
        return None
    raise _bad(f"response_format: type {kind!r} is not supported")


def to_anthropic_request(body: JSONDict) -> JSONDict:
    """Build a Messages API request from an OpenAI chat-completions body (``stream`` is left to the caller)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("n > 1 is not supported by the Messages API; send separate requests instead")
    system, messages = _translate_messages(body.get("messages"))
    instruction = _format_instruction(body.get("response_format"))
    if instruction:
        system.append(_text_block(instruction))

    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    request: JSONDict = {"model": body.get("model"), "max_tokens": int(max_tokens), "messages": messages}
    if system:
        plain = len(system) == 1 and "cache_control" not in system[0]
        request["system"] = system[0]["text"] if plain else system
    if body.get("temperature") is not None:
        request["temperature"] = min(float(body["temperature"]), MAX_TEMPERATURE)
    if body.get("top_p") is not None:
        request["top_p"] = body["top_p"]
    if body.get("top_k") is not None:
        request["top_k"] = body["top_k"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(stops):
        request["stop_sequences"] = [s for s in stops if s]
    if body.get("user"):
        request["metadata"] = {"user_id": str(body["user"])}
    if body.get("tools"):
        request["tools"] = _translate_tools(body["tools"])
        tool_choice = _translate_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
    return request


# --------------------------------------------------------------------------------------------- response


def _tool_call(block: JSONDict) -> JSONDict:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}


def to_openai_response(message: JSONDict, model: str, *, created: int | None = None) -> JSONDict:
    """An Anthropic ``message`` as an OpenAI ``chat.completion``; thinking blocks are dropped."""
    blocks = message.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    tool_calls = [_tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    reply: JSONDict = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": message.get("model") or model,
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": None,
            "finish_reason": finish_reason(message.get("stop_reason")) or "stop",
        }],
        "usage": openai_usage(message.get("usage")),
    }


# ------------------------------------------------------------------------------------------------ stream


class SSEParser:
    """Server-sent events, one line at a time: returns ``(event, data)`` at each blank line. An event's
    ``data:`` lines are joined, so their total is bounded too: past ``max_event_bytes`` it raises
    :class:`~.client.ResponseTooLarge` (an upstream that never sends the blank line cannot grow it forever)."""

    __slots__ = ("_event", "_data", "_size", "_max")

    def __init__(self, max_event_bytes: int = 1 << 20) -> None:
        self._event = ""
        self._data: list[bytes] = []
        self._size = 0
        self._max = max_event_bytes

    def feed(self, line: bytes) -> tuple[str, bytes] | None:
        line = line.rstrip(b"\r\n")
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = (self._event, b"\n".join(self._data))
            self._event, self._data, self._size = "", [], 0
            return event
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"event":
            self._event = value.decode()
        elif field == b"data":
            self._size += len(value) + 1
            if self._size > self._max:
                raise ResponseTooLarge(f"an event exceeds {self._max} bytes")
            self._data.append(value)
        return None


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI ``chat.completion.chunk`` dicts.

    ``feed`` takes one decoded event and returns the chunks it produces. ``error`` events are not handled
    here: the provider maps them to exceptions. ``output_started`` turns true at the first sign the model
    is generating (any content block or final delta), which is what the first-token timeout waits for.
    """

    def __init__(self, model: str, *, created: int | None = None) -> None:
        self.id = ""
        self.model = model
        self.created = int(time.time()) if created is None else created
        self.usage_data: JSONDict = {}
        self.stop_reason: str | None = None
        self.output_started = False
        self.done = False
        # Anthropic block index -> OpenAI tool_calls index, and the blocks whose arguments have been sent.
        self._tool_index: dict[int, int] = {}
        self._tools_with_arguments: set[int] = set()

    @property
    def usage(self) -> Usage:
        return usage_from(self.usage_data)

    def _chunk(self, delta: JSONDict, finish: str | None = None) -> JSONDict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _tool_delta(self, index: int, function: JSONDict, **extra: Any) -> JSONDict:
        return self._chunk({"tool_calls": [{"index": index, **extra, "function": function}]})

    def feed(self, event: JSONDict) -> list[JSONDict]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id", "")
            self.model = message.get("model") or self.model
            self.usage_data.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            self.output_started = True
            block = event.get("content_block") or {}
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            if block.get("type") == "tool_use":
                tool_index = len(self._tool_index)
                self._tool_index[event["index"]] = tool_index
                function = {"name": block["name"], "arguments": ""}
                return [self._tool_delta(tool_index, function, id=block["id"], type="function")]
            return []
        if kind == "content_block_delta":
            self.output_started = True
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                self._tools_with_arguments.add(event["index"])
                return [self._tool_delta(self._tool_index[event["index"]], {"arguments": delta["partial_json"]})]
            return []
        if kind == "content_block_stop":
            index = event.get("index", -1)
            if index in self._tool_index and index not in self._tools_with_arguments:
                # A call without arguments streams no input_json_delta; OpenAI clients expect "{}".
                self._tools_with_arguments.add(index)
                return [self._tool_delta(self._tool_index[index], {"arguments": "{}"})]
            return []
        if kind == "message_delta":
            self.output_started = True
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.usage_data.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            return []
        if kind == "message_stop":
            self.output_started = self.done = True
            final = self._chunk({}, finish_reason(self.stop_reason) or "stop")
            usage_chunk = {**self._chunk({}), "choices": [], "usage": openai_usage(self.usage_data)}
            return [final, usage_chunk]
        return []  # ping, and event types added after this was written
