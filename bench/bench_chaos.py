"""Chaos benchmark: one model on three fake upstreams under sustained open-loop load, with and without faults.

Faults in the chaos run: ``p0`` fails 30% of requests at random (HTTP 500); ``p1`` gets 5x slower for the
middle third of the run; ``p2`` stays healthy. Reports success rate, p50/p99 latency against a fault-free run,
and how many seconds the balancer took to move traffic off the slow deployment and back.

    python bench/bench_chaos.py                  # 60 s per run, 100 requests/s
    python bench/bench_chaos.py --duration 20 --rps 50

Everything (client, gateway, upstreams) runs in this process on loopback, each server on its own thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import RunningGateway  # noqa: E402
from tests.fakes.chaos import Outcome, chaos_settings, deployment_id, one_request, share, start_upstreams  # noqa: E402
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI  # noqa: E402
from tierroute.ledger import SQLiteLedger  # noqa: E402
from tierroute.router import Router  # noqa: E402

WINDOW_SECONDS = 0.5


async def open_loop(client: openai.AsyncOpenAI, *, rps: float, seconds: float, max_outstanding: int = 400) -> list[Outcome]:
    """Send ``rps`` requests a second for ``seconds`` regardless of how fast answers come (sustained load)."""
    tasks: list[asyncio.Task[Outcome]] = []
    start = time.monotonic()
    n = int(rps * seconds)
    for i in range(n):
        delay = start + i / rps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if sum(not t.done() for t in tasks[-max_outstanding:]) >= max_outstanding:
            await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(one_request(client, stream=False)))
    return list(await asyncio.gather(*tasks))


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else (values or [0.0])[0]


def first_window(outcomes: list[Outcome], deployment: str, since: float, until: float, test: Any) -> float | None:
    """Seconds after ``since`` at which the deployment's share over the next window first passes ``test``."""
    t = since
    while t + WINDOW_SECONDS <= until:
        if test(share(outcomes, deployment, t, t + WINDOW_SECONDS)):
            return t - since
        t += 0.05
    return None


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    ok = [o for o in outcomes if o.error is None]
    latencies = [o.seconds * 1000 for o in ok]
    return {
        "requests": len(outcomes),
        "success_rate": len(ok) / max(1, len(outcomes)),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "retried": sum(o.attempts > 1 for o in ok),
        "errors": sorted({o.error or "" for o in outcomes if o.error})[:5],
    }


async def run(upstreams: list[FakeOpenAI], *, duration: float, rps: float, latency: float, chaos: bool,
              ledger_dir: str) -> dict[str, Any]:
    for u in upstreams:
        u.reset()
        u.behaviour = Behaviour(delay_seconds=latency)
    settings = chaos_settings([u.url for u in upstreams], f"{ledger_dir}/{'chaos' if chaos else 'baseline'}.db",
                              first_token_timeout_seconds=5, total_timeout_seconds=10)
    gw = RunningGateway(Router(settings, ledger=SQLiteLedger(settings.ledger.path)))
    try:
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=30,
                                      http_client=None) as client:
            await asyncio.gather(*(one_request(client, stream=False) for _ in range(20)))  # warm up
            start = time.monotonic()
            slow_at, healed_at = start + duration / 3, start + 2 * duration / 3
            if chaos:
                upstreams[0].behaviour.failure_rate = 0.3

                async def slow_down() -> None:
                    await asyncio.sleep(slow_at - time.monotonic())
                    upstreams[1].behaviour.delay_seconds = latency * 5
                    await asyncio.sleep(healed_at - time.monotonic())
                    upstreams[1].behaviour.delay_seconds = latency

                faults = asyncio.create_task(slow_down())
            outcomes = await open_loop(client, rps=rps, seconds=duration)
            if chaos:
                await faults
    finally:
        gw.stop()
    result = summary(outcomes)
    slow = deployment_id(1)
    result["share_of_p1_before"] = round(share(outcomes, slow, start + 2, slow_at), 3)
    if chaos:
        away = first_window(outcomes, slow, slow_at, healed_at, lambda s: s < 0.1)
        back = first_window(outcomes, slow, healed_at, start + duration, lambda s: s >= 0.2)
        result["share_of_p1_while_slow"] = round(share(outcomes, slow, slow_at + 5, healed_at), 3)
        result["share_of_p1_after"] = round(share(outcomes, slow, healed_at + 5, start + duration), 3)
        result["seconds_to_move_away"] = None if away is None else round(away, 1)
        result["seconds_to_come_back"] = None if back is None else round(back, 1)
        result["p0_upstream_requests"] = len(upstreams[0].requests)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per run (default 60)")
    parser.add_argument("--rps", type=float, default=100.0, help="requests per second offered (default 100)")
    parser.add_argument("--latency", type=float, default=0.05, help="upstream answer time in seconds (default 0.05)")
    args = parser.parse_args()
    upstreams = start_upstreams(3)
    with tempfile.TemporaryDirectory() as ledger_dir:
        baseline = await run(upstreams, duration=args.duration, rps=args.rps, latency=args.latency, chaos=False,
                             ledger_dir=ledger_dir)
        chaos = await run(upstreams, duration=args.duration, rps=args.rps, latency=args.latency, chaos=True,
                          ledger_dir=ledger_dir)
    print(json.dumps({"args": vars(args), "baseline": baseline, "chaos": chaos}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
