"""Prompt-cache tokens are priced at the cache rates, through the gateway, for both wire formats.

Before: every prompt token was billed at ``input_price``, so an Anthropic cache read (0.1x input) cost ten
times too much and OpenAI's cached input (0.1x-0.5x) was charged in full.
"""

from __future__ import annotations

import sqlite3
import time

import openai
import pytest

from ..conftest import fake_settings
from ..fakes.anthropic_upstream import API_KEY, FakeAnthropic, Reply, text_message

CACHED_MODEL = {"id": "cached", "provider": "fake", "upstream": "fake-cached", "context_window": 200000,
                "input_price": 2.0, "output_price": 8.0, "cached_input_price": 0.5, "tier": "general", "quality": 0.9}


def _ledger_cost(path: str) -> float:
    """The final row's recorded cost, once the ledger's writer has flushed it."""
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT cost_usd FROM requests WHERE final = 1").fetchall()
        if rows or time.monotonic() > deadline:
            assert len(rows) == 1
            return float(rows[0][0])
        time.sleep(0.05)


def _with_cached_model(fake_upstream, tmp_path):
    base = fake_settings(fake_upstream.url, tmp_path)
    return fake_settings(fake_upstream.url, tmp_path,
                         models=[m.model_dump(exclude_none=True) for m in base.models] + [CACHED_MODEL])


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_cached_input_priced_at_the_cached_rate(serve_settings, fake_upstream, tmp_path, stream):
    settings = _with_cached_model(fake_upstream, tmp_path)
    gw = serve_settings(settings)
    fake_upstream.behaviour.prompt_tokens = 1000
    fake_upstream.behaviour.cached_tokens = 800
    fake_upstream.behaviour.text = "one two three four"
    expected = (200 * 2.0 + 800 * 0.5 + 4 * 8.0) / 1e6  # not (1000 * 2.0 + 4 * 8.0) / 1e6
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as client:
        if not stream:
            raw = await client.chat.completions.with_raw_response.create(
                model="cached", messages=[{"role": "user", "content": "Hello"}])
            completion = raw.parse()
            assert completion.usage.prompt_tokens_details.cached_tokens == 800
            assert float(raw.headers["x-tierroute-cost-usd"]) == pytest.approx(expected, abs=1e-8)
        else:
            chunks = [c async for c in await client.chat.completions.create(
                model="cached", messages=[{"role": "user", "content": "Hello"}], stream=True,
                stream_options={"include_usage": True})]
            assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 800
    assert _ledger_cost(settings.ledger.path) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_cache_reads_and_writes_priced_apart(serve_settings, fake_upstream, tmp_path, stream):
    fake = FakeAnthropic()
    url = await fake.start()
    try:
        settings = fake_settings(fake_upstream.url, tmp_path, providers={
            "fake": {"kind": "openai", "api_base": f"{fake_upstream.url}/v1"},
            "anthropic": {"kind": "anthropic", "api_base": url, "api_key": API_KEY}})
        gw = serve_settings(settings)
        message = text_message("Bonjour tout le monde", input_tokens=100, output_tokens=10)
        message["usage"].update({"cache_read_input_tokens": 5000, "cache_creation_input_tokens": 2000})
        fake.queue(Reply(message=message))
        spec = gw.router.catalog.models["claude-haiku-4-5"]
        assert spec.cached_input_price == pytest.approx(spec.input_price * 0.1)
        assert spec.cache_write_price == pytest.approx(spec.input_price * 1.25)
        expected = (100 * spec.input_price + 5000 * spec.cached_input_price + 2000 * spec.cache_write_price
                    + 10 * spec.output_price) / 1e6
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as client:
            if not stream:
                raw = await client.chat.completions.with_raw_response.create(
                    model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hello"}])
                completion = raw.parse()
                assert completion.usage.prompt_tokens == 7100
                assert completion.usage.prompt_tokens_details.cached_tokens == 5000
                assert float(raw.headers["x-tierroute-cost-usd"]) == pytest.approx(expected, abs=1e-8)
            else:
                chunks = [c async for c in await client.chat.completions.create(
                    model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hello"}],
                    stream=True, stream_options={"include_usage": True})]
                assert chunks[-1].usage.prompt_tokens == 7100
        assert _ledger_cost(settings.ledger.path) == pytest.approx(expected, abs=1e-9)
    finally:
        await fake.close()


def test_cache_counts_never_charge_more_than_the_prompt() -> None:
    from tierroute.types import ModelSpec

    spec = ModelSpec(id="m", provider="p", upstream="m", context_window=1000, max_output_tokens=100,
                     input_price=1.0, output_price=2.0, cached_input_price=0.1, cache_write_price=1.25)
    # A report claiming more cached/written tokens than the prompt had is clamped to the prompt.
    assert spec.cost_usd(100, 0, cached_tokens=500, cache_write_tokens=500) == pytest.approx(100 * 0.1 / 1e6)
    assert spec.cost_usd(100, 0, cached_tokens=40, cache_write_tokens=500) == pytest.approx(
        (40 * 0.1 + 60 * 1.25) / 1e6)


def test_long_context_prices_apply_above_the_threshold() -> None:
    from tierroute.types import ModelSpec

    spec = ModelSpec(id="m", provider="p", upstream="m", context_window=1_000_000, max_output_tokens=100,
                     input_price=1.25, output_price=10.0, long_context_threshold=200_000,
                     long_context_input_price=2.5, long_context_output_price=15.0)
    assert spec.cost_usd(200_000, 100) == pytest.approx((200_000 * 1.25 + 100 * 10.0) / 1e6)
    assert spec.cost_usd(200_001, 100) == pytest.approx((200_001 * 2.5 + 100 * 15.0) / 1e6)
