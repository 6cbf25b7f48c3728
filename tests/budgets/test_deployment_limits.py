"""``limits.deployments`` over real HTTP (issue 15 item 1): a deployment at its configured per-minute limit
gets no more requests; load goes to the model's other deployments, then along the fallback plan, and only
when nothing has room is the request refused, by the gateway, before any provider answers 429."""

from __future__ import annotations

from collections import Counter as Tally
from pathlib import Path
from typing import Any

import openai
import pytest

from tierroute._exceptions import ConfigError
from tierroute.bootstrap import build_guards
from tierroute.router import Router

from ..conftest import RunningGateway, fake_settings
from ..windows import clear_of_a_minute_boundary

HI = [{"role": "user", "content": "hi"}]
PRIMARY, BACKUP = "fake/fake-small", "fake/backup"
BACKUP_DEPLOYMENT = {"model": "small", "provider": "fake", "upstream": "fake-small-b", "id": BACKUP,
                     "weight": 0.01}  # the balancer prefers the primary whenever it may use it


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"state": {"backend": "redis", "url": request.getfixturevalue("redis_url"),
                      "prefix": request.getfixturevalue("redis_prefix")}}


@pytest.fixture
def start(fake_upstream: Any, tmp_path: Path, serve_settings: Any, state: dict[str, Any]) -> Any:
    def run(limited: dict[str, Any], **overrides: Any) -> RunningGateway:
        clear_of_a_minute_boundary()
        settings = fake_settings(fake_upstream.url, tmp_path, limits={**state, "deployments": limited}, **overrides)
        return serve_settings(settings, guards=build_guards(settings))

    return run


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10)


def test_a_deployment_at_its_limit_gets_no_more_requests_and_the_gateway_says_why(start, fake_upstream):
    gw = start({PRIMARY: {"requests_per_minute": 10}})
    c = client(gw)
    ok, refused = 0, []
    for _ in range(20):
        try:
            c.chat.completions.create(model="small", messages=HI, max_tokens=5)
            ok += 1
        except openai.RateLimitError as exc:
            refused.append(exc)
    assert (ok, len(refused)) == (10, 10)
    assert len(fake_upstream.requests) == 10  # the provider never saw the other 10
    body = refused[0].body
    assert PRIMARY in body["message"] and "limits.deployments" in body["message"]
    assert 0 < float(refused[0].response.headers["retry-after"]) <= 60


def test_load_spreads_to_the_other_deployment_before_the_limit(start, fake_upstream):
    gw = start({PRIMARY: {"requests_per_minute": 10}}, deployments=[BACKUP_DEPLOYMENT])
    c = client(gw)
    used = Tally(c.chat.completions.with_raw_response.create(model="small", messages=HI, max_tokens=5)
                 .headers["x-tierroute-deployment"] for _ in range(20))
    assert used == {PRIMARY: 10, BACKUP: 10}
    assert Tally(r["model"] for r in fake_upstream.requests) == {"fake-small": 10, "fake-small-b": 10}


def test_token_limits_count_the_requests_estimate(start, fake_upstream):
    # "hi" is 8 prompt tokens, plus max_tokens 100: 108 a request, so 1000 a minute has room for 9
    gw = start({PRIMARY: {"tokens_per_minute": 1000}}, deployments=[BACKUP_DEPLOYMENT])
    c = client(gw)
    used = Tally(c.chat.completions.with_raw_response.create(model="small", messages=HI, max_tokens=100)
                 .headers["x-tierroute-deployment"] for _ in range(15))
    assert used == {PRIMARY: 9, BACKUP: 6}


def test_a_limit_on_an_unknown_deployment_is_refused(fake_upstream, tmp_path):
    settings = fake_settings(fake_upstream.url, tmp_path, limits={"deployments": {"fake/typo": {"requests_per_minute": 1}}})
    with pytest.raises(ConfigError) as info:
        Router(settings, guards=build_guards(settings))
    assert "limits.deployments" in info.value.message and "fake/typo" in info.value.message
    assert PRIMARY in info.value.message  # names what exists
