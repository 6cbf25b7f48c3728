"""The official anthropic SDK against the gateway's ``/v1/messages``, answered by OpenAI- and Anthropic-format upstreams."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlparse

import anthropic
import pytest

from ..conftest import GATEWAY_KEY
from ..fakes.anthropic_upstream import API_KEY, FakeAnthropic, Reply, text_message

WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str]:
    """A plain HTTP POST (no SDK between the test and the wire), returning the status and the whole body."""
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        conn.request("POST", parsed.path, body=json.dumps(body),
                     headers={"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def client(gw, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=10)


def test_messages_routes_and_translates_both_ways(gateway, fake_upstream):
    raw = client(gateway).messages.with_raw_response.create(
        model="auto", max_tokens=64, system="Be brief.", stop_sequences=["END"], extra_body={"temperature": 0.2},
        messages=[{"role": "user", "content": "Say hello"}], metadata={"user_id": "u-42"})
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Hello from the fake upstream."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 5)
    assert message.model == raw.headers["x-tierroute-model"] == "small"
    assert message.id.startswith("msg_")
    assert raw.headers["request-id"] == raw.headers["x-tierroute-request-id"]
    sent = fake_upstream.requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    assert (sent["max_tokens"], sent["stop"], sent["temperature"], sent["user"]) == (64, ["END"], 0.2, "u-42")
    assert sent["model"] == "fake-small"


def test_a_json_schema_output_routes_to_a_json_capable_model(gateway, fake_upstream):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    raw = client(gateway).messages.with_raw_response.create(
        model="auto", max_tokens=64, messages=[{"role": "user", "content": "Say hello"}],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}})
    assert raw.status_code == 200
    assert fake_upstream.requests[-1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
    assert "output_config" not in fake_upstream.requests[-1]


def test_a_concrete_model_and_a_tier_are_honoured(gateway, fake_upstream):
    c = client(gateway)
    raw = c.messages.with_raw_response.create(model="big", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-tierroute-model"] == "big" and raw.headers["x-tierroute-reason"] == "requested"
    raw = c.messages.with_raw_response.create(model="reasoning", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-tierroute-model"] == "big"


def test_streaming_follows_anthropics_event_sequence(gateway, fake_upstream):
    with client(gateway).messages.stream(model="auto", max_tokens=64,
                                         messages=[{"role": "user", "content": "hi"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert "message_delta" in kinds
    assert final.content[0].text == "Hello from the fake upstream."
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5
    assert fake_upstream.requests[-1]["stream_options"] == {"include_usage": True}


def test_tools_round_trip(gateway, fake_upstream):
    fake_upstream.behaviour.tool_call = TOOL_CALL
    c = client(gateway)
    message = c.messages.create(model="big", max_tokens=100, tools=[WEATHER_TOOL],
                                tool_choice={"type": "tool", "name": "get_weather"},
                                messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert (block.type, block.id, block.name, block.input) == ("tool_use", "call_1", "get_weather", {"city": "Paris"})
    sent = fake_upstream.requests[-1]
    assert sent["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                               "parameters": WEATHER_TOOL["input_schema"]}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}

    fake_upstream.behaviour.tool_call = None
    c.messages.create(model="big", max_tokens=100, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "call_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                                     {"type": "text", "text": "Thanks"}]},
    ])
    sent = fake_upstream.requests[-1]["messages"]
    assert sent[1] == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"}
    assert sent[3] == {"role": "user", "content": "Thanks"}


def test_text_stream(gateway, fake_upstream):
    fake_upstream.behaviour.text = "one two"
    with client(gateway).messages.stream(model="auto", max_tokens=64,
                                         messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == "one two"


def test_images_become_image_parts(gateway, fake_upstream):
    client(gateway).messages.create(model="big", max_tokens=10, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "What is this?"}]}])
    content = fake_upstream.requests[-1]["messages"][0]["content"]
    assert content == [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                       {"type": "text", "text": "What is this?"}]


async def test_async_client(gateway):
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="x", max_retries=0) as c:
        message = await c.messages.create(model="auto", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].text.startswith("Hello")
        async with c.messages.stream(model="auto", max_tokens=20, messages=[{"role": "user", "content": "hi"}]) as stream:
            text = "".join([t async for t in stream.text_stream])
        assert text == "Hello from the fake upstream."


def test_errors_come_in_anthropics_shape(keyed_gateway, fake_upstream):
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(keyed_gateway, "wrong").messages.create(model="auto", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "authentication_error"
    c = client(keyed_gateway, GATEWAY_KEY)
    with pytest.raises(anthropic.NotFoundError) as info:
        c.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["type"] == "not_found_error" and "no-such-model" in info.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as info:
        c.messages.create(model="auto", max_tokens=5, messages=[{"role": "tool", "content": "x"}])  # type: ignore[typeddict-item]
    assert "messages[0].role" in info.value.body["error"]["message"]
    headers = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
    status, body = post(f"{keyed_gateway.url}/v1/messages", {"model": "auto", "messages": [{"role": "user", "content": "x"}]},
                        headers)
    assert status == 400
    assert json.loads(body) == {"type": "error", "error": {"type": "invalid_request_error",
                                                           "message": "max_tokens: required field is missing"}}
    status, body = post(f"{keyed_gateway.url}/v1/messages",
                        {"model": "auto", "max_tokens": 5, "thinking": {"type": "enabled", "budget_tokens": 1024},
                         "messages": [{"role": "user", "content": "x"}]}, headers)
    assert status == 400 and "thinking" in json.loads(body)["error"]["message"]


def test_upstream_failure_mid_stream_ends_with_an_error_event(gateway, fake_upstream):
    fake_upstream.behaviour.cut_stream_after = 3
    status, body = post(f"{gateway.url}/v1/messages", {
        "model": "small", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200
    assert "event: error" in body and "message_stop" not in body


def test_count_tokens(gateway):
    short = client(gateway).messages.count_tokens(model="auto", messages=[{"role": "user", "content": "hi"}])
    long = client(gateway).messages.count_tokens(model="auto", system="You are terse. " * 50,
                                                 messages=[{"role": "user", "content": "hi"}])
    assert 0 < short.input_tokens < long.input_tokens


async def test_answered_by_an_anthropic_upstream(gateway_factory, fake_upstream):
    fake = FakeAnthropic()
    url = await fake.start()
    try:
        gw = gateway_factory(providers={"fake": {"kind": "openai", "api_base": f"{fake_upstream.url}/v1"},
                                        "anthropic": {"kind": "anthropic", "api_base": url, "api_key": API_KEY}})
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key="x", max_retries=0) as c:
            fake.queue(Reply(message=text_message("Bonjour!", input_tokens=30, output_tokens=4)))
            message = await c.messages.create(model="claude-haiku-4-5", max_tokens=100, system="Answer in French.",
                                              messages=[{"role": "user", "content": "Hello"}])
            assert message.content[0].text == "Bonjour!"
            assert (message.usage.input_tokens, message.usage.output_tokens) == (30, 4)
            sent = fake.requests[-1].body
            assert sent["system"] == "Answer in French." and sent["max_tokens"] == 100

            tool_use = {**text_message(), "stop_reason": "tool_use", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]}
            fake.queue(Reply(message=tool_use))
            async with c.messages.stream(model="claude-haiku-4-5", max_tokens=100, tools=[WEATHER_TOOL],
                                         messages=[{"role": "user", "content": "Weather?"}]) as stream:
                final = await stream.get_final_message()
            assert [b.type for b in final.content] == ["text", "tool_use"]
            assert final.content[0].text == "Let me check."
            assert (final.content[1].name, final.content[1].input) == ("get_weather", {"city": "Paris"})
            assert final.stop_reason == "tool_use"
    finally:
        await fake.close()
