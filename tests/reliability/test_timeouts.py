"""A deployment that stalls costs its timeout, not the total timeout: fake upstreams on loopback that stall
before the first byte of a plain answer, or in the middle of a stream, behind a real gateway."""

from __future__ import annotations

import time

import openai
import pytest

from ..fakes.chaos import deployment_id, drive
from .conftest import async_client

# The total timeout is far longer than the others, so a test that waits for it fails its time bound.
TIMEOUTS = {"first_byte_timeout_seconds": 0.5, "stream_idle_timeout_seconds": 0.5, "total_timeout_seconds": 20.0}
SLACK = 1.5  # scheduling slack on a busy two-core machine


async def test_a_plain_request_to_a_deployment_that_stalls_before_its_first_byte_fails_over(chaos_gateway, upstreams):
    gw = chaos_gateway(timeouts=TIMEOUTS)
    stalled = upstreams[0]
    stalled.behaviour.delay_seconds = 10.0  # accepts the request, then says nothing
    async with async_client(gw) as client:
        outcomes = await drive(client, concurrency=4, seconds=2.0)
    assert [o.error for o in outcomes if o.error] == []
    assert stalled.requests, "the stalled deployment was tried"
    assert max(o.seconds for o in outcomes) < 0.5 + SLACK, "cut off at the first-byte timeout, then failed over"
    gw.router.ledger.flush()
    kinds = {e.error_kind for e in gw.router.ledger.entries() if e.deployment == deployment_id(0)}
    assert kinds == {"timeout"}


async def test_a_stream_that_stalls_mid_way_ends_with_an_error_at_the_idle_timeout(chaos_gateway, upstreams):
    gw = chaos_gateway(timeouts=TIMEOUTS)
    for u in upstreams:
        u.behaviour.text = "one two three four"
        u.behaviour.stall_after_chunks = 2  # the role chunk and one word, then silence
        u.behaviour.stall_seconds = 10.0
    async with async_client(gw) as client:
        started = time.monotonic()
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
        received = []
        with pytest.raises(openai.APIError, match="stalled"):
            async for chunk in raw.parse():
                received.append(chunk)
        elapsed = time.monotonic() - started
    assert [c.choices[0].delta.content for c in received if c.choices] == ["", "one"]
    assert elapsed < 0.5 + SLACK, elapsed
    gw.router.ledger.flush()
    (row,) = [e for e in gw.router.ledger.entries() if e.request_id == raw.headers["x-tierroute-request-id"]]
    assert row.status == "error" and row.error_kind == "timeout"


def test_timeouts_are_provider_settings_with_defaults_and_are_validated():
    from tierroute.config import ProviderSettings
    from tierroute._exceptions import ConfigError
    from tierroute.config import parse_settings

    defaults = ProviderSettings(api_base="http://127.0.0.1:1")
    assert defaults.first_byte_timeout_seconds == 120 and defaults.stream_idle_timeout_seconds == 30
    with pytest.raises(ConfigError, match="stream_idle_timeout_seconds"):
        parse_settings({"providers": {"p": {"api_base": "http://127.0.0.1:1", "stream_idle_timeout_seconds": 0}}},
                       source="test", environ={})
