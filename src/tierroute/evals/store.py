"""Where the quality guard's per-route states and the evaluation spend live: this process's memory, or Redis
(the limits store's, ``limits.state``) so that every replica pools its judgments and acts on the same state.

A route's state is a small JSON document updated read-modify-write: in Redis under WATCH, retried when another
replica wrote it in between, so no judgment is lost or counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

State = dict[str, Any]
Update = Callable[[State | None], State]
SPEND_TTL_SECONDS = 3 * 86400


class GuardStore(Protocol):
    async def update(self, route: str, fn: Update) -> tuple[State | None, State]:
        """Apply ``fn`` to the route's state atomically; returns (before, after). ``fn`` may run more than once."""
        ...

    async def states(self) -> dict[str, State]: ...

    async def add_spend(self, day: str, usd: float) -> float:
        """Add to the day's evaluation spend; returns the new total."""
        ...

    async def spend(self, day: str) -> float: ...

    async def aclose(self) -> None: ...


class MemoryGuardStore:
    def __init__(self) -> None:
        self._states: dict[str, State] = {}
        self._spend: dict[str, float] = {}

    async def update(self, route: str, fn: Update) -> tuple[State | None, State]:
        before = self._states.get(route)
        after = self._states[route] = fn(before)
        return before, after

    async def states(self) -> dict[str, State]:
        return dict(self._states)

    async def add_spend(self, day: str, usd: float) -> float:
        for old in [d for d in self._spend if d < day]:  # only today's total is ever read
            del self._spend[old]
        total = self._spend[day] = self._spend.get(day, 0.0) + usd
        return total

    async def spend(self, day: str) -> float:
        return self._spend.get(day, 0.0)

    async def aclose(self) -> None:
        return None


class RedisGuardStore:
    def __init__(self, url: str, *, prefix: str = "tierroute", timeout_seconds: float = 2.0) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(url, socket_timeout=timeout_seconds,
                                               socket_connect_timeout=timeout_seconds)
        tag = "{" + prefix + "}"  # the limits store's hash tag: one Redis Cluster slot
        self._routes = f"{tag}:evals:routes"
        self._spend = f"{tag}:evals:spend:"

    async def update(self, route: str, fn: Update) -> tuple[State | None, State]:
        from redis.exceptions import WatchError

        async with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._routes)
                    raw = await pipe.hget(self._routes, route)
                    before = orjson.loads(raw) if raw else None
                    after = fn(before)
                    pipe.multi()
                    pipe.hset(self._routes, route, orjson.dumps(after))
                    await pipe.execute()
                    return before, after
                except WatchError:
                    continue  # another replica judged in between: apply ours to its state

    async def states(self) -> dict[str, State]:
        raw = await self._client.hgetall(self._routes)
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    async def add_spend(self, day: str, usd: float) -> float:
        key = self._spend + day
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(key, usd)
            pipe.expire(key, SPEND_TTL_SECONDS)
            total, _ = await pipe.execute()
        return float(total)

    async def spend(self, day: str) -> float:
        raw = await self._client.get(self._spend + day)
        return float(raw) if raw else 0.0

    async def aclose(self) -> None:
        await self._client.aclose()
