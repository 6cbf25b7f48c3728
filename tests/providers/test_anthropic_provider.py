"""AnthropicProvider over real HTTP against a loopback fake that speaks the Messages API wire format."""

from __future__ import annotations

import anthropic
import orjson
import pytest

from tests.fakes.anthropic_upstream import ANTHROPIC_VERSION, API_KEY, FakeAnthropic, Reply, text_message
from tierroute import _exceptions as exc
from tierroute.config import ProviderSettings
from tierroute.providers import AnthropicProvider, build_provider
from tierroute.types import Deployment

MODEL = "claude-fake-1"
DEPLOYMENT = Deployment(id="claude-fake@anthropic", model="claude-fake", provider="anthropic", upstream=MODEL)
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}

TOOL_MESSAGE = {
    "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": MODEL,
    "content": [
        {"type": "thinking", "thinking": "The user wants two cities.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "Checking both cities."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"location": "New York, NY", "unit": "c"}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 400, "cache_read_input_tokens": 600, "output_tokens": 90},
}


@pytest.fixture
async def upstream():
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.close()


def make_provider(url: str, **overrides) -> AnthropicProvider:
    settings = ProviderSettings(kind="anthropic", api_base=url, api_key=API_KEY, **overrides)
    provider = build_provider("anthropic", settings)
    assert isinstance(provider, AnthropicProvider)
    return provider


@pytest.fixture
async def provider(upstream):
    provider = make_provider(upstream.url, first_token_timeout_seconds=5)
    yield provider
    await provider.aclose()


def chat(content: str = "Hello, Claude", **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


async def collect(provider: AnthropicProvider, body: dict) -> list[dict]:
    return [chunk async for chunk in provider.stream(DEPLOYMENT, body)]


def reassemble(chunks: list[dict]) -> tuple[str, dict[int, dict]]:
    text, calls = "", {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            text += choice["delta"].get("content") or ""
            for call in choice["delta"].get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] = call["function"].get("name") or slot["name"]
                slot["arguments"] += call["function"].get("arguments") or ""
    return text, calls


# --- success paths -----------------------------------------------------------------------------------------


async def test_complete_sends_wire_format_and_returns_openai_shape(upstream, provider):
    completion = await provider.complete(DEPLOYMENT, chat(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, Claude"}],
        temperature=0.2, stop=["END"], user="u-1", seed=3))

    [recorded] = upstream.requests
    assert recorded.headers["x-api-key"] == API_KEY
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert recorded.headers["Content-Type"] == "application/json"
    assert recorded.body == {
        "model": MODEL, "max_tokens": 4096, "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}],
        "temperature": 0.2, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
    }
    response = completion.response
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "Hi! My name is Claude."}
    assert response["choices"][0]["finish_reason"] == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (21, 9)
    assert response["usage"]["total_tokens"] == 30


async def test_configured_headers_are_sent(upstream):
    provider = make_provider(upstream.url, headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    try:
        await provider.complete(DEPLOYMENT, chat())
    finally:
        await provider.aclose()
    assert upstream.requests[0].headers["anthropic-beta"] == "prompt-caching-2024-07-31"


async def test_complete_with_tool_use(upstream, provider):
    upstream.queue(Reply(message=TOOL_MESSAGE))
    completion = await provider.complete(DEPLOYMENT, chat("Weather in SF and NYC?", tools=[WEATHER_TOOL],
                                                          tool_choice="required", parallel_tool_calls=True))
    assert upstream.requests[0].body["tool_choice"] == {"type": "any"}
    assert upstream.requests[0].body["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    choice = completion.response["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking both cities."
    assert [orjson.loads(c["function"]["arguments"]) for c in choice["message"]["tool_calls"]] == [
        {"location": "San Francisco, CA"}, {"location": "New York, NY", "unit": "c"}]
    assert completion.usage.prompt_tokens == 1000


async def test_stream_text(upstream, provider):
    upstream.queue(Reply(message=text_message("The quick brown fox jumps over the lazy dog.", input_tokens=12, output_tokens=11)))
    chunks = await collect(provider, chat())
    assert upstream.requests[0].body["stream"] is True
    assert "stream_options" not in upstream.requests[0].body
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(chunks) > 5  # real deltas, not one blob
    assert reassemble(chunks) == ("The quick brown fox jumps over the lazy dog.", {})
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 11, "total_tokens": 23,
                                   "prompt_tokens_details": {"cached_tokens": 0}}


async def test_stream_tool_calls_reassemble_per_index(upstream, provider):
    upstream.queue(Reply(message=TOOL_MESSAGE))
    chunks = await collect(provider, chat("Weather?", tools=[WEATHER_TOOL]))
    text, calls = reassemble(chunks)
    assert text == "Checking both cities."
    assert sorted(calls) == [0, 1]
    assert [calls[i]["id"] for i in (0, 1)] == ["toolu_01A", "toolu_01B"]
    assert orjson.loads(calls[1]["arguments"]) == {"location": "New York, NY", "unit": "c"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 1000 and chunks[-1]["usage"]["completion_tokens"] == 90


# --- failures ----------------------------------------------------------------------------------------------


async def test_rate_limited_carries_retry_after(upstream, provider):
    upstream.queue(Reply(status=429, error_type="rate_limit_error", error_message="Number of request tokens has exceeded your per-minute rate limit",
                         headers={"retry-after": "7"}))
    with pytest.raises(exc.UpstreamRateLimited) as caught:
        await provider.complete(DEPLOYMENT, chat())
    assert caught.value.retry_after_seconds == 7.0
    assert caught.value.upstream_status == 429 and caught.value.deployment == DEPLOYMENT.id


async def test_rate_limited_before_stream_starts(upstream, provider):
    upstream.queue(Reply(status=429, error_type="rate_limit_error", error_message="slow down", headers={"retry-after": "2"}))
    with pytest.raises(exc.UpstreamRateLimited) as caught:
        await collect(provider, chat())
    assert caught.value.retry_after_seconds == 2.0


async def test_overloaded_is_unavailable(upstream, provider):
    upstream.queue(Reply(status=529, error_type="overloaded_error", error_message="Overloaded"))
    with pytest.raises(exc.UpstreamUnavailable) as caught:
        await provider.complete(DEPLOYMENT, chat())
    assert caught.value.upstream_status == 529 and "Overloaded" in caught.value.message


async def test_prompt_too_long_is_context_too_long(upstream, provider):
    upstream.queue(Reply(status=400, error_type="invalid_request_error",
                         error_message="prompt is too long: 215312 tokens > 200000 maximum"))
    with pytest.raises(exc.UpstreamContextTooLong):
        await provider.complete(DEPLOYMENT, chat())


async def test_wrong_key_is_auth_error(upstream):
    provider = AnthropicProvider("anthropic", ProviderSettings(kind="anthropic", api_base=upstream.url, api_key="wrong"))
    try:
        with pytest.raises(exc.UpstreamAuthError):
            await provider.complete(DEPLOYMENT, chat())
    finally:
        await provider.aclose()


async def test_untranslatable_request_is_refused_before_sending(upstream, provider):
    with pytest.raises(exc.UpstreamBadRequest, match="n > 1") as caught:
        await provider.complete(DEPLOYMENT, chat(n=2))
    assert caught.value.provider == "anthropic" and caught.value.deployment == DEPLOYMENT.id
    assert upstream.requests == []


@pytest.mark.parametrize("abort", [False, True])
async def test_stream_cut_midway_is_unavailable(upstream, provider, abort):
    upstream.queue(Reply(cut_after_events=6, abort=abort))
    chunks = []
    with pytest.raises(exc.UpstreamUnavailable) as caught:
        async for chunk in provider.stream(DEPLOYMENT, chat()):
            chunks.append(chunk)
    assert chunks  # the caller already received part of the answer
    if not abort:
        assert "stream ended before message_stop" in caught.value.message


@pytest.mark.parametrize(("error_type", "raised"), [
    ("overloaded_error", exc.UpstreamUnavailable),
    ("rate_limit_error", exc.UpstreamRateLimited),
    ("api_error", exc.UpstreamUnavailable),
])
async def test_error_event_mid_stream(upstream, provider, error_type, raised):
    upstream.queue(Reply(cut_after_events=5, stream_error=(error_type, "Overloaded")))
    with pytest.raises(raised) as caught:
        await collect(provider, chat())
    assert type(caught.value) is raised


async def test_first_token_timeout_ignores_message_start(upstream):
    upstream.queue(Reply(cut_after_events=1, stall=True))
    provider = make_provider(upstream.url, first_token_timeout_seconds=0.2)
    try:
        with pytest.raises(exc.UpstreamTimeout, match="first token"):
            await collect(provider, chat())
    finally:
        await provider.aclose()


async def test_connection_refused_is_unavailable(upstream):
    url = upstream.url
    await upstream.close()
    provider = make_provider(url)
    try:
        with pytest.raises(exc.UpstreamUnavailable):
            await provider.complete(DEPLOYMENT, chat())
    finally:
        await provider.aclose()


# --- the fake speaks the real wire format ------------------------------------------------------------------


@pytest.fixture
async def sdk(upstream):
    # The installed SDK defaults to a newer API version; pin the one the fake (and the provider) speak.
    client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=upstream.url, max_retries=0,
                                      default_headers={"anthropic-version": ANTHROPIC_VERSION})
    yield client
    await client.close()


async def test_official_sdk_create(upstream, sdk):
    upstream.queue(Reply(message=TOOL_MESSAGE))
    message = await sdk.messages.create(model=MODEL, max_tokens=256,
                                        messages=[{"role": "user", "content": "Weather?"}])
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[3].input == {"location": "New York, NY", "unit": "c"}
    assert message.usage.cache_read_input_tokens == 600


async def test_official_sdk_stream_accumulates_the_fake_events(upstream, sdk):
    upstream.queue(Reply(message=TOOL_MESSAGE))
    async with sdk.messages.stream(model=MODEL, max_tokens=256,
                                   messages=[{"role": "user", "content": "Weather?"}]) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Checking both cities."
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].thinking == "The user wants two cities."
    assert final.content[0].signature == "EqQBCgIYAhIM"
    assert [b.input for b in final.content[2:]] == [b["input"] for b in TOOL_MESSAGE["content"][2:]]
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 90


async def test_official_sdk_sees_the_fake_errors(upstream, sdk):
    upstream.queue(Reply(status=529, error_type="overloaded_error", error_message="Overloaded"),
                   Reply(status=429, error_type="rate_limit_error", error_message="slow down", headers={"retry-after": "1"}))
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await sdk.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert overloaded.value.status_code == 529
    with pytest.raises(anthropic.RateLimitError):
        await sdk.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}])


async def test_official_sdk_request_passes_the_fake_validation_like_ours(upstream, sdk, provider):
    """The SDK and the provider build the same request for the same conversation."""
    tool = {"name": "get_weather", "description": "Get the current weather",
            "input_schema": WEATHER_TOOL["function"]["parameters"]}
    await sdk.messages.create(model=MODEL, max_tokens=4096, system="Be brief.", tools=[tool],
                              tool_choice={"type": "auto", "disable_parallel_tool_use": True},
                              messages=[{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}])
    await provider.complete(DEPLOYMENT, chat(messages=[{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": "Hello, Claude"}],
                                             tools=[WEATHER_TOOL], parallel_tool_calls=False))
    sdk_request, our_request = (r.body for r in upstream.requests)
    assert our_request == sdk_request
