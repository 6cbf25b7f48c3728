"""How fast does ``tierroute batch`` push a file through, and does its memory stay flat with the file's size?

nginx answers every request with a canned chat.completion (as in bench_gateway.py, so lines per second here
compare with the gateway's requests per second there); ``tierroute batch`` runs as a real process with the
SQLite ledger on and the output fsync'd, pinned to its own core when there are two. Each size gets a fresh
input file of distinct prompts (the gateway benchmark's seeded prompt mix, cycled with a line number), and
the run reports lines per second and the process's peak resident memory (``ru_maxrss`` from ``wait4``).

    python bench/bench_batch.py [--sizes 10000,100000] [--concurrency 256] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_gateway import (CANNED_COMPLETION, NGINX_TEMPLATE, TIERROUTE_CONFIG, Processes, cpu_plan,  # noqa: E402
                           ensure_tools, free_port, machine, pinned, prompt_mix, wait_for)


def write_input(path: Path, n: int) -> None:
    import orjson

    mix = prompt_mix()
    with open(path, "wb", buffering=1 << 20) as f:
        for i in range(n):
            body = {**mix[i % len(mix)], "model": "auto", "max_tokens": 64}
            body["messages"] = [*body["messages"][:-1], {**body["messages"][-1],
                                                         "content": f"[{i}] {body['messages'][-1]['content']}"}]
            f.write(orjson.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                                  "body": body}) + b"\n")


def run_batch(tmp: Path, config: Path, n: int, concurrency: int, cpus: set[int] | None) -> dict[str, Any]:
    source, out = tmp / f"in-{n}.jsonl", tmp / f"out-{n}.jsonl"
    write_input(source, n)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tierroute", "batch", str(source), "--out", str(out), "--config",
                             str(config), "--concurrency", str(concurrency), "--progress", "none", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=pinned(cpus))
    stdout = proc.stdout.read()  # type: ignore[union-attr]
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"tierroute batch failed:\n{stderr.decode(errors='replace')[-3000:]}")
    summary = json.loads(stdout)
    lines = sum(1 for _ in open(out, "rb"))
    for path in (source, out):
        path.unlink()
    return {"lines": n, "output_lines": lines, "seconds": summary["seconds"], "wall_seconds": round(wall, 2),
            "lines_per_second": round(n / summary["seconds"], 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "failed": summary["failed"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    ensure_tools()
    batch_cpus, load_cpus = cpu_plan()
    procs = Processes()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as name:
        tmp = Path(name)
        try:
            port = free_port()
            conf = tmp / "nginx.conf"
            conf.write_text(NGINX_TEMPLATE.read_text().format(tmp=tmp, port=port,
                                                              body=json.dumps(CANNED_COMPLETION, separators=(",", ":"))))
            nginx = procs.start(["nginx", "-p", str(tmp), "-c", str(conf)], cpus=load_cpus, log=tmp / "nginx.out")
            wait_for(f"http://127.0.0.1:{port}/v1/chat/completions", nginx, tmp / "nginx.out")
            config = tmp / "tierroute.yaml"
            config.write_text(TIERROUTE_CONFIG.format(upstream_port=port, gateway_port=free_port(),
                                                      ledger_path=tmp / "ledger.db") + "router:\n  policy: cheapest\n")
            for n in (int(s) for s in args.sizes.split(",")):
                results.append(run_batch(tmp, config, n, args.concurrency, batch_cpus))
                if not args.json:
                    r = results[-1]
                    print(f"{r['lines']:>9} lines: {r['lines_per_second']:>8.1f} lines/s ({r['seconds']:.1f} s), "
                          f"peak RSS {r['peak_rss_mib']:.1f} MiB, {r['output_lines']} output lines, {r['failed']} failed",
                          flush=True)
        finally:
            procs.stop_all()
    if args.json:
        print(json.dumps({"machine": machine(), "concurrency": args.concurrency, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
