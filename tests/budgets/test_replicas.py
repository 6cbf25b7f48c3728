"""Several gateway processes sharing one Redis: the budget holds across replicas, and a killed replica's
reservations are released when they expire."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tierroute.state import Counter
from tierroute.state.redis import RedisStore


# "count to three": 3 + 4 + 4 = 11 estimated prompt tokens, exactly what the fake upstream reports, and
# max_tokens 5 = the fake's completion; so the reservation equals the real cost: $0.0000021 on "small".
BODY = {"model": "small", "messages": [{"role": "user", "content": "count to three"}], "max_tokens": 5}
COST_NANO = 2100
ROOM_FOR = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, upstream: str, redis_url: str, prefix: str, **limits: Any) -> Path:
    config = {
        "providers": {"fake": {"kind": "openai", "api_base": f"{upstream}/v1", "api_key": "sk-upstream"}},
        "models": [{"id": "small", "provider": "fake", "upstream": "fake-small", "context_window": 4000,
                    "max_output_tokens": 1024, "input_price": 0.1, "output_price": 0.2, "tier": "general"}],
        "ledger": {"backend": "none", "journal_dir": str(path.parent / "journal")},
        "limits": {"state": {"backend": "redis", "url": redis_url, "prefix": prefix}, **limits},
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Replicas:
    def __init__(self, config: Path, n: int) -> None:
        self.ports = [free_port() for _ in range(n)]
        env = {**os.environ, "TIERROUTE_CONFIG": str(config)}
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "tierroute.bootstrap:gateway_app", "--host", "127.0.0.1",
             "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
             "--no-access-log"], env=env) for port in self.ports]

    async def wait_ready(self, timeout_seconds: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        async with aiohttp.ClientSession() as http:
            for port, proc in zip(self.ports, self.procs):
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"gateway on port {port} exited with {proc.returncode}")
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/health") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"gateway on port {port} did not start")
                    await asyncio.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def replicas() -> Iterator[Any]:
    started: list[Replicas] = []

    def start(config: Path, n: int) -> Replicas:
        started.append(Replicas(config, n))
        return started[-1]

    yield start
    for r in started:
        r.stop()


def budget_key() -> str:
    return "global=all:usd:total:all"


async def test_three_replicas_200_concurrent_requests_never_overspend(replicas, fake_upstream, redis_url, redis_prefix, tmp_path):
    fake_upstream.behaviour.delay_seconds = 0.05  # keep many requests in flight at once
    limit_usd = ROOM_FOR * COST_NANO / 1e9
    config = write_config(tmp_path / "tierroute.yaml", fake_upstream.url, redis_url, redis_prefix,
                          budgets=[{"scope": "global", "window": "total", "usd": limit_usd}])
    gateways = replicas(config, 3)
    await gateways.wait_ready()

    async def one(http: aiohttp.ClientSession, i: int) -> tuple[int, dict[str, Any]]:
        port = gateways.ports[i % 3]
        async with http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY) as r:
            return r.status, await r.json()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        results = await asyncio.gather(*(one(http, i) for i in range(200)))
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 429}, [b for s, b in results if s not in (200, 429)][:3]
    refused = [body["error"] for s, body in results if s == 429]
    # the reservation equals the real cost, so exactly the 50 that fit are served: none refused with room left
    assert statuses.count(200) == ROOM_FOR and len(refused) == 150
    assert all(e["scope"] == "budget global=all (USD per total)" for e in refused)
    store = RedisStore(redis_url, prefix=redis_prefix)
    try:
        spent = (await store.levels([budget_key()]))[0]
    finally:
        await store.aclose()
    assert spent == ROOM_FOR * COST_NANO  # settled spend; nothing left reserved
    assert spent <= limit_usd * 1e9 + COST_NANO  # the guarantee: at most one reservation over
    assert len(fake_upstream.requests) == ROOM_FOR


async def test_a_killed_replicas_reservations_expire_and_are_released(replicas, fake_upstream, redis_url, redis_prefix, tmp_path):
    fake_upstream.behaviour.delay_seconds = 30  # the request is in flight when the replica dies
    config = write_config(tmp_path / "tierroute.yaml", fake_upstream.url, redis_url, redis_prefix,
                          budgets=[{"scope": "global", "window": "total", "usd": 1.0}],
                          **{"state": {"backend": "redis", "url": redis_url, "prefix": redis_prefix,
                                       "reservation_ttl_seconds": 2}})
    gateway = replicas(config, 1)
    await gateway.wait_ready()
    store = RedisStore(redis_url, prefix=redis_prefix)
    async with aiohttp.ClientSession() as http:
        pending = asyncio.ensure_future(http.post(f"http://127.0.0.1:{gateway.ports[0]}/v1/chat/completions", json=BODY))
        deadline = time.monotonic() + 10
        while (await store.levels([budget_key()]))[0] == 0:
            assert time.monotonic() < deadline, "the request was never reserved"
            await asyncio.sleep(0.02)
        assert (await store.levels([budget_key()]))[0] == COST_NANO  # held by the live replica
        gateway.procs[0].send_signal(signal.SIGKILL)
        gateway.procs[0].wait(5)
        with pytest.raises(aiohttp.ClientError):
            await pending
    assert (await store.levels([budget_key()]))[0] == COST_NANO  # nobody settled it
    await asyncio.sleep(2.1)
    # any replica's next reservation releases expired holds first
    await store.reserve("next", [Counter("other", 10)], [1], now=time.time(), hold_seconds=60)
    assert (await store.levels([budget_key()]))[0] == 0
    await store.aclose()
