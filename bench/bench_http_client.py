"""The upstream HTTP client alone: aiohttp vs tierroute's lean client, POSTing to nginx, in one run.

Starts nginx (the same canned chat.completion as bench_gateway.py) and, for each client, sends N sequential
POSTs and then N POSTs from 50 concurrent tasks, alternating the clients over rounds. It reports the client
process's CPU time per request (the figure noise moves least) and requests per second, medians over rounds.
The benchmark pins itself to the first CPU and nginx to the second.

    python bench/bench_http_client.py [--requests 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gateway as gw  # noqa: E402

from tierroute.config import ProviderSettings  # noqa: E402
from tierroute.providers.client import HTTPClient, open_client  # noqa: E402

CONCURRENCY = 50
BODY = json.dumps({"model": "fake-small", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "Summarise: tierroute routes LLM calls."}]}).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}


async def measure(client: HTTPClient, url: str, n: int, concurrency: int) -> tuple[float, float]:
    """(CPU microseconds per request, requests per second)."""
    async def one() -> None:
        resp = await client.post(url, BODY, HEADERS)
        try:
            await resp.read()
        finally:
            resp.release()
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = (n // concurrency) * concurrency
    return cpu * 1e6 / done, done / wall


async def run(url: str, n: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    makers: dict[str, Callable[[], HTTPClient]] = {
        name: (lambda name=name: open_client(ProviderSettings(api_base=url.rsplit("/v1", 1)[0], http_client=name)))
        for name in ("aiohttp", "fast")
    }
    results: dict[str, dict[str, list[float]]] = {name: {} for name in makers}
    clients = {name: make() for name, make in makers.items()}
    try:
        for name, client in clients.items():  # warm up: pools, first-call imports
            await measure(client, url, 500, CONCURRENCY)
        for r in range(rounds):
            for concurrency in (1, CONCURRENCY):
                for name, client in clients.items():
                    cpu, rps = await measure(client, url, n, concurrency)
                    results[name].setdefault(f"cpu_us_c{concurrency}", []).append(cpu)
                    results[name].setdefault(f"rps_c{concurrency}", []).append(rps)
                    print(f"round {r + 1}/{rounds} {name:<8} c={concurrency:<3} {cpu:6.1f} us CPU/req {rps:8.0f} req/s",
                          file=sys.stderr)
    finally:
        for client in clients.values():
            await client.aclose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gw.ensure_tools()
    mine, other = gw.cpu_plan()
    if mine is not None:
        os.sched_setaffinity(0, mine)
    procs = gw.Processes()
    with tempfile.TemporaryDirectory(prefix="tierroute-client-bench-") as tmpdir:
        tmp = Path(tmpdir)
        port = gw.free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(gw.NGINX_TEMPLATE.read_text().format(
            tmp=tmp, port=port, body=json.dumps(gw.CANNED_COMPLETION, separators=(",", ":"))))
        try:
            nginx = procs.start(["nginx", "-p", str(tmp), "-c", str(conf)], cpus=other, log=tmp / "nginx.out")
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            gw.wait_for(url, nginx, tmp / "nginx.out")
            results = uvloop.run(run(url, args.requests, args.rounds))
        finally:
            procs.stop_all()
    print(f"{'':<28}{'aiohttp':>10}{'fast':>10}{'fast/aiohttp':>14}")
    for key, label in (("cpu_us_c1", "CPU us/req, sequential"), ("cpu_us_c50", f"CPU us/req, c={CONCURRENCY}"),
                       ("rps_c1", "req/s, sequential"), ("rps_c50", f"req/s, c={CONCURRENCY}")):
        a, f = results["aiohttp"][key], results["fast"][key]
        ratio = statistics.median(y / x for x, y in zip(a, f))  # paired per round
        print(f"{label:<28}{statistics.median(a):>10.1f}{statistics.median(f):>10.1f}{ratio:>14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
