"""Upstreams that echo the API key (whole, masked, in plain text, mid-stream, in an answer), through a real
gateway on loopback with the official openai SDK: no configured secret reaches the client or the log."""

from __future__ import annotations

import logging

import aiohttp
import openai
import pytest

from tierroute.redaction import MASK, Redactor

from .conftest import ANTHROPIC_MODELS, GATEWAY_KEY, HOSTILE_KEY, MODELS, OPENAI_MODELS, hostile_settings, ledger_rows

KEY = HOSTILE_KEY


def leaks(text: str, secret: str = KEY) -> list[str]:
    """The pieces of ``secret`` found in ``text``: the whole, or its first 8 / last 6 characters."""
    return [piece for piece in (secret, secret[:8], secret[-6:], f"{secret[:6]}...{secret[-4:]}") if piece in text]


def client(gw, key: str = "x") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=20)


async def ask(gw, model: str, scenario: str, **kwargs) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        await client(gw, kwargs.pop("key", "x")).chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"scenario: {scenario}"}], **kwargs)
    return caught.value


# -- the redactor -----------------------------------------------------------------------------------------
def test_the_redactor_catches_whole_cut_and_masked_echoes_and_leaves_prose_alone():
    r = Redactor([KEY, "short", None])
    assert r.text(f"Incorrect API key provided: {KEY}.") == f"Incorrect API key provided: {MASK}."
    assert r.text(f"key={KEY[:20]}") == MASK  # a key cut short, glued to other text
    assert r.text(f"provided: {KEY[:6]}...{KEY[-4:]}. Try again") == f"provided: {MASK} Try again"
    assert r.text(f"tried {KEY[:8]}****************{KEY[-4:]}") == f"tried {MASK}"
    assert r.text(f"x-api-key: {KEY[:10]}…{KEY[-3:]}") == f"x-api-key: {MASK}"
    assert r.text(f"ends with ****{KEY[-4:]}") == f"ends with {MASK}"
    prose = "Rate limit reached for gpt-4o... Please try again in 20s. See https://platform.openai.com/docs."
    assert r.text(prose) == prose
    assert r.text("a short secret is never matched: short") == "a short secret is never matched: short"
    assert r.text("sk-... is how keys start") == "sk-... is how keys start"  # three visible characters: not an echo
    assert r.bytes(f'{{"content": "{KEY}"}}'.encode()) == f'{{"content": "{MASK}"}}'.encode()
    assert r.json({"error": {"message": f"bad {KEY}", "attempts": [{"error": KEY}]}}) == \
        {"error": {"message": f"bad {MASK}", "attempts": [{"error": MASK}]}}


# -- through the gateway ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", list(MODELS))
async def test_an_error_echoing_the_key_reaches_the_client_redacted(serve_settings, hostile, tmp_path, model):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    error = await ask(gw, model, "echo-key")
    assert error.status_code == 503
    message = error.body["message"]
    assert MASK in message and leaks(message) == [], message
    assert leaks(error.response.text) == []


@pytest.mark.parametrize("model", OPENAI_MODELS)
@pytest.mark.parametrize("scenario", ["echo-key-masked", "echo-key-text"])
async def test_masked_and_plain_text_echoes_are_redacted(serve_settings, hostile, tmp_path, model, scenario):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    error = await ask(gw, model, scenario)
    assert error.status_code == 503
    assert MASK in error.response.text and leaks(error.response.text) == [], error.response.text


@pytest.mark.parametrize("model", OPENAI_MODELS)
async def test_an_error_event_mid_stream_is_redacted(serve_settings, hostile, tmp_path, model):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "scenario: echo-key-in-stream"}]}
    async with aiohttp.ClientSession() as http, http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
        raw = (await resp.read()).decode()
    assert "partial" in raw and '"error"' in raw and MASK in raw
    assert leaks(raw) == [], raw


@pytest.mark.parametrize("model", OPENAI_MODELS)
async def test_an_answer_containing_the_key_is_relayed_redacted(serve_settings, hostile, tmp_path, model):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    completion = await client(gw).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "scenario: echo-key-in-answer"}])
    assert completion.choices[0].message.content == f"your key is {MASK}, keep it safe"


async def test_a_gateway_key_echoed_by_an_upstream_is_redacted_too(serve_settings, hostile, tmp_path):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path, server={"api_keys": [GATEWAY_KEY]}))
    with pytest.raises(openai.BadRequestError) as caught:
        await client(gw, GATEWAY_KEY).chat.completions.create(
            model="o-fast", messages=[{"role": "user", "content": f"scenario: echo-prompt my key is {GATEWAY_KEY}"}])
    text = caught.value.response.text
    assert "Invalid value" in text and MASK in text and leaks(text, GATEWAY_KEY) == [], text
    (entries,) = ledger_rows(gw).values()
    assert entries[-1].http_status == 400


async def test_every_attempts_message_in_an_all_failed_error_is_redacted(serve_settings, hostile, fake_upstream, tmp_path):
    """Two deployments both echoing the key: the 503 lists each attempt's message, all redacted."""
    settings = hostile_settings(hostile.url, tmp_path, good_url=fake_upstream.url)
    fake_upstream.behaviour.status = 500
    fake_upstream.behaviour.error_body = {"error": {"message": f"upstream says {KEY}"}}
    gw = serve_settings(settings)
    error = await ask(gw, "fo", "echo-key-masked")
    assert error.status_code == 503 and len(error.body["attempts"]) == 2
    assert error.response.text.count(MASK) >= 2 and leaks(error.response.text) == [], error.response.text


async def test_log_records_are_redacted_once_the_gateway_runs(serve_settings, hostile, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    gw = serve_settings(hostile_settings(hostile.url, tmp_path, server={"api_keys": [GATEWAY_KEY]}))
    logging.getLogger("tierroute.anything").warning("upstream said %s and the caller sent %s", KEY, GATEWAY_KEY)
    try:
        raise RuntimeError(f"boom with {KEY[:6]}...{KEY[-4:]}")
    except RuntimeError:
        logging.getLogger("tierroute.server").exception("unhandled")
    gw.stop()
    text = caplog.text
    assert "upstream said" in text and "boom with" in text
    assert leaks(text) == [] and leaks(text, GATEWAY_KEY) == [], text


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
async def test_anthropic_answers_without_secrets_are_untouched(serve_settings, hostile, tmp_path, model):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path))
    stream = await client(gw).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "scenario: ok"}], stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hi"
