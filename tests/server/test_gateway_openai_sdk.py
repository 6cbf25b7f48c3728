"""The gateway through the official openai SDK (sync, async, streaming) over real loopback HTTP."""

from __future__ import annotations

import openai
import pytest

from ..conftest import GATEWAY_KEY


def client(gw, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10)


def test_auto_routes_an_easy_prompt_to_the_cheap_model_and_says_why(gateway, fake_upstream):
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Say hello"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the fake upstream."
    assert raw.headers["x-tierroute-model"] == "small"
    assert "tier general" in raw.headers["x-tierroute-reason"]
    assert "untrained default" in raw.headers["x-tierroute-reason"]  # the default policy: learned, no artifact
    assert float(raw.headers["x-tierroute-overhead-ms"]) >= 0
    # 11 prompt + 5 completion tokens at $0.1/$0.2 per million
    assert float(raw.headers["x-tierroute-cost-usd"]) == pytest.approx((11 * 0.1 + 5 * 0.2) / 1e6)
    assert fake_upstream.requests[-1]["model"] == "fake-small"
    assert fake_upstream.headers[-1]["Authorization"] == "Bearer sk-upstream"


def test_concrete_model_and_tier_names_are_honoured(gateway, fake_upstream):
    c = client(gateway)
    raw = c.chat.completions.with_raw_response.create(model="big", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-tierroute-model"] == "big"
    assert raw.headers["x-tierroute-reason"] == "requested"
    assert fake_upstream.requests[-1]["model"] == "fake-big"
    raw = c.chat.completions.with_raw_response.create(model="reasoning", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-tierroute-model"] == "big"


async def test_async_client(gateway):
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as c:
        completion = await c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content.startswith("Hello")
    assert completion.usage.completion_tokens == 5


def test_streaming_with_usage(gateway, fake_upstream):
    stream = client(gateway).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Hello from the fake upstream."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert fake_upstream.requests[-1]["stream"] is True


def test_streaming_without_usage_hides_the_usage_chunk_we_asked_for(gateway, fake_upstream):
    chunks = list(client(gateway).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(ch.usage is None for ch in chunks)
    assert all(ch.choices for ch in chunks)
    # the gateway asked upstream for usage anyway, to price the request
    assert fake_upstream.requests[-1]["stream_options"] == {"include_usage": True}


async def test_async_streaming(gateway):
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as c:
        stream = await c.chat.completions.create(model="big", messages=[{"role": "user", "content": "hi"}], stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == "Hello from the fake upstream."


def test_tools_and_json_mode_pass_through_and_constrain_the_choice(gateway, fake_upstream):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
    fake_upstream.behaviour.tool_call = {"id": "call_1", "type": "function",
                                         "function": {"name": "get_weather", "arguments": "{}"}}
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "weather?"}], tools=tools, tool_choice="auto")
    # "small" has no tool calling, so the cheapest eligible model of the tier is "mid"
    assert raw.headers["x-tierroute-model"] == "mid"
    assert fake_upstream.requests[-1]["tools"] == tools
    assert fake_upstream.requests[-1]["tool_choice"] == "auto"
    assert raw.parse().choices[0].message.tool_calls[0].function.name == "get_weather"
    client(gateway).chat.completions.create(model="auto", messages=[{"role": "user", "content": "json"}],
                                            response_format={"type": "json_object"})
    assert fake_upstream.requests[-1]["response_format"] == {"type": "json_object"}


def test_context_window_parity_skips_models_that_cannot_fit(gateway, fake_upstream):
    long_prompt = "word " * 4000  # about 5,000 tokens: too long for "small" (4,000)
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": long_prompt}])
    assert raw.headers["x-tierroute-model"] == "mid"
    # prompt fits "small" but prompt + max_tokens does not
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "short"}], max_tokens=3990)
    assert raw.headers["x-tierroute-model"] == "mid"


def test_nothing_fits_is_a_clear_400(gateway):
    huge = "word " * 40000  # about 50,000 tokens: over every general-tier window
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(model="auto", messages=[{"role": "user", "content": huge}])
    message = info.value.body["message"]
    assert "no model can serve this request" in message and "small: context window 4000" in message


def test_upstream_failures_map_to_status_and_gateway_keeps_serving(gateway, fake_upstream):
    c = client(gateway)
    fake_upstream.behaviour.status = 500
    with pytest.raises(openai.InternalServerError) as info:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    # every deployment of every eligible model was retried and failed: 503 naming each attempt
    assert info.value.status_code == 503
    assert "fake/fake-small" in info.value.message and "fake/fake-mid" in info.value.message
    fake_upstream.behaviour.status = 429
    fake_upstream.behaviour.retry_after = "7"
    with pytest.raises(openai.RateLimitError) as rl:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert rl.value.response.headers["retry-after"] == "7"
    fake_upstream.reset()
    assert c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}]).choices


def test_stream_cut_midway_ends_with_an_error_event_not_a_clean_end(gateway, fake_upstream):
    fake_upstream.behaviour.cut_stream_after = 3
    stream = client(gateway).chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert received, "chunks before the cut reach the client"
    assert "stream" in str(info.value.message)
    gateway.router.ledger.flush()
    entries = gateway.router.ledger.entries()
    assert entries[-1].status == "error" and entries[-1].error_kind == "unavailable"


def test_auth_required_when_keys_are_configured(keyed_gateway):
    with pytest.raises(openai.AuthenticationError):
        client(keyed_gateway, key="wrong").chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    ok = client(keyed_gateway, key=GATEWAY_KEY).chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert ok.choices[0].message.content


def test_models_endpoint_lists_auto_tiers_and_models(gateway):
    ids = [m.id for m in client(gateway).models.list()]
    assert ids[0] == "auto"
    assert {"reasoning", "general", "extraction", "big", "mid", "small"} <= set(ids)


def test_ledger_records_every_request(gateway, fake_upstream):
    c = client(gateway)
    for _ in range(3):
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    list(c.chat.completions.create(model="big", messages=[{"role": "user", "content": "hi"}], stream=True))
    gateway.router.ledger.flush()
    entries = gateway.router.ledger.entries()
    assert [e.chosen_model for e in entries] == ["small", "small", "small", "big"]
    assert all(e.status == "ok" and e.prompt_tokens == 11 and e.completion_tokens == 5 for e in entries)
    assert entries[-1].stream and entries[-1].ttft_ms is not None
    assert entries[0].baseline_cost_usd == pytest.approx((11 * 10 + 5 * 30) / 1e6)
    assert entries[0].prompt is None, "prompt text is not stored unless enabled"
