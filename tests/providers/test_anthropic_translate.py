"""OpenAI <-> Anthropic Messages translation, against payload shapes from Anthropic's public API reference."""

from __future__ import annotations

import orjson
import pytest

from tierroute import _exceptions as exc
from tierroute.providers import errors
from tierroute.providers.anthropic_translate import (
    DEFAULT_MAX_TOKENS,
    JSON_OBJECT_INSTRUCTION,
    SSEParser,
    StreamTranslator,
    error_status,
    to_anthropic_request,
    to_openai_response,
    usage_from,
)

# --- recorded shapes (Messages API reference and the tool-use / streaming guides) -------------------------

TEXT_RESPONSE = {
    "content": [{"text": "Hi! My name is Claude.", "type": "text"}],
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "model": "claude-3-7-sonnet-20250219",
    "role": "assistant",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "type": "message",
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}

TOOL_USE_RESPONSE = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "model": "claude-3-7-sonnet-20250219",
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "role": "assistant",
    "content": [
        {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"location": "San Francisco, CA", "unit": "celsius"}},
    ],
    "usage": {"input_tokens": 384, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000,
              "output_tokens": 68},
}

THINKING_RESPONSE = {
    "id": "msg_01Thinking", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "Let me analyze this step by step...", "signature": "WaUjzkypQ2mUEVM36O2Txu"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
        {"type": "text", "text": "Based on my analysis..."},
    ],
    "stop_reason": "max_tokens", "stop_sequence": None, "usage": {"input_tokens": 50, "output_tokens": 2048},
}

TEXT_STREAM = """\
event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-3-7-sonnet-20250219", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}

"""

TOOL_STREAM = """\
event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-3-haiku-20240307","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":","}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" let's check the weather for San Francisco, CA:"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \\"San"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" Francisc"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"o,"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" CA\\""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":", "}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\\"unit\\": \\"fah"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"renheit\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"""

ERROR_BODY = b'{"type": "error", "error": {"type": "not_found_error", "message": "The requested resource could not be found."}}'
OVERLOADED_EVENT = 'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'


def sse_events(text: str) -> list[tuple[str, dict]]:
    parser = SSEParser()
    events = []
    for line in text.encode().splitlines(keepends=True):
        decoded = parser.feed(line)
        if decoded is not None:
            events.append((decoded[0], orjson.loads(decoded[1])))
    return events


def translate_stream(text: str) -> tuple[StreamTranslator, list[dict]]:
    translator = StreamTranslator("fallback-model", created=1700000000)
    chunks = [chunk for _, event in sse_events(text) for chunk in translator.feed(event)]
    return translator, chunks


def reassemble(chunks: list[dict]) -> tuple[str, dict[int, dict]]:
    """Content text and tool calls by index, the way an OpenAI client accumulates deltas."""
    text, calls = "", {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] = call["function"].get("name") or slot["name"]
                slot["arguments"] += call["function"].get("arguments") or ""
    return text, calls


# --- requests ----------------------------------------------------------------------------------------------


def test_minimal_request_gets_required_max_tokens_and_block_content():
    request = to_anthropic_request({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello, Claude"}]})
    assert request == {
        "model": "claude-sonnet-4-5",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}],
    }


def test_system_and_developer_messages_become_top_level_system():
    one = to_anthropic_request({"model": "m", "messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]})
    assert one["system"] == "You are terse."
    assert [m["role"] for m in one["messages"]] == ["user"]

    several = to_anthropic_request({"model": "m", "messages": [
        {"role": "system", "content": "Rule one."},
        {"role": "developer", "content": [{"type": "text", "text": "Rule two.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "hi"}]})
    assert several["system"] == [
        {"type": "text", "text": "Rule one."},
        {"type": "text", "text": "Rule two.", "cache_control": {"type": "ephemeral"}},
    ]


def test_multipart_user_content_with_data_and_http_images():
    request = to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%2F%3E"}},
    ]}]})
    assert request["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2Zy8+"}},
    ]


def test_tool_calls_and_tool_results_round_a_conversation():
    request = to_anthropic_request({"model": "m", "messages": [
        {"role": "user", "content": "Weather in SF and NYC?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "SF"}'}},
            {"id": "call:02.x", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "NYC"}'}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "15 degrees"},
        {"role": "tool", "tool_call_id": "call:02.x", "content": [{"type": "text", "text": "20 degrees"}]},
        {"role": "user", "content": "Which is warmer?"},
    ]})
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in SF and NYC?"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "SF"}},
            {"type": "tool_use", "id": "call_02_x", "name": "get_weather", "input": {"location": "NYC"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "15 degrees"},
            {"type": "tool_result", "tool_use_id": "call_02_x", "content": [{"type": "text", "text": "20 degrees"}]},
            {"type": "text", "text": "Which is warmer?"},
        ]},
    ]


def test_consecutive_same_role_messages_merge_and_tool_results_lead():
    request = to_anthropic_request({"model": "m", "messages": [
        {"role": "user", "content": "first"},
        {"role": "user", "content": ""},
        {"role": "tool", "tool_call_id": "toolu_9", "content": "result"},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": "b  "},
    ]})
    assert request["messages"] == [
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "result"},
            {"type": "text", "text": "first"},
        ]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]


def test_tools_translate_to_input_schema():
    parameters = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
    request = to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "get_weather", "description": "Get the weather", "parameters": parameters}},
        {"type": "function", "function": {"name": "now"}},
    ]})
    assert request["tools"] == [
        {"name": "get_weather", "description": "Get the weather", "input_schema": parameters},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in request


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    (None, True, None),
])
def test_tool_choice(choice, parallel, expected):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert to_anthropic_request(body).get("tool_choice") == expected


def test_sampling_fields_map_and_unsupported_fields_drop():
    request = to_anthropic_request({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100, "max_completion_tokens": 300, "temperature": 1.7, "top_p": 0.9, "stop": "\n\nHuman:",
        "user": "user-42", "n": 1, "seed": 7, "frequency_penalty": 0.5, "presence_penalty": 0.1, "logprobs": True,
        "logit_bias": {"50256": -100}, "stream_options": {"include_usage": True}, "metadata": {"k": "v"}, "store": True,
    })
    assert request == {
        "model": "m", "max_tokens": 300, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 1.0, "top_p": 0.9, "stop_sequences": ["\n\nHuman:"], "metadata": {"user_id": "user-42"},
    }
    assert to_anthropic_request({"model": "m", "messages": [], "max_tokens": 50, "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]
    assert to_anthropic_request({"model": "m", "messages": [], "max_tokens": 50})["max_tokens"] == 50


def test_n_above_one_is_refused_clearly():
    with pytest.raises(exc.UpstreamBadRequest, match="n > 1 is not supported"):
        to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 3})


def test_json_response_formats_become_system_instructions():
    request = to_anthropic_request({"model": "m", "response_format": {"type": "json_object"}, "messages": [
        {"role": "system", "content": "Extract fields."}, {"role": "user", "content": "hi"}]})
    assert request["system"] == [{"type": "text", "text": "Extract fields."}, {"type": "text", "text": JSON_OBJECT_INSTRUCTION}]

    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    request = to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                    "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}})
    assert request["system"].startswith(JSON_OBJECT_INSTRUCTION)
    assert orjson.dumps(schema).decode() in request["system"]


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "function", "name": "f", "content": "x"}]},
    {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}]}]},
    {"messages": [{"role": "tool", "content": "orphan"}]},
    {"messages": [], "tools": [{"type": "web_search"}]},
])
def test_untranslatable_requests_raise_bad_request(body):
    with pytest.raises(exc.UpstreamBadRequest):
        to_anthropic_request({"model": "m", **body})


# --- responses ---------------------------------------------------------------------------------------------


def test_text_response():
    assert to_openai_response(TEXT_RESPONSE, "claude-3-7-sonnet", created=1700000000) == {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-3-7-sonnet-20250219",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi! My name is Claude."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    }


def test_tool_use_response_counts_cached_prompt_tokens():
    response = to_openai_response(TOOL_USE_RESPONSE, "m")
    choice = response["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check the current weather in San Francisco for you."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA", "unit": "celsius"}
    # Cache writes have no OpenAI field: they travel under LiteLLM's name, to be priced at the write rate.
    assert response["usage"] == {"prompt_tokens": 1484, "completion_tokens": 68, "total_tokens": 1552,
                                 "prompt_tokens_details": {"cached_tokens": 1000},
                                 "cache_creation_input_tokens": 100}
    usage = usage_from(TOOL_USE_RESPONSE["usage"])
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (1484, 1000, 100)


def test_tool_only_response_has_null_content_and_thinking_is_dropped():
    tool_only = {**TOOL_USE_RESPONSE, "content": TOOL_USE_RESPONSE["content"][1:]}
    assert to_openai_response(tool_only, "m")["choices"][0]["message"]["content"] is None
    response = to_openai_response(THINKING_RESPONSE, "m")
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "Based on my analysis..."}
    assert response["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"),
])
def test_finish_reason_mapping(stop_reason, finish):
    response = to_openai_response({**TEXT_RESPONSE, "stop_reason": stop_reason}, "m")
    assert response["choices"][0]["finish_reason"] == finish


# --- streams -----------------------------------------------------------------------------------------------


def test_text_stream_becomes_openai_chunks():
    translator, chunks = translate_stream(TEXT_STREAM)
    assert translator.done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY" for c in chunks)
    assert all(c["model"] == "claude-3-7-sonnet-20250219" for c in chunks)
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hello", "!"]
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40,
                                   "prompt_tokens_details": {"cached_tokens": 0}}
    assert translator.usage.total_tokens == 40
    assert reassemble(chunks) == ("Hello!", {})


def test_tool_use_stream_reassembles_arguments():
    translator, chunks = translate_stream(TOOL_STREAM)
    text, calls = reassemble(chunks)
    assert text == "Okay, let's check the weather for San Francisco, CA:"
    assert list(calls) == [0]
    assert calls[0]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" and calls[0]["name"] == "get_weather"
    assert orjson.loads(calls[0]["arguments"]) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 472 and chunks[-1]["usage"]["completion_tokens"] == 89


def test_stream_tool_indexes_count_tools_only_and_argumentless_calls_get_braces():
    events = [
        {"type": "message_start", "message": {"id": "msg_x", "model": "m", "usage": {"input_tokens": 3, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "now", "input": {}}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"x": 1}'}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
        {"type": "message_stop"},
    ]
    translator = StreamTranslator("m")
    chunks = [c for e in events for c in translator.feed(e)]
    text, calls = reassemble(chunks)
    assert text == ""
    assert calls == {0: {"id": "toolu_a", "name": "now", "arguments": "{}"},
                     1: {"id": "toolu_b", "name": "f", "arguments": '{"x": 1}'}}


def test_output_started_waits_for_content_not_message_start():
    translator = StreamTranslator("m")
    events = [event for _, event in sse_events(TEXT_STREAM)]
    translator.feed(events[0])
    assert not translator.output_started
    translator.feed(events[1])
    assert translator.output_started and not translator.done


def test_sse_parser_handles_crlf_comments_and_multiline_data():
    parser = SSEParser()
    lines = [b": keep-alive\r\n", b"\r\n", b"event: message_delta\r\n", b'data: {"a":\r\n', b"data: 1}\r\n", b"\r\n"]
    decoded = [d for d in map(parser.feed, lines) if d is not None]
    assert decoded == [("message_delta", b'{"a":\n1}')]


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("error_type", "status", "raised"), [
    ("invalid_request_error", 400, exc.UpstreamBadRequest),
    ("authentication_error", 401, exc.UpstreamAuthError),
    ("permission_error", 403, exc.UpstreamAuthError),
    ("not_found_error", 404, exc.UpstreamNotFound),  # a bad model name: the deployment's fault
    ("rate_limit_error", 429, exc.UpstreamRateLimited),
    ("api_error", 500, exc.UpstreamUnavailable),
    ("overloaded_error", 529, exc.UpstreamUnavailable),
    ("something_new", 500, exc.UpstreamUnavailable),
])
def test_error_types_map_through_from_status(error_type, status, raised):
    assert error_status(error_type) == status
    body = orjson.dumps({"type": "error", "error": {"type": error_type, "message": "m"}})
    assert isinstance(errors.from_status(status, body, {}, provider="anthropic", deployment="d"), raised)


def test_recorded_error_bodies():
    not_found = errors.from_status(404, ERROR_BODY, {}, provider="anthropic", deployment="d")
    assert "The requested resource could not be found." in not_found.message
    [(name, event)] = sse_events(OVERLOADED_EVENT)
    assert name == "error" and error_status(event["error"]["type"]) == 529
    too_long = orjson.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": "prompt is too long: 215312 tokens > 200000 maximum"}})
    assert isinstance(errors.from_status(400, too_long, {}, provider="anthropic", deployment="d"), exc.UpstreamContextTooLong)
