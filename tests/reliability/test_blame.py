"""Who a failure blames, through a real gateway on loopback: three fake upstreams serve model ``m`` and the
official openai client calls the gateway. A misconfigured deployment must not fail requests, and one client's
bad request must not take a deployment out of rotation for everyone."""

from __future__ import annotations

import openai
import pytest

from ..fakes.chaos import deployment_id, drive
from .conftest import async_client

HI = [{"role": "user", "content": "hi"}]
CONCURRENCY = 6


def final_rows(gw):
    gw.router.ledger.flush()
    return {e.request_id: e for e in gw.router.ledger.entries() if e.final}


async def test_a_deployment_answering_404_for_everything_fails_no_request_and_loses_its_traffic(chaos_gateway, upstreams):
    gw = chaos_gateway()
    sick = upstreams[0]
    sick.behaviour.status = 404
    sick.behaviour.error_body = {"error": {"message": "The model `fake-m` does not exist", "type": "invalid_request_error",
                                           "param": None, "code": "model_not_found"}}
    async with async_client(gw) as client:
        outcomes = await drive(client, concurrency=CONCURRENCY, seconds=2.0)
    assert len(outcomes) > 60
    assert [o.error for o in outcomes if o.error] == [], "a deployment's 404 fails over"
    # Before: its instant 404s left the balancer without samples and it won two thirds of the draws.
    assert len(sick.requests) < 0.1 * len(outcomes), (len(sick.requests), len(outcomes))
    gw.router.ledger.flush()
    sick_rows = [e for e in gw.router.ledger.entries() if e.deployment == deployment_id(0)]
    assert sick_rows and all(e.error_kind == "upstream_not_found" and not e.final for e in sick_rows)
    assert gw.router.dispatcher.health.snapshot()[deployment_id(0)]["window_failures"] > 0


async def test_a_400_from_every_deployment_is_returned_promptly_with_the_upstream_param_and_code(chaos_gateway, upstreams):
    gw = chaos_gateway(breaker={"consecutive_failures": 1, "cooldown_seconds": 30})
    for u in upstreams:
        u.behaviour.status = 400
        u.behaviour.error_body = {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error",
                                            "param": "temperature", "code": "invalid_value"}}
    async with async_client(gw) as client:
        for _ in range(4):
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(model="m", messages=HI, temperature=1.5)
            error = info.value
            assert error.body["param"] == "temperature" and error.body["code"] == "invalid_value"
            request_id = error.response.headers["x-tierroute-request-id"]
            row = final_rows(gw)[request_id]
            assert row.http_status == 400 and row.status == "error"
        assert sum(len(u.requests) for u in upstreams) == 4 * 2, "one second opinion per request, no retries"
        assert gw.router.dispatcher.unavailable() == frozenset(), "the request's fault opens no breaker"
        for u in upstreams:
            u.reset()
        answered = await drive(client, concurrency=CONCURRENCY, seconds=1.0)
    assert [o.error for o in answered if o.error] == []
    assert {o.deployment for o in answered} == {deployment_id(i) for i in range(3)}


async def test_with_every_deployment_down_every_request_gets_the_same_503_naming_all_of_them(chaos_gateway, upstreams):
    gw = chaos_gateway(retry={"retries": 0}, breaker={"consecutive_failures": 1, "cooldown_seconds": 30})
    for u in upstreams:
        u.behaviour.status = 500
    everyone = {deployment_id(i) for i in range(3)}
    async with async_client(gw) as client:
        for i in range(4):  # the first request opens every breaker; the others find them open
            with pytest.raises(openai.APIStatusError) as info:
                await client.chat.completions.create(model="m", messages=HI)
            error = info.value
            assert error.status_code == 503, (i, error.body)
            assert error.body["code"] == "all_attempts_failed"
            assert {a["deployment"] for a in error.body["attempts"]} == everyone
            request_id = error.response.headers["x-tierroute-request-id"]
            row = final_rows(gw)[request_id]
            assert row.http_status == 503, "the ledger records what the caller got"
    assert gw.router.dispatcher.unavailable() >= everyone


@pytest.mark.parametrize("retry_after", ["inf", "nan", "-5", "1e400", "Fri, 31 Dec 9999 23:59:59 GMT", "soon"])
async def test_any_retry_after_gives_a_json_429_and_the_cool_down_ends(chaos_gateway, upstreams, retry_after):
    gw = chaos_gateway(retry={"retries": 0, "max_retry_after_seconds": 0},
                       breaker={"rate_limit_cooldown_seconds": 0.2, "max_rate_limit_cooldown_seconds": 1})
    for u in upstreams:
        u.behaviour.status = 429
        u.behaviour.retry_after = retry_after
    async with async_client(gw) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="m", messages=HI)
        response = info.value.response
        assert response.headers["content-type"] == "application/json"
        assert 1 <= int(response.headers["retry-after"]) <= 86400
        assert response.headers["x-tierroute-request-id"]
        for u in upstreams:
            u.reset()
        answered = await drive(client, concurrency=2, seconds=2.5)
    # capped at max_rate_limit_cooldown_seconds (1 s): the deployments are back, not "unavailable" forever
    assert answered[-1].error is None, answered[-1]
    assert gw.router.dispatcher.unavailable() == frozenset()


async def test_a_streamed_prompt_the_server_finds_too_long_fails_that_request_only(chaos_gateway, upstreams):
    """llama.cpp's server answers a streamed prompt longer than its context with 200 and an empty body."""
    gw = chaos_gateway()
    for u in upstreams:
        u.behaviour.empty_stream_if = "TOO-LONG"
    too_long = [{"role": "user", "content": "TOO-LONG " * 50}]
    async with async_client(gw) as client:
        for _ in range(5):
            with pytest.raises(openai.APIStatusError) as info:
                await client.chat.completions.create(model="m", messages=too_long, stream=True)
            assert info.value.status_code == 502 and info.value.body["code"] == "empty_answer"
            row = final_rows(gw)[info.value.response.headers["x-tierroute-request-id"]]
            assert row.status == "error" and row.error_kind == "empty_answer"
        assert sum(len(u.requests) for u in upstreams) == 5 * 2, "a second opinion, never a retry"
        assert gw.router.dispatcher.unavailable() == frozenset(), "one client's bad prompt marks nothing down"
        others = await drive(client, concurrency=CONCURRENCY, seconds=1.0, stream=True)
    assert [o.error for o in others if o.error] == []
    assert {o.deployment for o in others} == {deployment_id(i) for i in range(3)}
    gw.router.ledger.flush()
    assert not [e for e in gw.router.ledger.entries() if e.status == "ok" and e.completion_tokens == 0]
