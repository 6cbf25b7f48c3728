"""Stream events of the wrong shape, through a real gateway on loopback, for both wire formats and both HTTP
clients: after content the stream ends with a well-formed error event and the ledger records a failure with
what was delivered; before content the request fails over (or gets a clean error response)."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import orjson
import pytest

from .conftest import ANTHROPIC_MODELS, MODELS, OPENAI_MODELS, hostile_settings, ledger_rows

OPENAI_BAD = ["array", "usage-string", "choices-object", "content-number", "string"]
ANTHROPIC_BAD = ["array", "usage-string", "text-number"]
CASES = [(m, bad) for m in OPENAI_MODELS for bad in OPENAI_BAD] + [(m, bad) for m in ANTHROPIC_MODELS for bad in ANTHROPIC_BAD]


async def stream_events(url: str, model: str, scenario: str) -> tuple[int, list[Any], bytes]:
    """POST a streamed request; return the status, each ``data:`` payload decoded (``[DONE]`` as a string)
    and the raw body."""
    body = {"model": model, "stream": True, "max_tokens": 50,
            "messages": [{"role": "user", "content": f"scenario: {scenario}"}]}
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/chat/completions", json=body) as resp:
        raw = await resp.read()
    if resp.status != 200:
        return resp.status, [orjson.loads(raw)], raw
    events: list[Any] = []
    for block in raw.split(b"\n\n"):
        if block.startswith(b"data: "):
            payload = block[6:]
            events.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))  # every event is valid JSON
    return resp.status, events, raw


@pytest.mark.parametrize(("model", "bad"), CASES, ids=[f"{m}-{b}" for m, b in CASES])
async def test_a_malformed_event_after_content_ends_the_stream_with_an_error_event(serve_settings, hostile, tmp_path,
                                                                                   model, bad):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    status, events, raw = await stream_events(gw.url, model, f"bad-event-after-{bad}")
    assert status == 200
    assert raw.endswith(b"\n\n") and events, raw[-300:]
    last = events[-1]
    assert isinstance(last, dict) and "error" in last, f"the stream must end with an error event: {raw[-300:]!r}"
    assert "malformed" in last["error"]["message"] and last["error"]["code"] == "unavailable"
    assert "[DONE]" not in events
    delivered = "".join(c["delta"].get("content") or "" for e in events[:-1] if isinstance(e, dict)
                        for c in e.get("choices", ()))
    assert delivered.startswith("Hello") and "more" not in delivered  # nothing after the bad event is relayed

    rows = ledger_rows(gw)
    (entries,) = rows.values()
    final = entries[-1]
    assert final.final and final.status == "error" and final.error_kind == "unavailable" and final.http_status == 502
    assert final.completion_tokens > 0 and final.cost_usd > 0, "what was delivered is charged"


@pytest.mark.parametrize("bad", ["array", "usage-string"])
async def test_a_malformed_first_event_fails_over_to_the_next_deployment(serve_settings, hostile, fake_upstream,
                                                                         tmp_path, bad):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path, good_url=fake_upstream.url))
    status, events, _ = await stream_events(gw.url, "fo", f"bad-event-first-{bad}")
    assert status == 200
    assert events[-1] == "[DONE]"
    text = "".join(c["delta"].get("content") or "" for e in events if isinstance(e, dict) for c in e.get("choices", ()))
    assert text == "Hello from the fake upstream."
    (entries,) = ledger_rows(gw).values()
    entries.sort(key=lambda e: e.attempt)
    assert [(e.chosen_model, e.status) for e in entries] == [("fo", "error"), ("good", "ok")]
    assert entries[0].error_kind == "unavailable" and entries[0].http_status == 502


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
@pytest.mark.parametrize("bad", ["array", "usage-string"])
async def test_a_malformed_first_anthropic_event_is_a_clean_upstream_error(serve_settings, hostile, tmp_path, model, bad):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    status, (body,), _ = await stream_events(gw.url, model, f"bad-event-first-{bad}")
    assert status == 503 and "malformed" in body["error"]["message"]
    (entries,) = ledger_rows(gw).values()
    assert entries[-1].status == "error" and entries[-1].http_status == 503


@pytest.mark.parametrize("model", list(MODELS))
async def test_well_formed_streams_still_pass(serve_settings, hostile, tmp_path, model):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    status, events, _ = await stream_events(gw.url, model, "ok")
    assert status == 200 and events[-1] == "[DONE]"
    (entries,) = ledger_rows(gw).values()
    assert entries[-1].status == "ok" and entries[-1].completion_tokens > 0


@pytest.mark.parametrize("model", OPENAI_MODELS)
async def test_the_openai_sdk_sees_the_error_event_as_an_error(serve_settings, hostile, tmp_path, model):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    text = []
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=20) as client:
        stream = await client.chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": "scenario: bad-event-after-usage-string"}])
        with pytest.raises(openai.APIError, match="malformed"):
            async for chunk in stream:
                text += [c.delta.content or "" for c in chunk.choices]
    assert "".join(text) == "Hello there"


@pytest.mark.parametrize("model", list(MODELS))
async def test_negative_usage_in_a_stream_is_relayed_and_recorded_as_suspect_not_a_failure(serve_settings, hostile,
                                                                                         tmp_path, model):
    # The answer is fine; only its usage figure is absurd: the client gets the whole answer, and the usage is
    # clamped and marked suspect before anything is charged (issue 15 items 20 and 21 together).
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    status, events, _ = await stream_events(gw.url, model, "bad-event-after-usage-negative")
    assert status == 200 and events[-1] == "[DONE]"
    (entries,) = ledger_rows(gw).values()
    final = entries[-1]
    assert final.status == "ok" and final.completion_tokens >= 0 and final.cost_usd >= 0
    assert "negative" in (final.usage_note or "")


@pytest.mark.parametrize("model", OPENAI_MODELS)
async def test_negative_usage_in_a_whole_answer_is_clamped_not_a_negative_cost(serve_settings, hostile, tmp_path, model):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=20) as client:
        completion = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "scenario: bad-usage-body"}])
    assert completion.choices[0].message.content == "fine words"
    (entries,) = ledger_rows(gw).values()
    assert entries[-1].status == "ok" and entries[-1].cost_usd >= 0 and "negative" in (entries[-1].usage_note or "")


@pytest.mark.parametrize("model", OPENAI_MODELS)
@pytest.mark.parametrize("scenario", ["choices-string-body"])
async def test_a_whole_answer_of_the_wrong_shape_is_an_upstream_error_not_a_negative_cost(serve_settings, hostile,
                                                                                          tmp_path, model, scenario):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=20) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"scenario: {scenario}"}])
    assert caught.value.status_code == 503 and "malformed" in caught.value.message
    (entries,) = ledger_rows(gw).values()
    assert entries[-1].status == "error" and entries[-1].cost_usd >= 0
