"""Memory stays bounded under client-chosen labels (issue 15 item 12): over-long ``user`` values and too many
or too long tags are refused with a 400 naming the field, and what the limiters keep per label is a fixed
size (counter and runaway keys carry a digest of a long label), in memory and in Redis."""

from __future__ import annotations

import gc
import json
import tracemalloc
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tierroute.bootstrap import build_guards
from tierroute.budgets import LimitsGuard
from tierroute.budgets.settings import LimitsSettings
from tierroute.chat_request import MAX_TAG_CHARS, MAX_TAGS, MAX_USER_CHARS
from tierroute.state import MemoryStore
from tierroute.types import RequestFeatures

from ..conftest import RunningGateway, fake_settings

HI = [{"role": "user", "content": "hi"}]
# Every label-keyed control at once: per-user and per-tag budgets and rate limits, and runaway detection.
LIMITS = {"budgets": [{"scope": "user", "window": "day", "usd": 100}, {"scope": "tag", "window": "day", "usd": 100}],
          "rate_limits": [{"scope": "user", "requests_per_minute": 1000}],
          "runaway": {"enabled": True, "max_repeats": 1000, "window_seconds": 60}}


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"state": {"backend": "redis", "url": request.getfixturevalue("redis_url"),
                      "prefix": request.getfixturevalue("redis_prefix")}}


@pytest.fixture
def gw(fake_upstream: Any, tmp_path: Path, serve_settings: Any, state: dict[str, Any]) -> RunningGateway:
    settings = fake_settings(fake_upstream.url, tmp_path, limits={**LIMITS, **state}, ledger={"backend": "none"})
    return serve_settings(settings, guards=build_guards(settings))


@dataclass
class Response:
    status_code: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(gw: RunningGateway, body: dict[str, Any]) -> Response:
    data = json.dumps({"model": "small", "messages": HI, **body}).encode()
    request = urllib.request.Request(f"{gw.url}/v1/chat/completions", data=data,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return Response(answer.status, answer.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read())


def held_bytes(run: Any) -> int:
    """Bytes still allocated after ``run()`` (garbage collected first): what the process keeps."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("body, field, bound", [
    ({"user": "u" * (MAX_USER_CHARS + 1)}, "user", MAX_USER_CHARS),
    ({"tierroute": {"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}}, "tierroute.tags", MAX_TAGS),
    ({"tierroute": {"tags": ["t" * (MAX_TAG_CHARS + 1)]}}, "tierroute.tags", MAX_TAG_CHARS),
])
def test_over_long_labels_are_a_400_naming_the_field(gw, body, field, bound):
    response = post(gw, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == field and f"at most {bound}" in error["message"]
    assert post(gw, {}).status_code == 200  # the gateway keeps serving


def test_huge_user_values_and_tag_lists_do_not_stay_in_memory(gw):
    def huge_users() -> None:
        for i in range(60):
            assert post(gw, {"user": f"{i}" + "u" * 900_000}).status_code == 400

    def many_tags() -> None:
        for i in range(20):
            assert post(gw, {"tierroute": {"tags": [f"{i}-{j}" for j in range(20_000)]}}).status_code == 400

    post(gw, {})  # warm up: the first request builds connection pools and caches
    assert held_bytes(huge_users) < 4_000_000  # was +97 MB
    assert held_bytes(many_tags) < 4_000_000  # was +113 MB


def test_what_the_limiters_keep_per_label_has_a_fixed_size(gw):
    def longest_labels() -> None:
        for i in range(100):
            tags = [f"{i}-{j}-".ljust(MAX_TAG_CHARS, "t") for j in range(MAX_TAGS)]
            body = {"user": f"{i}-".ljust(MAX_USER_CHARS, "u"), "tierroute": {"tags": tags,
                                                                            "request_id": "r" * 10_000 + str(i)}}
            assert post(gw, body).status_code == 200

    post(gw, {})
    held = held_bytes(longest_labels)
    # 100 requests x (66 counters, each with its cached pressure level, and a runaway entry): ~33 KB each, the
    # same whatever the labels' length; a 900 KB label is refused above, a 256-character one is stored as a digest
    assert held < 100 * 40_000
    store = gw.router.guards[0].store
    keys = _memory_keys(store) if isinstance(store, MemoryStore) else _redis_keys(gw)
    assert keys and max(len(k) for k in keys) <= 160


def _memory_keys(store: MemoryStore) -> list[str]:
    return list(store._levels) + list(store._seen) + [m for s in store._seen.values() for m in s.members]


def _redis_keys(gw: RunningGateway) -> list[str]:
    import redis

    prefix = gw.router.settings.limits.state.prefix
    client = redis.Redis.from_url(gw.router.settings.limits.state.url)
    try:
        keys = [k.decode() for k in client.scan_iter(match=f"{{{prefix}}}:*", count=1000)]
        members = [m.decode() for k in keys if ":s:" in k for m in client.zrange(k, 0, -1)]
        return keys + members
    finally:
        client.close()


async def test_runaway_entries_are_forgotten_once_their_window_has_passed():
    now = [1_000_000.0]
    store = MemoryStore()
    guard = LimitsGuard(LimitsSettings.model_validate({"runaway": {"enabled": True, "window_seconds": 60,
                                                                    "max_repeats": 10_000}}), store,
                        clock=lambda: now[0])
    for i in range(3000):
        await guard.snapshot(RequestFeatures(requested_model="auto", prompt_tokens=1, max_tokens=None, text="hi",
                                                       user=f"u{i}"), {"messages": HI})
    now[0] += 3600
    for _ in range(1100):
        await guard.snapshot(RequestFeatures(requested_model="auto", prompt_tokens=1, max_tokens=None, text="hi",
                                                       user="again"), {"messages": HI})
    assert len(store._seen) == 1  # the 3000 of an hour ago are gone (they were kept for a day)
