"""Per-request cost of authenticating with a virtual key among 10,000 against a single static key.

    python bench/bench_keys.py [--keys 10000] [--calls 200000] [--rounds 5]

Builds a real gateway (SQLite ledger, keys.enabled) with one static key and N virtual keys, then times the
gateway's own authentication step on request headers, alternating static and virtual rounds (paired, so
machine noise hits both). Prints the median microseconds per call of each and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tierroute.bootstrap import build_guards
from tierroute.config import parse_settings
from tierroute.keys.settings import KeySpec
from tierroute.router import Router
from tierroute.server import create_app

STATIC = "static-key-0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = parse_settings({"ledger": {"path": str(Path(tmp) / "l.db")}, "server": {"api_keys": [STATIC]},
                                   "keys": {"enabled": True}}, environ={})
        guards = build_guards(settings)
        registry = guards[0].registry
        secret = ""
        for i in range(args.keys):
            _, secret = registry.store.create(KeySpec(name=f"k{i}"), actor="bench")
        registry.refresh()
        assert len(registry) == args.keys
        app = create_app(Router(settings, guards=guards))
        auth = app._authenticate
        scopes = {name: {"headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer " + k.encode())]}
                  for name, k in (("static", STATIC), ("virtual", secret))}
        results: dict[str, list[float]] = {"static": [], "virtual": []}
        for r in range(args.rounds):
            for name in (("static", "virtual") if r % 2 == 0 else ("virtual", "static")):
                scope = scopes[name]
                start = time.perf_counter()
                for _ in range(args.calls):
                    auth(scope)
                results[name].append(1e6 * (time.perf_counter() - start) / args.calls)
        s, v = statistics.median(results["static"]), statistics.median(results["virtual"])
        print(f"static key (1 key):          {s:.3f} us per request")
        print(f"virtual key (of {args.keys:,}):   {v:.3f} us per request  (+{v - s:.3f} us)")
        registry.close()


if __name__ == "__main__":
    main()
