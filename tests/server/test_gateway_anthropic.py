"""OpenAI clients reach Claude through the gateway: the Anthropic wire format translated both ways."""

from __future__ import annotations

import openai

from ..fakes.anthropic_upstream import API_KEY, FakeAnthropic, Reply, text_message


async def test_openai_sdk_to_anthropic_upstream(gateway_factory, fake_upstream):
    fake = FakeAnthropic()
    url = await fake.start()
    try:
        gw = gateway_factory(providers={"fake": {"kind": "openai", "api_base": f"{fake_upstream.url}/v1"},
                                        "anthropic": {"kind": "anthropic", "api_base": url, "api_key": API_KEY}})
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as client:
            fake.queue(Reply(message=text_message("Bonjour!", input_tokens=30, output_tokens=4)))
            raw = await client.chat.completions.with_raw_response.create(
                model="claude-haiku-4-5", max_tokens=100,
                messages=[{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}])
            completion = raw.parse()
            assert completion.choices[0].message.content == "Bonjour!"
            assert completion.choices[0].finish_reason == "stop"
            assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (30, 4)
            assert raw.headers["x-tierroute-model"] == "claude-haiku-4-5"
            assert float(raw.headers["x-tierroute-cost-usd"]) == (30 * 1.0 + 4 * 5.0) / 1e6
            sent = fake.requests[-1].body
            assert sent["system"] == "Answer in French." and sent["model"] == "claude-haiku-4-5-20251001"
            assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]

            fake.queue(Reply(message=text_message("Salut tout le monde")))
            stream = await client.chat.completions.create(
                model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hi"}], stream=True,
                stream_options={"include_usage": True})
            chunks = [c async for c in stream]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Salut tout le monde"
            assert chunks[-1].usage.completion_tokens == 9
    finally:
        await fake.close()
