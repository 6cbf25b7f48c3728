"""The Messages API translation on its own: request fields, streamed tool calls, and errors naming the field."""

from __future__ import annotations

import orjson
import pytest

from tierroute._exceptions import InvalidRequest, ModelNotFound
from tierroute.ingress.anthropic_messages import MessageStream, error_body, to_chat_request, to_message


def _events(data: bytes) -> list[dict]:
    return [orjson.loads(part.split(b"\ndata: ", 1)[1]) for part in data.split(b"\n\n") if part]


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_streamed_openai_tool_calls_become_tool_use_blocks():
    stream = MessageStream(request_id="chatcmpl-tr-abc", model="mid", input_tokens=12)
    started = _events(stream.start())
    assert started[0]["message"]["id"] == "msg_tr-abc" and started[0]["message"]["usage"]["input_tokens"] == 12
    events = []
    for c in [chunk({"role": "assistant", "content": "Let me look."}),
              chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "lookup", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
              chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                     "function": {"name": "other", "arguments": "{}"}}]}),
              chunk({}, "tool_calls"),
              {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 7}}]:
        events += _events(stream.feed(c))
    events += _events(stream.finish())
    kinds = [(e["type"], e.get("index")) for e in events]
    assert kinds == [("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0),
                     ("content_block_start", 1), ("content_block_delta", 1), ("content_block_delta", 1),
                     ("content_block_stop", 1), ("content_block_start", 2), ("content_block_delta", 2),
                     ("content_block_stop", 2), ("message_delta", None), ("message_stop", None)]
    assert events[3]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "lookup", "input": {}}
    assert events[4]["delta"] == {"type": "input_json_delta", "partial_json": '{"q": '}
    assert events[-2]["delta"]["stop_reason"] == "tool_use" and events[-2]["usage"] == {"output_tokens": 7}


def test_a_message_with_malformed_tool_arguments_keeps_them_visible():
    response = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}, "finish_reason": "length"}]}
    message = to_message(response, request_id="chatcmpl-tr-1", model="m")
    assert message["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {"_raw": "{not json"}}]
    assert message["stop_reason"] == "max_tokens" and message["usage"] == {"input_tokens": 0, "output_tokens": 0}


@pytest.mark.parametrize("body, where", [
    ([], "request body"),
    ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"max_tokens": 5, "messages": []}, "messages"),
    ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "messages[0].content[0].type"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
     "messages[0].content[0].tool_use_id"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
     "messages[0].content[0].source.type"),
    ({"max_tokens": 5, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]}, "system[0]"),
    ({"max_tokens": 5, "tools": [{"type": "web_search_20250305", "name": "web_search"}],
      "messages": [{"role": "user", "content": "x"}]}, "tools[0].type"),
    ({"max_tokens": 5, "tool_choice": {"type": "sometimes"}, "messages": [{"role": "user", "content": "x"}]},
     "tool_choice.type"),
    ({"max_tokens": 5, "stop_sequences": "END", "messages": [{"role": "user", "content": "x"}]}, "stop_sequences"),
    ({"max_tokens": 5, "frequency_penalty": 1, "messages": [{"role": "user", "content": "x"}]}, "frequency_penalty"),
    ({"max_tokens": 5, "mcp_servers": [{"url": "x"}], "messages": [{"role": "user", "content": "x"}]}, "mcp_servers"),
])
def test_bad_requests_name_the_field(body, where):
    with pytest.raises(InvalidRequest) as info:
        to_chat_request(body)
    assert info.value.message.startswith(where)


def test_system_blocks_and_tool_choices():
    chat = to_chat_request({"model": "auto", "max_tokens": 9, "system": [{"type": "text", "text": "A", "cache_control": {
        "type": "ephemeral"}}, {"type": "text", "text": "B"}], "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "top_k": 5, "messages": [{"role": "user", "content": "x"}]})
    assert chat["messages"][0] == {"role": "system", "content": "A\nB"}
    assert (chat["tool_choice"], chat["parallel_tool_calls"]) == ("required", False)
    assert "top_k" not in chat


def test_errors_use_anthropics_types():
    assert error_body(404, ModelNotFound("unknown model 'x'")) == {
        "type": "error", "error": {"type": "not_found_error", "message": "unknown model 'x'"}}
    assert error_body(503, RuntimeError("boom"))["error"]["type"] == "api_error"
    assert "boom" not in error_body(500, RuntimeError("boom"))["error"]["message"]
