"""What the observer costs per request, in process: microseconds of CPU for the access log and for spans.

The paired gateway benchmark (bench_gateway.py --config/--baseline-config) measures the same thing end to end,
but on a shared 2-core machine its req/s moves by more than these costs; this isolates them. It runs the
observer's real code around a request that does nothing: the gateway wrapper, the router's hooks, the line
rendering and queueing (the writer thread drains to /dev/null), and the spans (exported to a closed loopback
port, so export fails fast; the export thread's own CPU is not counted here).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import socket
import sys
import time
from types import SimpleNamespace
from typing import Any

from tierroute.observability.observer import build_observer
from tierroute.observability.settings import TelemetrySettings
from tierroute.types import Usage


def fake_request() -> tuple[Any, list[Any]]:
    model = SimpleNamespace(id="mid", cost_usd=lambda p, c: (p + 2 * c) / 1e6)
    deployment = SimpleNamespace(id="fake/fake-mid", provider="fake", upstream="fake-mid")
    features = SimpleNamespace(caller="key-0123456789ab", requested_model="auto", stream=False, max_tokens=64)
    plan = SimpleNamespace(request_id="chatcmpl-tr-0", features=features,
                           decision=SimpleNamespace(reason="tier general: cheapest", policy="cheapest"))
    attempt = SimpleNamespace(number=1, model=model, deployment=deployment, started=time.perf_counter(), ended=0.0,
                              ttft=None, usage=Usage(11, 5), error=None, note=None, trace=None,
                              latency_ms=1.0, cost_usd=2.1e-5)
    return plan, [attempt]


async def measure(observer: Any, n: int) -> float:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}

    async def send(message: Any) -> None:
        pass

    async def receive() -> Any:
        return {"type": "http.request"}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        plan, attempts = fake_request()
        if observer is not None:
            observer.attempt_started(attempts[0])
            attempts[0].ended = time.perf_counter()
            observer.request_done(plan, attempts, status="ok", error=None, overhead_ms=0.1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def one() -> None:
        if observer is None:
            await app(scope, receive, send)
        else:
            await observer.serve(app, scope, receive, send)

    for _ in range(1000):
        await one()
    start = time.process_time()
    for _ in range(n):
        await one()
    return (time.process_time() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    sys.stdout = io.StringIO()  # the writer thread's lines go nowhere
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # export to a closed port fails, as intended
    cases = {"nothing (no observer)": ("off", TelemetrySettings()),
             "access_log: text": ("text", TelemetrySettings()),
             "access_log: json": ("json", TelemetrySettings()),
             "traces, sample_ratio 1": ("off", TelemetrySettings(otlp_endpoint=closed)),
             "traces, sample_ratio 0.1": ("off", TelemetrySettings(otlp_endpoint=closed, sample_ratio=0.1))}
    results = {}
    for name, (log_format, telemetry) in cases.items():
        observer = build_observer(log_format, telemetry)
        if observer is not None:
            observer.start()
        results[name] = asyncio.run(measure(observer, args.requests))
        if observer is not None:
            observer.stop()
            observer.tracing = None  # nothing to flush to a closed port
            observer.close()
    sys.stdout = sys.__stdout__
    base = results["nothing (no observer)"]
    for name, us in results.items():
        print(f"{name:<28} {us:7.1f} us CPU per request  (+{us - base:5.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
