"""An unreachable Redis never hangs the gateway: fail closed refuses clearly, fail open counts locally."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tierroute.state import Counter, StateUnavailable
from tierroute.state.fallback import FallbackStore
from tierroute.state.redis import RedisStore

T0 = 1_700_000_000.0
# A port nothing listens on: refused at once.
REFUSED = "redis://127.0.0.1:1/0"


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A loopback server that accepts connections and never answers: a hung Redis, on this machine only."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


@pytest.mark.parametrize("kind", ["refused", "hung"])
async def test_fail_closed_is_a_clear_503_within_the_timeout(kind, silent_redis):
    url = REFUSED if kind == "refused" else silent_redis
    store = FallbackStore(RedisStore(url, timeout_seconds=0.2, connect_timeout_seconds=0.2), on_error="closed")
    started = time.monotonic()
    with pytest.raises(StateUnavailable) as info:
        await store.reserve("r1", [Counter("a", 10)], [1], now=T0, hold_seconds=60)
    assert time.monotonic() - started < 1.5
    assert info.value.http_status == 503
    assert "unreachable" in info.value.message and url.removeprefix("redis://").removesuffix("/0") in info.value.message
    await store.aclose()


async def test_fail_open_enforces_limits_locally_and_settles_locally():
    store = FallbackStore(RedisStore(REFUSED, timeout_seconds=0.2), on_error="open", retry_after_seconds=60)
    a = Counter("a", 2)
    assert await store.reserve("r1", [a], [1], now=T0, hold_seconds=60) is None
    assert await store.reserve("r2", [a], [1], now=T0, hold_seconds=60) is None
    assert await store.reserve("r3", [a], [1], now=T0, hold_seconds=60) is not None
    await store.settle("r1", [a], [0], now=T0)
    assert await store.levels(["a"]) == [1]
    assert await store.seen("k", "m", now=T0, window_seconds=60) == 1
    await store.aclose()
