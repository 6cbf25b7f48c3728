"""OpenAI's Responses API as a client-facing dialect: ``POST /v1/responses`` in, routed as a chat completion.

Pure translation, no I/O. tierroute is stateless here, as with ``store: false``:

* supported: ``input`` as a string or as items (messages with ``input_text`` / ``input_image`` /
  ``output_text`` parts, ``function_call`` and ``function_call_output`` items), ``instructions``, function
  ``tools`` and ``tool_choice``, ``parallel_tool_calls``, ``max_output_tokens``, ``temperature``, ``top_p``,
  ``text.format`` (``text``, ``json_object``, ``json_schema``), ``user``, ``metadata`` (echoed back), and
  streaming with the Responses event sequence.
* refused with a 400 naming the field: ``previous_response_id`` and ``conversation`` (nothing is stored, so
  there is nothing to continue: send the whole conversation as ``input``), ``background``, ``prompt``
  (stored prompt templates), and built-in tools (web search, file search, computer use, code interpreter...).
* accepted and ignored: ``store`` (responses are never stored; the answer says ``"store": false``),
  ``reasoning``, ``include``, ``truncation``, ``service_tier``, ``prompt_cache_key`` and the other
  provider-side hints, which no chat-completions model takes.
* ``reasoning`` items in ``input`` (a previous turn's reasoning) are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

from .._exceptions import InvalidRequest, TierrouteError
from ..types import JSONDict
from ._fields import ChunkReader
from ._fields import bad as _bad
from ._fields import kind as _kind

REFUSED_FIELDS = {
    "previous_response_id": "responses are not stored by tierroute; send the whole conversation as 'input'",
    "conversation": "conversations are not stored by tierroute; send the whole conversation as 'input'",
    "background": "background responses are not supported",
    "prompt": "stored prompt templates are not supported",
}
IGNORED_FIELDS = frozenset({"store", "reasoning", "include", "truncation", "service_tier", "prompt_cache_key",
                            "prompt_cache_retention", "prompt_cache_options", "safety_identifier", "stream_options",
                            "max_tool_calls", "top_logprobs", "context_management", "moderation", "access_programs",
                            "background_options", "image"})
TRANSLATED_FIELDS = frozenset({"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
                               "max_output_tokens", "temperature", "top_p", "text", "user", "metadata", "stream",
                               "tierroute"})
MESSAGE_ROLES = ("user", "assistant", "system", "developer")

def _content(content: Any, role: str, where: str) -> str | list[JSONDict]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(where, f"expected a string or an array of content parts, got {_kind(content)}")
    parts: list[JSONDict] = []
    for i, part in enumerate(content):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                raise _bad(f"{at}.text", "expected a string")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image" and role == "user":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise _bad(f"{at}.image_url", "expected an image URL or data URL (file_id is not supported)")
            image: JSONDict = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise _bad(f"{at}.type", f"content part type {kind!r} is not supported in a {role} message")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _messages(items: Any) -> list[JSONDict]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise _bad("input", f"expected a string or a non-empty array of input items, got {_kind(items)}")
    out: list[JSONDict] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, f"expected an input item object, got {_kind(item)}")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in MESSAGE_ROLES:
                raise _bad(f"{where}.role", f"expected one of {', '.join(MESSAGE_ROLES)}, got {role!r}")
            out.append({"role": role, "content": _content(item.get("content"), role, f"{where}.content")})
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "")
            if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, str):
                raise _bad(where, "a function_call item needs string 'call_id', 'name' and 'arguments'")
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            previous = out[-1] if out else None
            if previous is not None and previous["role"] == "assistant" and previous.get("tool_calls") is not None:
                previous["tool_calls"].append(call)  # parallel calls of one turn stay in one assistant message
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str):
                raise _bad(f"{where}.call_id", "expected the call_id of the function_call this answers")
            if not isinstance(output, str):
                output = orjson.dumps(output).decode()
            out.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # a previous turn's reasoning summary; chat-completions models cannot take it back
        else:
            raise _bad(f"{where}.type", f"input item type {kind!r} is not supported")
    return out


def _tools(tools: Any) -> list[JSONDict]:
    if not isinstance(tools, list):
        raise _bad("tools", f"expected an array, got {_kind(tools)}")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else _kind(tool)
            raise _bad(f"tools[{i}].type", f"only function tools are supported, got {kind!r}")
        if not isinstance(tool.get("name"), str):
            raise _bad(f"tools[{i}].name", "expected a string")
        function: JSONDict = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object",
                                                                                         "properties": {}}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _bad("tool_choice", f"expected 'auto', 'none', 'required' or a function by name, got {choice!r}")


def _response_format(text: Any) -> JSONDict | None:
    if not isinstance(text, dict):
        raise _bad("text", f"expected an object, got {_kind(text)}")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema: JSONDict = {"name": fmt.get("name") or "output", "schema": fmt["schema"]}
        if isinstance(fmt.get("strict"), bool):
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise _bad("text.format", f"expected type 'text', 'json_object' or 'json_schema' with a schema, got {kind!r}")


def to_chat_request(body: Any) -> JSONDict:
    """A Responses API request as an OpenAI chat-completions body. Raises :class:`InvalidRequest` naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body: expected a JSON object, got {_kind(body)}")
    for name, why in REFUSED_FIELDS.items():
        if body.get(name) not in (None, False):
            raise _bad(name, why)
    unknown = sorted(set(body) - TRANSLATED_FIELDS - IGNORED_FIELDS - set(REFUSED_FIELDS))
    if unknown:
        raise _bad(unknown[0], "unknown field for the Responses API")
    if "input" not in body:
        raise _bad("input", "required field is missing")
    messages = _messages(body["input"])
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("instructions", f"expected a string, got {_kind(instructions)}")
        messages.insert(0, {"role": "system", "content": instructions})
    chat: JSONDict = {"model": body.get("model"), "messages": messages}
    max_output = body.get("max_output_tokens")
    if max_output is not None:
        if not isinstance(max_output, int) or isinstance(max_output, bool) or max_output < 1:
            raise _bad("max_output_tokens", f"expected a positive integer, got {max_output!r}")
        chat["max_tokens"] = max_output
    for name in ("temperature", "top_p", "user", "parallel_tool_calls", "tierroute"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        response_format = _response_format(body["text"])
        if response_format is not None:
            chat["response_format"] = response_format
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("metadata", f"expected an object, got {_kind(metadata)}")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", f"expected a boolean, got {stream!r}")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# --------------------------------------------------------------------------------------------- answers


def response_id(request_id: str) -> str:
    return "resp_" + request_id.removeprefix("chatcmpl-")


def _usage(prompt_tokens: int, completion_tokens: int) -> JSONDict:
    return {"input_tokens": prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + completion_tokens}


class ResponseShell:
    """The parts of a ``response`` object that echo the request, shared by plain and streamed answers."""

    def __init__(self, body: JSONDict, *, request_id: str, model: str) -> None:
        self.id = response_id(request_id)
        self.model = model
        self.created_at = int(time.time())
        self._echo: JSONDict = {
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {},
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "text": body.get("text") or {"format": {"type": "text"}},
            "user": body.get("user"),
        }

    def build(self, *, status: str, output: list[JSONDict], usage: JSONDict | None,
              incomplete: str | None = None, error: JSONDict | None = None) -> JSONDict:
        return {"id": self.id, "object": "response", "created_at": self.created_at, "status": status,
                "model": self.model, "output": output, "usage": usage, "error": error,
                "incomplete_details": {"reason": incomplete} if incomplete else None,
                "previous_response_id": None, "reasoning": None, "store": False, "truncation": "disabled",
                **self._echo}


def _incomplete(finish_reason: str | None) -> str | None:
    return {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish_reason or "")


def _message_item(item_id: str, text: str, *, status: str = "completed") -> JSONDict:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, *, status: str = "completed") -> JSONDict:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def to_response(response: JSONDict, body: JSONDict, *, request_id: str, model: str) -> JSONDict:
    """A routed chat completion as a Responses API ``response``."""
    shell = ResponseShell(body, request_id=request_id, model=model)
    choice = (response.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    output: list[JSONDict] = []
    if isinstance(reply.get("content"), str) and reply["content"]:
        output.append(_message_item(f"msg_{shell.id[5:]}", reply["content"]))
    for i, call in enumerate(reply.get("tool_calls") or ()):
        function = call.get("function") or {}
        output.append(_call_item(f"fc_{shell.id[5:]}_{i}", call.get("id") or f"call_{i}", function.get("name") or "",
                                 function.get("arguments") or ""))
    usage = response.get("usage") or {}
    incomplete = _incomplete(choice.get("finish_reason"))
    return shell.build(status="incomplete" if incomplete else "completed", output=output, incomplete=incomplete,
                       usage=_usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)))


def sse(data: JSONDict) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class ResponseStream(ChunkReader):
    """Turns OpenAI ``chat.completion.chunk`` dicts into the Responses API's event sequence.

    ``start()`` gives ``response.created`` and ``response.in_progress``; ``feed(chunk)`` the item events a chunk
    produces (the text is one ``message`` item, each tool call a ``function_call`` item, in the order they
    begin); ``finish()`` closes the open item and ends with ``response.completed`` (or ``response.incomplete``
    when the answer hit ``max_output_tokens``); ``fail(...)`` ends with ``response.failed``.
    """

    def __init__(self, body: JSONDict, *, request_id: str, model: str, input_tokens: int) -> None:
        super().__init__(input_tokens)
        self.shell = ResponseShell(body, request_id=request_id, model=model)
        self._sequence = 0
        self._output: list[JSONDict] = []
        self._open: JSONDict | None = None
        self._open_key: str | None = None
        self._calls = 0

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse(data)

    def start(self) -> bytes:
        pending = self.shell.build(status="in_progress", output=[], usage=None)
        return self._event("response.created", response=pending) + self._event("response.in_progress", response=pending)

    def _close(self) -> Iterator[bytes]:
        item, self._open, self._open_key = self._open, None, None
        if item is None:
            return
        index = len(self._output)
        if item["type"] == "message":
            text = item["_text"]
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            yield self._event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                              text=text, logprobs=[])
            yield self._event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                              part=part)
            done = _message_item(item["id"], text)
        else:
            yield self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                              name=item["name"], arguments=item["arguments"])
            done = _call_item(item["id"], item["call_id"], item["name"], item["arguments"])
        yield self._event("response.output_item.done", output_index=index, item=done)
        self._output.append(done)

    def _begin_message(self) -> Iterator[bytes]:
        yield from self._close()
        index = len(self._output)
        item_id = f"msg_{self.shell.id[5:]}_{index}"
        self._open, self._open_key = {"type": "message", "id": item_id, "_text": ""}, "text"
        yield self._event("response.output_item.added", output_index=index,
                          item=_message_item(item_id, "", status="in_progress"))
        yield self._event("response.content_part.added", item_id=item_id, output_index=index, content_index=0,
                          part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})

    def _begin_call(self, key: str, call_id: str, name: str) -> Iterator[bytes]:
        yield from self._close()
        index = len(self._output)
        item_id = f"fc_{self.shell.id[5:]}_{index}"
        self._calls += 1
        self._open = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": ""}
        self._open_key = key
        yield self._event("response.output_item.added", output_index=index,
                          item=_call_item(item_id, call_id, name, "", status="in_progress"))

    def on_text(self, text: str) -> Iterator[bytes]:
        if self._open_key != "text":
            yield from self._begin_message()
        assert self._open is not None
        self._open["_text"] += text
        yield self._event("response.output_text.delta", item_id=self._open["id"], output_index=len(self._output),
                          content_index=0, delta=text, logprobs=[])

    def on_call(self, key: str, call_id: str | None, name: str, arguments: str) -> Iterator[bytes]:
        if self._open_key != key:
            yield from self._begin_call(key, call_id or f"call_{self._calls}", name)
        assert self._open is not None
        if arguments:
            self._open["arguments"] += arguments
            yield self._event("response.function_call_arguments.delta", item_id=self._open["id"],
                              output_index=len(self._output), delta=arguments)

    def finish(self) -> bytes:
        out = list(self._close())
        incomplete = _incomplete(self.finish_reason)
        final = self.shell.build(status="incomplete" if incomplete else "completed", output=self._output,
                                 incomplete=incomplete, usage=_usage(self.input_tokens, self.output_tokens))
        out.append(self._event("response.incomplete" if incomplete else "response.completed", response=final))
        return b"".join(out)

    def fail(self, status: int, exc: BaseException) -> bytes:
        error = error_body(status, exc)["error"]
        failed = self.shell.build(status="failed", output=self._output, usage=None,
                                  error={"code": error["code"] or "server_error", "message": error["message"]})
        return self._event("response.failed", response=failed)


def error_body(status: int, exc: BaseException) -> JSONDict:
    """The OpenAI error shape, as the Responses API uses it for plain (non-streamed) failures."""
    if isinstance(exc, TierrouteError):
        return exc.to_dict()
    return {"error": {"message": "internal error in tierroute; see the gateway log", "type": "server_error",
                      "param": None, "code": "internal_error"}}
