"""Redis state: counters shared by every replica. Each operation is one Lua script run with EVALSHA.

Keys share one hash tag (``{prefix}``) so the scripts, which touch several keys, also run on Redis Cluster.
Layout, for a store with prefix ``tr``::

    {tr}:c:<counter>   hash  used, reserved          expires with its window
    {tr}:h:<hold id>   hash  <counter key> -> amount  one request's reservation
    {tr}:holds         zset  hold id -> expiry        so anyone can release a dead process's holds
    {tr}:x:<hold id>   string                         an expired hold not yet settled (a tombstone)
    {tr}:s:<key>       zset  member -> first seen     runaway detection

Time comes from the caller (epoch seconds), as for the memory store, so replicas need synchronised clocks
(NTP) and tests can inject a clock. Errors are translated to :class:`StateUnavailable` here, in one place.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from .._exceptions import StateUnavailable
from .base import TOMBSTONE_SECONDS, Counter, Refusal

T = TypeVar("T")

# At most this many expired holds are released per reservation, so one call never runs long.
_RELEASE_BATCH = 64

_RESERVE = """
local now = tonumber(ARGV[1])
local hold_id = ARGV[2]
local hold_expires = tonumber(ARGV[3])
local hold_prefix = ARGV[4]
local tomb_prefix = ARGV[5]
local tomb_ms = tonumber(ARGV[6])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, %d)
for _, id in ipairs(expired) do
  local hk = hold_prefix .. id
  local held = redis.call('HGETALL', hk)
  for i = 1, #held, 2 do
    if redis.call('EXISTS', held[i]) == 1 then
      redis.call('HINCRBY', held[i], 'reserved', -tonumber(held[i + 1]))
    end
  end
  redis.call('DEL', hk)
  redis.call('ZREM', KEYS[1], id)
  redis.call('SET', tomb_prefix .. id, '1', 'PX', tomb_ms)
end
local n = #KEYS - 2
for i = 1, n do
  local limit = tonumber(ARGV[5 + i * 3 - 1])
  local amount = tonumber(ARGV[5 + i * 3])
  local v = redis.call('HMGET', KEYS[i + 2], 'used', 'reserved')
  local level = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  if level + amount > limit then
    return {i - 1, level}
  end
end
for i = 1, n do
  local key = KEYS[i + 2]
  local amount = tonumber(ARGV[5 + i * 3])
  local ttl_ms = tonumber(ARGV[5 + i * 3 + 1])
  if hold_id == '' then
    redis.call('HINCRBY', key, 'used', amount)
  else
    redis.call('HINCRBY', key, 'reserved', amount)
    redis.call('HINCRBY', KEYS[2], key, amount)
  end
  if ttl_ms > 0 then
    redis.call('PEXPIRE', key, ttl_ms)
  end
end
if hold_id ~= '' then
  redis.call('ZADD', KEYS[1], hold_expires, hold_id)
end
return -1
""" % _RELEASE_BATCH

# Exactly once per hold: a live hold, or an expired one (its tombstone), is charged and forgotten; a hold
# neither live nor tombstoned was settled already, so settling again (a replay) changes nothing.
_SETTLE = """
local held = redis.call('HGETALL', KEYS[2])
local tombstone = redis.call('DEL', KEYS[3])
if #held == 0 and tombstone == 0 then
  return 0
end
local remaining = {}
for i = 1, #held, 2 do
  remaining[held[i]] = tonumber(held[i + 1])
end
for i = 4, #KEYS do
  local key = KEYS[i]
  local amount = tonumber(ARGV[(i - 4) * 2 + 2])
  local ttl_ms = tonumber(ARGV[(i - 4) * 2 + 3])
  if remaining[key] then
    redis.call('HINCRBY', key, 'reserved', -remaining[key])
    remaining[key] = nil
  end
  if amount > 0 then
    redis.call('HINCRBY', key, 'used', amount)
    if ttl_ms > 0 then
      redis.call('PEXPIRE', key, ttl_ms)
    end
  end
end
for key, amount in pairs(remaining) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'reserved', -amount)
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

_LEVELS = """
local out = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'used', 'reserved')
  out[i] = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
end
return out
"""

_SEEN = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], 'NX', now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
return redis.call('ZCARD', KEYS[1])
"""


def _ttl_ms(counter: Counter, now: float) -> int:
    if counter.expires_at is None:
        return 0
    return max(1000, math.ceil((counter.expires_at - now) * 1000))


class RedisStore:
    """A :class:`StateStore` on Redis. ``timeout_seconds`` bounds every socket operation: never hangs."""

    def __init__(self, url: str, *, prefix: str = "tierroute", timeout_seconds: float = 0.25,
                 connect_timeout_seconds: float = 1.0, max_connections: int = 16) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StateUnavailable("limits.state.backend is 'redis' but the redis package is not installed; "
                                   "install tierroute[redis]") from exc
        self.url = url
        # A small blocking pool: each script takes well under a millisecond, so a burst is served best by
        # queueing briefly for a warm connection rather than opening (and timing out on) dozens of new ones.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=connect_timeout_seconds,
            retry=Retry(NoBackoff(), 0), max_connections=max_connections, timeout=connect_timeout_seconds)
        self._client = aioredis.Redis(connection_pool=pool)
        tag = "{" + prefix + "}"
        self._counter = f"{tag}:c:"
        self._hold = f"{tag}:h:"
        self._holds = f"{tag}:holds"
        self._tomb = f"{tag}:x:"
        self._seen_prefix = f"{tag}:s:"
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)
        self._levels = self._client.register_script(_LEVELS)
        self._seen = self._client.register_script(_SEEN)

    async def _call(self, operation: Awaitable[T]) -> T:
        import redis.exceptions

        try:
            return await operation
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            raise StateUnavailable(f"limits state store at {self._safe_url()} is unreachable: "
                                   f"{type(exc).__name__}: {exc}") from None

    def _safe_url(self) -> str:
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    async def reserve(self, hold_id: str | None, counters: Sequence[Counter], amounts: Sequence[int], *,
                      now: float, hold_seconds: float) -> Refusal | None:
        keys = [self._holds, self._hold + (hold_id or "")] + [self._counter + c.key for c in counters]
        args: list[Any] = [repr(now), hold_id or "", repr(now + hold_seconds), self._hold, self._tomb,
                           int(TOMBSTONE_SECONDS * 1000)]
        for counter, amount in zip(counters, amounts):
            args += [counter.limit, amount, _ttl_ms(counter, now)]
        result = await self._call(self._reserve(keys=keys, args=args))
        if isinstance(result, list):
            return Refusal(index=int(result[0]), level=int(result[1]))
        return None

    async def settle(self, hold_id: str, counters: Sequence[Counter], amounts: Sequence[int], *, now: float) -> bool:
        keys = [self._holds, self._hold + hold_id, self._tomb + hold_id] + [self._counter + c.key for c in counters]
        args: list[Any] = [hold_id]
        for counter, amount in zip(counters, amounts):
            args += [amount, _ttl_ms(counter, now)]
        return bool(await self._call(self._settle(keys=keys, args=args)))

    async def levels(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        result = await self._call(self._levels(keys=[self._counter + k for k in keys]))
        return [int(v) for v in result]

    async def seen(self, key: str, member: str, *, now: float, window_seconds: float) -> int:
        return int(await self._call(self._seen(keys=[self._seen_prefix + key], args=[repr(now), repr(window_seconds), member])))

    async def ping(self) -> None:
        await self._call(self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose(close_connection_pool=True)
