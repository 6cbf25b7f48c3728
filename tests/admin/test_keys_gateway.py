"""Virtual keys end to end on one gateway over loopback (SQLite ledger): admin API, key use, limits, revocation."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import requests
import openai
import pytest

from tierroute.admin.openapi import ROUTES
from tierroute.bootstrap import build_guards

from ..conftest import RunningGateway, fake_settings

ADMIN = "admin-key-0123456789abcdef"
HI = [{"role": "user", "content": "hi"}]
POLL = 0.2


@pytest.fixture
def console(fake_upstream: Any, tmp_path: Path, serve_settings: Any) -> RunningGateway:
    settings = fake_settings(fake_upstream.url, tmp_path, server={"admin_key": ADMIN},
                             keys={"enabled": True, "poll_interval_seconds": POLL})
    return serve_settings(settings, guards=build_guards(settings))


class Admin:
    """The admin API at ``url``, with the admin key."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.headers["authorization"] = f"Bearer {ADMIN}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.url + path, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)


def admin(gw: RunningGateway) -> Admin:
    return Admin(gw.url)


def wait_until(check: Any, seconds: float = 10.0) -> float:
    """Seconds until ``check()`` is true (generous bound: the machine is shared)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not true within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - start


def works(gw: RunningGateway, key: str, model: str = "small") -> bool:
    try:
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10).chat.completions.create(
            model=model, messages=HI, max_tokens=5)
        return True
    except (openai.AuthenticationError, openai.RateLimitError):
        return False


def test_admin_api_is_refused_without_the_admin_key(console):
    for headers in ({}, {"authorization": "Bearer wrong"}, {"x-admin-key": ADMIN[:-1]}):
        r = requests.get(f"{console.url}/admin/keys", headers=headers)
        assert r.status_code == 401, r.text
        assert ADMIN not in r.text
    # a caller key is not an admin key
    created = admin(console).post("/admin/keys", json={"name": "c"}).json()
    assert requests.get(f"{console.url}/admin/keys", headers={"authorization": f"Bearer {created['key']}"}).status_code == 401


def test_key_lifecycle_create_use_limit_rotate_revoke(console):
    api = admin(console)
    r = api.post("/admin/keys", json={"name": "ci", "owner": "ops", "team": "research", "models": ["small", "mid"],
                                      "budgets": [{"scope": "caller", "window": "day", "usd": 0.00001}]})
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["key"]
    assert secret.startswith("tr-") and created["prefix"] == secret[:10] and created["caller"] == f"vk-{created['id']}"
    wait_until(lambda: works(console, secret))
    c = openai.OpenAI(base_url=f"{console.url}/v1", api_key=secret, max_retries=0, timeout=10)
    # not an allowed model: 403 naming it; "auto" routes among the allowed ones only
    with pytest.raises(openai.PermissionDeniedError, match="big"):
        c.chat.completions.create(model="big", messages=HI, max_tokens=5)
    # the key's own budget ($0.00001/day on "small" at ~$0.0000021 a request) runs out
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(20):
            c.chat.completions.create(model="small", messages=HI, max_tokens=5)
    assert info.value.body["scope"] == f"budget caller=vk-{created['id']} (USD per day)"
    # its usage shows in the listing, and a raised budget takes effect without a restart
    listed = api.get("/admin/keys").json()["items"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert mine["usage"][0]["remaining"] < 0.00001 and "key" not in mine and "key_hash" not in mine
    assert api.patch(f"/admin/keys/{created['id']}", json={"budgets": [{"scope": "caller", "usd": 1.0}]}).status_code == 200
    wait_until(lambda: works(console, secret))
    # rotate: the old secret stops, the new one works, same caller
    rotated = api.post(f"/admin/keys/{created['id']}/rotate").json()
    assert rotated["caller"] == created["caller"] and rotated["key"] != secret
    wait_until(lambda: not works(console, secret) and works(console, rotated["key"]))
    # revoke: refused within the poll interval (generous bound for a loaded machine)
    assert api.post(f"/admin/keys/{created['id']}/revoke").json()["status"] == "revoked"
    took = wait_until(lambda: not works(console, rotated["key"]))
    assert took < 5.0
    # the ledger counted the key's requests under its caller id, and nothing anywhere holds a secret
    console.router.ledger.flush()
    db = sqlite3.connect(console.router.settings.ledger.path)
    dump = "\n".join(db.iterdump())
    assert f"vk-{created['id']}" in dump
    assert secret not in dump and rotated["key"] not in dump
    assert secret not in api.get("/admin/audit").text
    actions = [e["action"] for e in api.get("/admin/audit").json()["items"]]
    assert actions[:4] == ["key.revoke", "key.rotate", "key.update", "key.create"]


def test_bad_key_specs_are_refused_with_the_field_named(console):
    api = admin(console)
    r = api.post("/admin/keys", json={"budgets": [{"scope": "caller"}]})
    assert r.status_code == 400 and "budgets" in r.json()["error"]["message"]
    r = api.post("/admin/keys", json={"colour": "red"})
    assert r.status_code == 400 and "colour" in r.json()["error"]["message"]
    assert api.get("/admin/keys/nope").status_code == 404


def test_expired_key_is_refused(console):
    api = admin(console)
    created = api.post("/admin/keys", json={"expires_at": time.time() + 1.0}).json()
    wait_until(lambda: works(console, created["key"]))
    wait_until(lambda: not works(console, created["key"]))


def test_openapi_lists_every_route_and_each_answers(console):
    api = admin(console)
    spec = api.get("/admin/openapi.json").json()
    listed = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert listed == set(ROUTES)
    key_id = api.post("/admin/keys", json={"name": "probe"}).json()["id"]
    for method, path in sorted(ROUTES, key=lambda mp: mp[0] == "delete" or "revoke" in mp[1]):
        r = api.request(method.upper(), path.replace("{id}", key_id), json={} if method in ("post", "patch") else None)
        assert r.status_code in (200, 201), (method, path, r.text)
    # and a route that is not listed does not exist
    assert api.get("/admin/nothing").status_code == 404


def test_unknown_models_and_tiers_are_refused(console):
    api = admin(console)
    r = api.post("/admin/keys", json={"models": ["small", "smal"]})
    assert r.status_code == 400 and "'smal'" in r.json()["error"]["message"]
    r = api.post("/admin/keys", json={"tiers": ["gold"]})
    assert r.status_code == 400 and "'gold'" in r.json()["error"]["message"]


def test_tier_restricted_key_routes_auto_within_its_tier(console):
    api = admin(console)
    created = api.post("/admin/keys", json={"tiers": ["general"]}).json()
    wait_until(lambda: works(console, created["key"]))
    c = openai.OpenAI(base_url=f"{console.url}/v1", api_key=created["key"], max_retries=0, timeout=10)
    for _ in range(5):
        assert c.chat.completions.create(model="auto", messages=HI, max_tokens=5).model != "big"
    with pytest.raises(openai.PermissionDeniedError, match="reasoning"):
        c.chat.completions.create(model="reasoning", messages=HI, max_tokens=5)


def test_without_an_admin_key_there_is_no_admin_api_or_console(fake_upstream, tmp_path, serve_settings):
    settings = fake_settings(fake_upstream.url, tmp_path, keys={"enabled": True})
    gw = serve_settings(settings, guards=build_guards(settings))
    for path in ("/admin/keys", "/admin/openapi.json", "/ui", "/ui/console.js"):
        for headers in ({}, {"authorization": "Bearer anything-at-all-here"}):
            r = requests.get(gw.url + path, headers=headers, timeout=10)
            assert r.status_code == 404 and "server.admin_key" in r.text


def test_admin_key_without_virtual_keys_serves_the_views(fake_upstream, tmp_path, serve_settings):
    settings = fake_settings(fake_upstream.url, tmp_path, server={"admin_key": ADMIN})
    gw = serve_settings(settings)
    api = admin(gw)
    assert api.get("/admin/overview").status_code == 200
    r = api.post("/admin/keys", json={})
    assert r.status_code == 409 and "keys.enabled" in r.json()["error"]["message"]
    assert requests.get(f"{gw.url}/admin/overview", timeout=10).status_code == 401


def test_team_budget_binds_to_the_keys_team_not_to_client_labels(fake_upstream, tmp_path, serve_settings):
    # research may spend $0.000005 a day: two requests on "small" (~$0.0000021 each), not three
    settings = fake_settings(fake_upstream.url, tmp_path, server={"admin_key": ADMIN},
                             keys={"enabled": True, "poll_interval_seconds": POLL},
                             limits={"budgets": [{"scope": "team", "match": "research", "window": "day",
                                                  "usd": 0.000005}]})
    gw = serve_settings(settings, guards=build_guards(settings))
    api = admin(gw)
    member = api.post("/admin/keys", json={"team": "research"}).json()["key"]
    outsider = api.post("/admin/keys", json={}).json()["key"]
    wait_until(lambda: works(gw, outsider))

    def ask(key: str, team_tag: str) -> None:
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10).chat.completions.create(
            model="small", messages=HI, max_tokens=5, extra_body={"tierroute": {"tags": [f"team:{team_tag}"]}})

    # an outsider claiming to be research never touches research's budget
    for _ in range(4):
        ask(outsider, "research")
    # the member's label says another team, but its spend is research's
    ask(member, "other")
    ask(member, "other")
    with pytest.raises(openai.RateLimitError) as info:
        ask(member, "other")
    assert info.value.body["scope"] == "budget team=research (USD per day)"


def test_a_keys_rate_limit_applies_to_it_alone(console):
    api = admin(console)
    limited = api.post("/admin/keys", json={"rate_limits": [{"scope": "caller", "requests_per_minute": 3}]}).json()
    other = api.post("/admin/keys", json={}).json()
    wait_until(lambda: works(console, other["key"]))
    c = openai.OpenAI(base_url=f"{console.url}/v1", api_key=limited["key"], max_retries=0, timeout=10)
    answered = 0
    with pytest.raises(openai.RateLimitError, match="rate limit caller"):
        for _ in range(6):
            c.chat.completions.create(model="small", messages=HI, max_tokens=5)
            answered += 1
    assert answered == 3
    assert works(console, other["key"])
