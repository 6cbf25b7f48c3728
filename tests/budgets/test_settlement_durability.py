"""Every answered request is charged exactly once, even when Redis is down as it finishes or the replica
dies before settling: real gateway processes, a real redis-server killed and restarted, SIGKILL.

Each test runs its own ``redis-server`` (append-only file, fsync always, so a restart keeps the counters as
a production Redis with persistence would), since the shared one must not be stopped.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tierroute.state import Counter
from tierroute.state.redis import RedisStore

from .test_replicas import BODY, COST_NANO, Replicas, budget_key, free_port

PREFIX = "durable"


class OwnRedis:
    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def counter(self) -> tuple[int, int]:
        """(used, reserved) of the global budget's counter."""
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            used, reserved = client.hmget(f"{{{PREFIX}}}:c:{budget_key()}", "used", "reserved")
        finally:
            client.close()
        return int(used or 0), int(reserved or 0)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


def write_config(path: Path, upstream: str, redis_url: str, journal: Path, **state: Any) -> Path:
    config = {
        "providers": {"fake": {"kind": "openai", "api_base": f"{upstream}/v1", "api_key": "sk-upstream"}},
        "models": [{"id": "small", "provider": "fake", "upstream": "fake-small", "context_window": 4000,
                    "max_output_tokens": 1024, "input_price": 0.1, "output_price": 0.2, "tier": "general"}],
        "ledger": {"backend": "none", "journal_dir": str(journal)},
        "limits": {"state": {"backend": "redis", "url": redis_url, "prefix": PREFIX, "timeout_seconds": 0.25,
                             "connect_timeout_seconds": 0.25, "retry_after_seconds": 0.2, **state},
                   "budgets": [{"scope": "global", "window": "total", "usd": 1.0}]},
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def post(http: aiohttp.ClientSession, port: int) -> int:
    async with http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY) as r:
        await r.read()
        return r.status


async def wait_reserved(redis: OwnRedis, amount: int) -> None:
    deadline = time.monotonic() + 15
    while redis.counter()[1] < amount:
        assert time.monotonic() < deadline, f"never reserved {amount}: {redis.counter()}"
        await asyncio.sleep(0.02)


async def test_requests_answered_while_redis_is_down_are_charged_once_it_is_back(fake_upstream, own_redis, tmp_path):
    fake_upstream.behaviour.delay_seconds = 1.0  # in flight while Redis dies
    config = write_config(tmp_path / "tierroute.yaml", fake_upstream.url, own_redis.url, tmp_path / "journal")
    gateway = Replicas(config, 1)
    try:
        await gateway.wait_ready()
        port = gateway.ports[0]
        async with aiohttp.ClientSession() as http:
            flying = [asyncio.ensure_future(post(http, port)) for _ in range(5)]
            await wait_reserved(own_redis, 5 * COST_NANO)
            own_redis.kill()
            assert await asyncio.gather(*flying) == [200] * 5  # answered: the provider charged us for them
            own_redis.start()  # the counters come back from the append-only file, holds and all
            assert own_redis.counter() == (0, 5 * COST_NANO), "nothing settled while Redis was down"
            fake_upstream.behaviour.delay_seconds = 0
            await asyncio.sleep(0.3)  # past retry_after_seconds
            assert await post(http, port) == 200  # the next request sends the kept settlements first
        assert own_redis.counter() == (6 * COST_NANO, 0), "all six charged, once, nothing left held"
    finally:
        gateway.stop()


async def test_a_replica_killed_with_unsettled_requests_is_charged_by_the_next_one_exactly_once(
        fake_upstream, own_redis, tmp_path):
    """The dead replica's holds even expire before anyone replays them; a copy of its journal replayed a
    second time charges nothing more."""
    fake_upstream.behaviour.delay_seconds = 1.0
    journal = tmp_path / "journal"
    config = write_config(tmp_path / "tierroute.yaml", fake_upstream.url, own_redis.url, journal,
                          reservation_ttl_seconds=2)
    first = Replicas(config, 1)
    later: list[Replicas] = []
    try:
        await first.wait_ready()
        async with aiohttp.ClientSession() as http:
            flying = [asyncio.ensure_future(post(http, first.ports[0])) for _ in range(3)]
            await wait_reserved(own_redis, 3 * COST_NANO)
            own_redis.kill()
            assert await asyncio.gather(*flying) == [200] * 3
            first.procs[0].send_signal(signal.SIGKILL)  # dies owing three settlements
            first.procs[0].wait(5)
            backup = tmp_path / "journal-copy"
            shutil.copytree(journal, backup)
            own_redis.start()
            await asyncio.sleep(2.2)  # the dead replica's holds expire...
            store = RedisStore(own_redis.url, prefix=PREFIX)
            await store.reserve("sweep", [Counter("other", 10)], [1], now=time.time(), hold_seconds=1)
            await store.aclose()
            assert own_redis.counter() == (0, 0), "...and are released: without the journal this spend is lost"

            fake_upstream.behaviour.delay_seconds = 0
            later.append(Replicas(config, 1))  # adopts the dead replica's journal at start-up
            await later[-1].wait_ready()
            assert await post(http, later[-1].ports[0]) == 200
            assert own_redis.counter() == (4 * COST_NANO, 0)

            later[-1].stop()
            for item in backup.iterdir():  # the same journal again, as if it had never been marked done
                shutil.copy(item, journal / item.name)
            later.append(Replicas(config, 1))
            await later[-1].wait_ready()
            assert await post(http, later[-1].ports[0]) == 200
            assert own_redis.counter() == (5 * COST_NANO, 0), "the replay charged nothing twice"
    finally:
        first.stop()
        for r in later:
            r.stop()
