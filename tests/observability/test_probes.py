"""/livez and /readyz over real HTTP, with real Redis and PostgreSQL (and closed loopback ports for failures)."""

from __future__ import annotations

import socket
import threading

import pytest

from tierroute.bootstrap import build_guards
from tierroute.ledger import SQLiteLedger
from tierroute.router import Router

from ..conftest import RunningGateway, fake_settings
from . import wire


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused at once
    return port


def limits(url: str, on_error: str = "closed", prefix: str = "tierroute") -> dict:
    return {"state": {"backend": "redis", "url": url, "on_error": on_error, "connect_timeout_seconds": 0.5,
                      "prefix": prefix},
            "budgets": [{"scope": "global", "usd": 100}]}


@pytest.fixture
def limited_gateway(fake_upstream, tmp_path, serve_settings):
    """A gateway with the limits guard its settings ask for (as ``tierroute serve`` builds it)."""
    def start(**overrides):
        settings = fake_settings(fake_upstream.url, tmp_path, **overrides)
        return serve_settings(settings, guards=build_guards(settings))

    return start


def test_live_and_ready_when_all_is_well(gateway):
    live = wire.get(f"{gateway.url}/livez")
    assert (live.status_code, live.json()) == (200, {"status": "live"})
    ready = wire.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["failing"] == []
    assert ready.json()["checks"]["routing"] == "3 models routable"


def test_not_ready_when_every_breaker_is_open_but_still_live(gateway_factory, fake_upstream):
    gw = gateway_factory(telemetry={"readiness_cache_seconds": 0},
                         reliability={"retry": {"retries": 0},
                                      "breaker": {"consecutive_failures": 1, "cooldown_seconds": 60}})
    fake_upstream.behaviour.status = 500
    for model in ("big", "mid", "small"):
        wire.post(f"{gw.url}/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}]})
    ready = wire.get(f"{gw.url}/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not ready" and body["failing"] == ["routing"]
    assert "breaker" in body["checks"]["routing"]
    assert wire.get(f"{gw.url}/livez").status_code == 200
    health = wire.get(f"{gw.url}/health")
    assert health.status_code == 200 and len(health.json()["unavailable"]) >= 3  # /health stays informative


def test_fail_closed_redis_must_answer(limited_gateway):
    gw = limited_gateway(limits=limits(f"redis://127.0.0.1:{closed_port()}/0"))
    ready = wire.get(f"{gw.url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["redis"]
    assert ready.json()["checks"]["redis"].startswith("unavailable")
    assert wire.get(f"{gw.url}/livez").status_code == 200


def test_fail_open_redis_is_not_required(limited_gateway):
    gw = limited_gateway(limits=limits(f"redis://127.0.0.1:{closed_port()}/0", on_error="open"))
    ready = wire.get(f"{gw.url}/readyz")
    assert ready.status_code == 200 and "redis" not in ready.json()["checks"]


def test_real_redis_ready_and_a_probe_storm_checks_it_once(limited_gateway, redis_url, redis_prefix):
    gw = limited_gateway(limits=limits(redis_url, prefix=redis_prefix),
                         telemetry={"readiness_cache_seconds": 60})
    store = gw.router.guards[0].store.primary
    pings = []
    real_ping = store.ping

    async def counted_ping() -> None:
        pings.append(1)
        await real_ping()

    store.ping = counted_ping
    answers: list[int] = []

    def probe() -> None:
        for _ in range(10):
            answers.append(wire.get(f"{gw.url}/readyz").status_code)

    threads = [threading.Thread(target=probe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == [200] * 80
    assert len(pings) == 1
    assert wire.get(f"{gw.url}/readyz").json()["checks"]["redis"] == "ok"


def test_postgres_ledger_must_answer(fake_upstream, tmp_path, postgres_dsn):
    from tierroute.ledger.postgres import PostgresLedger

    settings = fake_settings(fake_upstream.url, tmp_path, ledger={"backend": "postgres", "dsn": postgres_dsn})
    gw = RunningGateway(Router(settings, ledger=PostgresLedger(postgres_dsn)))
    try:
        ready = wire.get(f"{gw.url}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["postgres"] == "ok"
    finally:
        gw.stop()


def test_unreachable_postgres_is_not_ready(fake_upstream, tmp_path):
    dsn = f"postgresql://tierroute@127.0.0.1:{closed_port()}/test"
    settings = fake_settings(fake_upstream.url, tmp_path, ledger={"backend": "postgres", "dsn": dsn})
    # The ledger object only has to exist; readiness asks the configured server itself.
    gw = RunningGateway(Router(settings, ledger=SQLiteLedger(str(tmp_path / "l.db"))))
    try:
        ready = wire.get(f"{gw.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["postgres"]
        assert "unavailable" in ready.json()["checks"]["postgres"]
    finally:
        gw.stop()
