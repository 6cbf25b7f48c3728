"""Limits keyed by gateway keys, and identities bound to keys: over real HTTP, on the memory and Redis stores.

Issue 15 items 2 (a key written as ``${VAR}`` anywhere in ``limits:`` must resolve), 3 (two rules on one
scope, window and unit count a request once) and 7 (user/team budgets bind to the authenticated key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tierroute._exceptions import ConfigError
from tierroute.bootstrap import build_guards
from tierroute.config import Settings, parse_settings
from tierroute.identity import caller_id

from ..conftest import RunningGateway, fake_settings
from ..windows import clear_of_a_minute_boundary

HI = [{"role": "user", "content": "hi"}]
CI_KEY, ALICE_KEY, BOB_KEY = "sk-ci-0123456789", "sk-alice-0123456789", "sk-bob-0123456789"
ENV = {"CI_KEY": CI_KEY, "ALICE_KEY": ALICE_KEY, "BOB_KEY": BOB_KEY}
# "hi" on "mid" with max_tokens 5: 8 prompt tokens + 5 completion at $1/$2 per million = $0.000018 reserved,
# and the fake upstream reports 11 + 5 tokens = $0.000021 spent.
SPENT = 0.000021


def settings_with(upstream: str, tmp_path: Path, limits: dict[str, Any], *, state: dict[str, Any] | None = None,
                  keys: tuple[str, ...] = (CI_KEY, ALICE_KEY, BOB_KEY), **overrides: Any) -> Settings:
    """The test catalog, written the way a user writes a config file: keys as ${VAR}, resolved from ENV."""
    base = fake_settings(upstream, tmp_path).model_dump()
    raw: dict[str, Any] = {k: base[k] for k in ("providers", "models", "tiers", "ledger")}
    raw["server"] = {"api_keys": ["${%s}" % name for name, key in ENV.items() if key in keys]}
    raw["limits"] = {**limits, **({"state": state} if state else {})}
    raw.update(overrides)
    return parse_settings(raw, source="test", environ=ENV)


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    if request.param == "memory":
        return None
    prefix = request.getfixturevalue("redis_prefix")
    return {"backend": "redis", "url": request.getfixturevalue("redis_url"), "prefix": prefix}


@pytest.fixture
def start(fake_upstream: Any, tmp_path: Path, serve_settings: Any, state: dict[str, Any] | None) -> Any:
    def run(limits: dict[str, Any], **overrides: Any) -> RunningGateway:
        settings = settings_with(fake_upstream.url, tmp_path, limits, state=state, **overrides)
        return serve_settings(settings, guards=build_guards(settings))

    return run


def client(gw: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10)


def answered(c: openai.OpenAI, n: int, **kw: Any) -> int:
    ok = 0
    for _ in range(n):
        try:
            c.chat.completions.create(model="mid", messages=HI, max_tokens=5, **kw)
            ok += 1
        except openai.RateLimitError:
            pass
    return ok


# -- item 2: a key written as ${VAR} resolves wherever a key can be written --------------------------------
def test_a_caller_budget_matching_the_key_itself_applies(start):
    gw = start({"budgets": [{"scope": "caller", "match": "${CI_KEY}", "window": "day", "usd": 0.0006}]})
    assert answered(client(gw, CI_KEY), 40) == 28  # $0.0006 / $0.000021 = 28.6
    assert answered(client(gw, ALICE_KEY), 3) == 3  # another key is not limited by it


def test_a_rate_limit_matching_the_key_itself_applies(start):
    clear_of_a_minute_boundary()
    gw = start({"rate_limits": [{"scope": "caller", "match": "${CI_KEY}", "requests_per_minute": 3}]})
    assert answered(client(gw, CI_KEY), 6) == 3


def test_mapping_keys_written_as_env_references_resolve(start):
    gw = start({"teams": {"${CI_KEY}": "research"}, "max_cost_usd_by_caller": {"${CI_KEY}": 0.0001},
                "budgets": [{"scope": "team", "match": "research", "window": "day", "usd": 0.0001}]})
    c = client(gw, CI_KEY)
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="big", messages=HI)  # above the key's ceiling of $0.0001
    assert "ceiling $0.000100" in info.value.body["message"]
    assert answered(c, 10) == 4  # the team budget: $0.0001 / $0.000021


@pytest.mark.parametrize("limits, field", [
    ({"budgets": [{"scope": "caller", "match": "sk-typo", "usd": 1}]}, "limits.budgets[0].match"),
    ({"rate_limits": [{"scope": "caller", "match": "key-000000000000", "requests_per_minute": 1}]},
     "limits.rate_limits[0].match"),
    ({"teams": {"sk-typo": "research"}}, "limits.teams"),
    ({"max_cost_usd_by_caller": {"sk-typo": 1}}, "limits.max_cost_usd_by_caller"),
    ({"users": {"sk-typo": "alice"}}, "limits.users"),
])
def test_a_key_that_is_not_a_gateway_key_is_refused_naming_the_field(fake_upstream, tmp_path, limits, field):
    with pytest.raises(ConfigError) as info:
        settings_with(fake_upstream.url, tmp_path, limits)
    assert field in info.value.message and "server.api_keys" in info.value.message
    assert "sk-typo" not in info.value.message  # a key is a secret, even a mistyped one


def test_an_unset_variable_in_a_mapping_key_is_refused(fake_upstream, tmp_path):
    with pytest.raises(ConfigError) as info:
        settings_with(fake_upstream.url, tmp_path, {"teams": {"${NOPE}": "research"}})
    assert "NOPE" in info.value.message and "limits.teams" in info.value.message


# -- item 3: two rules on one scope, window and unit --------------------------------------------------------
def test_a_general_and_a_specific_rule_on_one_counter_count_each_request_once(start):
    gw = start({"budgets": [{"scope": "caller", "window": "day", "usd": 1},
                            {"scope": "caller", "match": "${CI_KEY}", "window": "day", "usd": 0.0025}]})
    c = client(gw, CI_KEY)
    assert answered(c, 130) == 119  # $0.0025 / $0.000021 = 119.05; counted twice it stopped at 59
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="mid", messages=HI, max_tokens=5)
    body = info.value.body
    assert body["limit"] == 0.0025
    assert body["remaining"] == pytest.approx(0.0025 - 119 * SPENT)


# -- item 7: user and team budgets bind to the authenticated key --------------------------------------------
BOUND = {"users": {"${ALICE_KEY}": "alice"}, "teams": {"${ALICE_KEY}": "research"}}


def test_another_key_cannot_spend_a_bound_users_budget_by_naming_them(start):
    gw = start({**BOUND, "budgets": [{"scope": "user", "match": "alice", "window": "day", "usd": 0.0001}]})
    assert answered(client(gw, BOB_KEY), 10, user="alice") == 10  # not alice: her budget is untouched
    assert answered(client(gw, ALICE_KEY), 10) == 4


def test_another_key_cannot_spend_a_bound_teams_budget_with_a_team_tag(start):
    gw = start({**BOUND, "budgets": [{"scope": "team", "match": "research", "window": "day", "usd": 0.0001}]})
    tag = {"tierroute": {"tags": ["team:research"]}}
    assert answered(client(gw, BOB_KEY), 10, extra_body=tag) == 10
    assert answered(client(gw, ALICE_KEY), 10) == 4


def test_a_bound_user_budget_applies_without_a_user_field_and_a_conflicting_label_does_not_redirect_it(start):
    gw = start({**BOUND, "budgets": [{"scope": "user", "window": "day", "usd": 0.0001}]})
    alice = client(gw, ALICE_KEY)
    assert answered(alice, 2) == 2
    assert answered(alice, 10, user="bob") == 2  # still alice's budget: 4 in all
    # bob's own label (an unbound key) narrows within his key, and never reaches alice's counter
    assert answered(client(gw, BOB_KEY), 4, user="alice") == 4


def test_a_client_user_label_on_an_unbound_key_is_counted_within_that_key(start):
    gw = start({"budgets": [{"scope": "user", "window": "day", "usd": 0.0001}]})
    assert answered(client(gw, BOB_KEY), 10, user="carol") == 4
    assert answered(client(gw, CI_KEY), 3, user="carol") == 3  # another key's "carol" is another counter


def test_caller_ids_are_what_the_settings_hold(fake_upstream, tmp_path):
    settings = settings_with(fake_upstream.url, tmp_path, {**BOUND, "max_cost_usd_by_caller": {"${BOB_KEY}": 1},
                             "budgets": [{"scope": "caller", "match": "${CI_KEY}", "usd": 1}]})
    limits = settings.limits
    assert limits.users == {caller_id(ALICE_KEY): "alice"} and limits.teams == {caller_id(ALICE_KEY): "research"}
    assert limits.max_cost_usd_by_caller == {caller_id(BOB_KEY): 1}
    assert limits.budgets[0].match == caller_id(CI_KEY)
