"""What a budget check costs per request: the limits guard on the in-memory store vs on Redis.

Per request it runs exactly what the Router runs around an upstream call: ``snapshot`` (runaway
count + budget pressure), ``admit`` (the atomic reservation) and ``settle``; the upstream call itself is
left out. Limits: a per-caller daily USD budget, a per-caller token budget, a global monthly budget, a
per-caller rate limit and runaway detection (5 counters, 4 store calls per request).

    python bench/bench_budget_overhead.py [--requests 5000] [--redis-url redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid
from typing import Any

from tierroute.budgets import LimitsGuard
from tierroute.budgets.settings import LimitsSettings
from tierroute.state import MemoryStore
from tierroute.types import Decision, ModelSpec, Ranked, RequestFeatures, Usage

MODEL = ModelSpec(id="m", provider="p", upstream="m", context_window=128_000, max_output_tokens=4096,
                  input_price=0.15, output_price=0.6)
LIMITS = {
    "budgets": [{"scope": "caller", "window": "day", "usd": 1e6, "tokens": 10**12},
                {"scope": "global", "window": "month", "usd": 1e9}],
    "rate_limits": [{"scope": "caller", "requests_per_minute": 10**9}],
    "runaway": {"enabled": True, "max_repeats": 10**9},
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def run(guard: LimitsGuard, n: int, warmup: int = 200) -> list[float]:
    decision = Decision(ranked=(Ranked(model=MODEL, expected_cost_usd=0.0),), reason="bench", policy="bench")
    timings = []
    for i in range(n + warmup):
        caller = f"key-{i % 50}"
        features = RequestFeatures(requested_model="auto", prompt_tokens=400, max_tokens=300, text="x", caller=caller)
        body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": f"question {i}"}]}
        started = time.perf_counter()
        await guard.snapshot(features, body)
        hold = await guard.admit(features, decision, uuid.uuid4().hex)
        await guard.settle(hold, cost_usd=0.0002, usage=Usage(400, 250), ok=True)
        if i >= warmup:
            timings.append((time.perf_counter() - started) * 1000)
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    settings = LimitsSettings.model_validate(LIMITS)
    results: dict[str, list[float]] = {}
    results["memory"] = await run(LimitsGuard(settings, MemoryStore()), args.requests)
    from tierroute.state.redis import RedisStore

    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    store = RedisStore(args.redis_url, prefix=prefix)
    try:
        results["redis"] = await run(LimitsGuard(settings, store), args.requests)
    finally:
        import redis

        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        await store.aclose()
    print(f"# {args.requests} requests, sequential; Python {platform.python_version()}, {platform.machine()}")
    print(f"{'store':<8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in results.items():
        print(f"{name:<8} {percentile(values, 50):>8.3f} {percentile(values, 90):>8.3f} "
              f"{percentile(values, 99):>8.3f} {statistics.fmean(values):>8.3f}")
    added = percentile(results["redis"], 50) - percentile(results["memory"], 50)
    print(f"Redis adds {added:.3f} ms p50 per request (target < 1 ms): {'OK' if added < 1 else 'OVER'}")


if __name__ == "__main__":
    import uvloop  # the gateway runs on uvloop (uvicorn --loop uvloop)

    uvloop.run(main())
