"""Fault injection over real loopback HTTP: three fake upstreams serve one model, a real gateway fronts them,
and the official async openai client puts concurrent load on it while one upstream misbehaves."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import openai
import pytest

from ..fakes.chaos import deployment_id, drive, one_request, share
from .conftest import async_client

SICK = deployment_id(0)
CONCURRENCY = 6


def ledger_rows(gw):
    gw.router.ledger.flush()
    rows = defaultdict(list)
    for entry in gw.router.ledger.entries():
        rows[entry.request_id].append(entry)
    return rows


def assert_every_attempt_recorded(gw, outcomes):
    rows = ledger_rows(gw)
    answered = [o for o in outcomes if o.error is None]
    assert answered
    for o in answered:
        entries = sorted(rows[o.request_id], key=lambda e: e.attempt)
        assert [e.attempt for e in entries] == list(range(1, o.attempts + 1))
        assert [e.final for e in entries] == [False] * (o.attempts - 1) + [True]
        assert entries[-1].status == "ok" and entries[-1].deployment == o.deployment
        assert all(e.status == "error" and e.error_kind for e in entries[:-1])
    return rows


def failures(outcomes):
    return [o.error for o in outcomes if o.error is not None]


async def test_a_500ing_deployment_is_skipped_then_gets_traffic_back_after_it_recovers(chaos_gateway, upstreams):
    gw = chaos_gateway()
    sick = upstreams[0]
    sick.behaviour.status = 500
    async with async_client(gw) as client:
        broken = await drive(client, concurrency=CONCURRENCY, seconds=2.0)
        hits_while_broken = len(sick.requests)
        sick.behaviour.status = 200
        recovered_at = time.monotonic()
        healed = await drive(client, concurrency=CONCURRENCY, seconds=2.0)
    assert failures(broken + healed) == []
    assert len(broken) > 60
    # skipped within the window: a few failures open the breaker, then one probe per 1 s cool-down
    assert hits_while_broken <= 3 + CONCURRENCY + 2 * 2, hits_while_broken
    assert all(o.deployment != SICK for o in broken)
    # the next half-open probe (at most one cool-down later) succeeds and closes the breaker
    assert share(healed, SICK, recovered_at + 1.2, recovered_at + 2.0) > 0.1
    rows = assert_every_attempt_recorded(gw, broken + healed)
    retried = [o for o in broken if o.attempts > 1]
    assert retried, "some requests were answered on a second attempt"
    first = sorted(rows[retried[0].request_id], key=lambda e: e.attempt)[0]
    assert first.deployment == SICK and first.error_kind == "unavailable" and first.http_status == 502


async def test_a_429_cools_that_deployment_for_exactly_its_retry_after(chaos_gateway, upstreams):
    gw = chaos_gateway()
    limited = upstreams[1]
    limited.behaviour.status = 429
    limited.behaviour.retry_after = "1"
    async with async_client(gw) as client:
        outcomes = await drive(client, concurrency=CONCURRENCY, seconds=2.6)
        hits_while_limited = len(limited.requests)
        limited.behaviour = type(limited.behaviour)()
        # its last 429 may have come just before the reset: up to one Retry-After (1 s) of cool-down is left
        after = await drive(client, concurrency=CONCURRENCY, seconds=1.4)
    assert failures(outcomes + after) == []
    # requests reach it in bursts (those in flight when the 429 came back), one burst per Retry-After
    arrivals = limited.arrivals[:hits_while_limited]
    bursts = [arrivals[0]]
    for prev, cur in zip(arrivals, arrivals[1:]):
        if cur - prev > 0.5:
            bursts.append(cur)
    assert 2 <= len(bursts) <= 4, bursts
    assert all(b - a >= 0.95 for a, b in zip(bursts, bursts[1:])), "never before the Retry-After"
    assert hits_while_limited < 0.1 * len(outcomes)
    assert any(o.deployment == deployment_id(1) for o in after), "back in rotation once it answers"
    assert_every_attempt_recorded(gw, outcomes)


async def test_a_deployment_that_hangs_before_the_first_token_is_cut_off_and_skipped(chaos_gateway, upstreams):
    gw = chaos_gateway()
    hung = upstreams[2]
    hung.behaviour.first_token_delay_seconds = 5.0
    async with async_client(gw) as client:
        outcomes = await drive(client, concurrency=CONCURRENCY, seconds=2.5, stream=True)
    assert failures(outcomes) == []
    assert max(o.seconds for o in outcomes) < 0.5 + 1.0, "first-token timeout is 0.5 s"
    assert len(hung.requests) <= 3 + CONCURRENCY + 2 * 2
    rows = assert_every_attempt_recorded(gw, outcomes)
    kinds = {e.error_kind for entries in rows.values() for e in entries if e.deployment == deployment_id(2)}
    assert kinds == {"timeout"}


async def test_streams_fail_over_before_the_first_chunk_and_end_cleanly_after_it(chaos_gateway, upstreams):
    gw = chaos_gateway()
    cutter = upstreams[1]
    cutter.behaviour.cut_stream_after = 0  # headers, then the connection closes: nothing reached the client
    async with async_client(gw) as client:
        before_first_chunk = await drive(client, concurrency=CONCURRENCY, seconds=1.0, stream=True)
        await asyncio.sleep(1.1)  # let its breaker half-open again
        cutter.behaviour.cut_stream_after = 3  # after content reached the client: no failover possible
        mid_stream = await drive(client, concurrency=CONCURRENCY, seconds=1.5, stream=True)
    assert failures(before_first_chunk) == []
    assert len(cutter.requests) >= 2
    cut = failures(mid_stream)
    assert cut, "a stream cut after content reached the client ends with an error event"
    assert len(cut) <= 3 + CONCURRENCY + 2, "and the breaker stops sending streams there"
    assert all("stream" in e for e in cut)
    gw.router.ledger.flush()
    errors = [e for e in gw.router.ledger.entries() if e.final and e.status == "error"]
    assert len(errors) == len(cut) and all(e.deployment == deployment_id(1) for e in errors)


async def test_a_deployment_that_gets_5x_slower_loses_its_traffic_and_regains_it(chaos_gateway, upstreams):
    gw = chaos_gateway()
    for u in upstreams:
        u.behaviour.delay_seconds = 0.03
    slow = upstreams[0]
    async with async_client(gw) as client:
        start = time.monotonic()
        task = asyncio.create_task(drive(client, concurrency=CONCURRENCY, seconds=6.0))
        await asyncio.sleep(1.5)
        slowed = time.monotonic()
        slow.behaviour.delay_seconds = 0.15
        await asyncio.sleep(2.5)
        healed = time.monotonic()
        slow.behaviour.delay_seconds = 0.03
        outcomes = await task
    assert failures(outcomes) == []
    before = share(outcomes, SICK, start + 0.5, slowed)
    during = share(outcomes, SICK, slowed + 1.0, healed)
    after = share(outcomes, SICK, healed + 1.0, healed + 2.0)
    assert before > 0.2, before
    assert during < 0.12, during
    assert after > 0.2, after


async def test_when_everything_is_down_the_caller_gets_a_503_naming_each_attempt(chaos_gateway, upstreams):
    gw = chaos_gateway()
    for u in upstreams:
        u.behaviour.status = 500
    async with async_client(gw) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 503
    error = info.value.body
    assert error["code"] == "all_attempts_failed"
    assert {a["deployment"] for a in error["attempts"]} == {deployment_id(i) for i in range(3)}
    assert all("500" in a["error"] for a in error["attempts"])


async def test_the_caller_never_waits_past_its_deadline(chaos_gateway, upstreams):
    gw = chaos_gateway()
    for u in upstreams:
        u.behaviour.delay_seconds = 5.0
    async with async_client(gw) as client:
        outcome = await one_request(client, stream=False, extra_body={"tierroute": {"timeout_seconds": 0.4}})
        with pytest.raises(openai.BadRequestError, match="timeout_seconds"):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                 extra_body={"tierroute": {"timeout_seconds": -1}})
    assert outcome.error is not None and "504" in outcome.error, outcome
    # The upstreams would take 5 s; the caller gets its 504 at the 0.4 s deadline plus scheduling slack
    # (generous, because this machine's two cores are often busy with other work during the suite).
    assert outcome.seconds < 0.4 + 1.0, outcome
