"""The openai SDK's ``client.responses`` against the gateway's ``/v1/responses``, stateless (``store: false``)."""

from __future__ import annotations

import json

import openai
import pytest

from ..fakes.anthropic_upstream import API_KEY, FakeAnthropic, Reply, text_message

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10)


def test_text_input_routes_and_answers(gateway, fake_upstream):
    raw = client(gateway).responses.with_raw_response.create(
        model="auto", input="Say hello", instructions="Be brief.", max_output_tokens=50, store=False,
        metadata={"job": "7"})
    response = raw.parse()
    assert response.output_text == "Hello from the fake upstream."
    assert response.status == "completed" and response.store is False
    assert response.model == raw.headers["x-tierroute-model"] == "small"
    assert response.metadata == {"job": "7"}
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 5, 16)
    sent = fake_upstream.requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    assert sent["max_tokens"] == 50


def test_message_items_and_a_tool_call_round_trip(gateway, fake_upstream):
    fake_upstream.behaviour.tool_call = TOOL_CALL
    c = client(gateway)
    response = c.responses.create(model="big", tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"},
                                  input=[{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}])
    (call,) = response.output
    assert (call.type, call.call_id, call.name, json.loads(call.arguments)) == (
        "function_call", "call_1", "get_weather", {"city": "Paris"})
    sent = fake_upstream.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}

    fake_upstream.behaviour.tool_call = None
    response = c.responses.create(model="big", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"}])
    assert response.output_text.startswith("Hello")
    sent = fake_upstream.requests[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "18C"}


def test_json_schema_text_format(gateway, fake_upstream):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}
    client(gateway).responses.create(model="auto", input="x",
                                     text={"format": {"type": "json_schema", "name": "thing", "schema": schema,
                                                      "strict": True}})
    assert fake_upstream.requests[-1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": True}}


def test_streaming_events_build_the_final_response(gateway, fake_upstream):
    fake_upstream.behaviour.text = "one two three"
    with client(gateway).responses.stream(model="auto", input="count") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 3
    assert final.output_text == "one two three" and final.usage.output_tokens == 3


def test_raw_stream_events_are_numbered_and_typed(gateway):
    events = list(client(gateway).responses.create(model="auto", input="hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done[0].item.content[0].text == "Hello from the fake upstream."


@pytest.mark.parametrize("kwargs, fragment", [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"background": True}, "background"),
])
def test_unsupported_features_are_refused_by_name(gateway, kwargs, fragment):
    arguments = {"model": "auto", "input": "hi", **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).responses.create(**arguments)
    assert info.value.body["message"].startswith(fragment)


def test_unknown_model_is_a_404(gateway):
    with pytest.raises(openai.NotFoundError):
        client(gateway).responses.create(model="no-such-model", input="hi")


async def test_answered_by_an_anthropic_upstream(gateway_factory, fake_upstream):
    fake = FakeAnthropic()
    url = await fake.start()
    try:
        gw = gateway_factory(providers={"fake": {"kind": "openai", "api_base": f"{fake_upstream.url}/v1"},
                                        "anthropic": {"kind": "anthropic", "api_base": url, "api_key": API_KEY}})
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as c:
            fake.queue(Reply(message={**text_message("Cut sh"), "stop_reason": "max_tokens"}))
            response = await c.responses.create(model="claude-haiku-4-5", input="Tell me a story", max_output_tokens=3)
            assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
            assert response.output_text == "Cut sh"

            tool_use = {**text_message(), "stop_reason": "tool_use", "content": [
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]}
            fake.queue(Reply(message=tool_use))
            async with c.responses.stream(model="claude-haiku-4-5", input="Weather?", tools=[WEATHER]) as stream:
                final = await stream.get_final_response()
            (call,) = final.output
            assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "get_weather", {"city": "Paris"})
            assert call.call_id == "toolu_01"
    finally:
        await fake.close()
