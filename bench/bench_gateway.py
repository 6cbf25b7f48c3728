"""How much does the gateway add? nginx as a trivial upstream, wrk as the load, direct vs through tierroute.

One run starts nginx (a canned chat.completion), starts ``tierroute serve`` in front of it (one worker, the
``--policy`` given, ``cheapest`` unless told, the SQLite ledger on), and then alternates short wrk rounds:

    direct c=1, gateway c=1, direct c=50, gateway c=50     (x --rounds)

(with a baseline, it follows the gateway in even rounds and precedes it in odd ones).

It reports medians over rounds: p50/p99 latency at concurrency 1, requests per second at concurrency 50,
the added p50 (paired per round), and the gateway's own ``x-tierroute-overhead-ms`` median.

With two or more CPUs the gateway is pinned to the first and nginx + wrk to the second, so the load
generator never steals the gateway's core. Installs nginx and wrk from Debian's packages when missing.

    python bench/bench_gateway.py [--duration 5] [--rounds 5] [--json] [--baseline SRC_DIR]

Every request carries a different prompt: a fixed, seeded mix of 512 bodies (short chat turns, questions with
numbers, few-shot tasks, documents of up to ~3,000 tokens; some with a system prompt or earlier turns), cycled
through by wrk, so a per-prompt cache could not flatter either side. ``--prompts FILE.jsonl`` sends the
``messages`` of an outcome data file instead.

``--baseline`` also starts a second gateway from another copy of the sources (say a git worktree of an
older commit: ``git worktree add /tmp/base HEAD~1`` then ``--baseline /tmp/base/src``) and measures it in
the same rounds, so a change is judged side by side on a noisy machine rather than across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NGINX_TEMPLATE = HERE / "nginx.conf.template"

TARGET_ADDED_P50_MS = 0.5
TARGET_RPS_C50 = 3000.0
HIGH_CONCURRENCY = 50
OVERHEAD_SAMPLES = 1000

PROMPT_MIX_SIZE = 512
PROMPT_MIX_SEED = 20261128
CANNED_COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-small",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23},
}

# The Lua script gives wrk its POST body and prints one machine-readable line at the end.
WRK_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}local bodies = {{}}
for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end
local next_body = 0

request = function()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, \\"mean_us\\": %.1f, " ..
    "\\"socket_errors\\": %d, \\"non2xx\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""

TIERROUTE_CONFIG = """\
providers:
  bench:
    kind: openai
    api_base: http://127.0.0.1:{upstream_port}/v1
    api_key: sk-upstream
models:
  - {{id: bench-big, provider: bench, upstream: bench-big, context_window: 200000, max_output_tokens: 8192,
      input_price: 10.0, output_price: 30.0, tier: reasoning, quality: 0.95, capabilities: [tools, vision, json]}}
  - {{id: bench-mid, provider: bench, upstream: bench-mid, context_window: 32000, max_output_tokens: 4096,
      input_price: 1.0, output_price: 2.0, tier: general, quality: 0.8, capabilities: [tools, json]}}
  - {{id: bench-small, provider: bench, upstream: bench-small, context_window: 4000, max_output_tokens: 1024,
      input_price: 0.1, output_price: 0.2, tier: general, quality: 0.6, capabilities: [json]}}
tiers:
  - {{name: reasoning}}
  - {{name: general}}
server:
  host: 127.0.0.1
  port: {gateway_port}
ledger:
  backend: sqlite
  path: {ledger_path}
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    target: str
    connections: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    cpu_us_per_request: float | None = None  # the server's own CPU time (all threads): robust to a noisy machine


# -- the requests -----------------------------------------------------------------------------------
_WORDS = (
    "the of and to in is that for it as with was on be by this are from at or have an they which one you had "
    "not but what all were when we there can more if out so up said about into than them could time only new "
    "some would other how then its our two first also after any most over see way well should because each "
    "people water number system data value function model table report customer order price account policy "
    "energy market team design service network image question answer problem reason example result change "
    "between before under while where explain describe compare summarise calculate translate write list "
    "which why short simple careful total average percent interest rate speed distance hours minutes weekly"
).split()
_ASKS = ("Explain {t} in simple terms.", "Write a short email about {t}.", "What is the difference between {t}?",
         "Summarise this: {t}", "Translate into French: {t}", "Fix the grammar: {t}", "Give three ideas for {t}.")


def _sentence(rng: Any, lo: int = 6, hi: int = 18, numbers: bool = False) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))]
    if numbers:
        for _ in range(rng.randint(1, 3)):
            words[rng.randrange(len(words))] = rng.choice([str(rng.randint(2, 999)), f"{rng.uniform(1, 99):.2f}",
                                                           f"${rng.randint(5, 500)}", f"{rng.randint(5, 95)}%"])
    return " ".join(words).capitalize() + "."


def _text(rng: Any, chars: int, numbers: bool) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        out.append(_sentence(rng, numbers=numbers and rng.random() < 0.6))
        size += len(out[-1]) + 1
    return " ".join(out)


def _prompt(rng: Any) -> str:
    """One routing text; kinds and lengths weighted roughly like chat-assistant traffic."""
    kind = rng.random()
    if kind < 0.35:  # a short chat turn, 15-150 characters
        return rng.choice(_ASKS).format(t=" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 12))))
    if kind < 0.70:  # a question, 150-1,000 characters, often with numbers
        body = _text(rng, rng.randint(120, 900), numbers=rng.random() < 0.6)
        return body + " " + _sentence(rng, 5, 12, numbers=True)[:-1] + "?"
    if kind < 0.90:  # a few-shot task: worked examples separated by blank lines, 1,000-4,000 characters
        shots = [f"Q: {_text(rng, rng.randint(100, 500), True)}\nA: {_sentence(rng, numbers=True)}"
                 for _ in range(rng.randint(2, 6))]
        return "\n\n".join([*shots, f"Q: {_text(rng, rng.randint(100, 400), True)}\nA:"])
    doc = "\n\n".join(_text(rng, rng.randint(300, 900), rng.random() < 0.3) for _ in range(rng.randint(4, 12)))
    if rng.random() < 0.3:  # some carry code
        doc += "\n```python\n" + "\n".join(f"def f{i}(x):\n    return x * {i} + {{'k': {i}}}['k']" for i in range(12)) + "\n```"
    return f"{rng.choice(_ASKS).format(t='the document below')}\n\n{doc}"  # 1,000-3,000 tokens


def prompt_mix(n: int = PROMPT_MIX_SIZE, seed: int = PROMPT_MIX_SEED) -> list[dict[str, Any]]:
    """``n`` distinct request bodies, the same for every run and both gateways (seeded)."""
    import random

    rng = random.Random(seed)
    bodies = []
    for _ in range(n):
        messages: list[dict[str, str]] = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": _text(rng, rng.randint(100, 600), False)})
        if rng.random() < 0.15:
            messages += [{"role": "user", "content": _prompt(rng)}, {"role": "assistant", "content": _text(rng, 300, False)}]
        messages.append({"role": "user", "content": _prompt(rng)})
        bodies.append({"model": "auto", "messages": messages})
    return bodies


def outcome_bodies(path: Path, n: int = PROMPT_MIX_SIZE) -> list[dict[str, Any]]:
    """The first ``n`` items' ``messages`` of an outcome data file (JSON lines), as request bodies."""
    bodies = []
    with path.open() as lines:
        for line in lines:
            bodies.append({"model": "auto", "messages": json.loads(line)["messages"]})
            if len(bodies) == n:
                break
    if not bodies:
        sys.exit(f"{path}: no items")
    return bodies


# -- setup ------------------------------------------------------------------------------------------
def ensure_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: install them (apt-get install -y nginx wrk) or run as root")
    print(f"installing {' '.join(missing)} from Debian's packages ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx", "wrk"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_plan() -> tuple[set[int] | None, set[int] | None]:
    """(gateway cpus, load-generator + upstream cpus); (None, None) when there is one CPU only."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:2])


def pinned(cpus: set[int] | None) -> Any:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cpus": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "wrk": _version(["wrk", "-v"]), "nginx": _version(["nginx", "-v"])}


def _version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


class Processes:
    """Every child this benchmark starts, each in its own session so its whole group can be ended."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: Sequence[str], *, cpus: set[int] | None, log: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=pinned(cpus), env=env)
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._procs.clear()


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.05)
    sys.exit(f"{url} did not answer within {timeout_seconds} s:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def servers(tmp: Path, gateway_cpus: set[int] | None, load_cpus: set[int] | None,
            baseline_src: Path | None = None, policy: str = "cheapest", baseline_policy: str | None = None,
            policy_options: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
            baseline_extra: dict[str, Any] | None = None,
            virtual_keys: int = 0) -> Iterator[tuple[int, int, dict[str, tuple[int, int]]]]:
    """Start nginx and the gateway (and a baseline gateway).

    Yields (upstream port, nginx worker pid, {name: (gateway port, gateway pid)})."""
    procs = Processes()
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        upstream_port = free_port()
        body = json.dumps(CANNED_COMPLETION, separators=(",", ":"))
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_TEMPLATE.read_text().format(tmp=tmp, port=upstream_port, body=body))
        nginx_log = tmp / "nginx.out"
        nginx = procs.start(["nginx", "-p", str(tmp), "-c", str(conf)], cpus=load_cpus, log=nginx_log)
        wait_for(f"http://127.0.0.1:{upstream_port}/v1/chat/completions", nginx, nginx_log)

        # router.options go with --policy only: the baseline's policy may not accept them.
        gateways: dict[str, tuple[Path | None, str, dict[str, Any] | None]] = {"gateway": (None, policy, policy_options)}
        extras = {"gateway": extra, "baseline": baseline_extra}
        if baseline_src is not None or baseline_policy is not None or baseline_extra is not None or virtual_keys:
            same = baseline_policy is None or baseline_policy == policy
            gateways["baseline"] = (baseline_src, baseline_policy or policy, policy_options if same else None)
        ports: dict[str, tuple[int, int]] = {}
        for name, (src, gateway_policy, options) in gateways.items():
            port = free_port()
            config = tmp / f"{name}.yaml"
            config.write_text(TIERROUTE_CONFIG.format(upstream_port=upstream_port, gateway_port=port,
                                                      ledger_path=tmp / f"{name}-ledger.db")
                              + f"router:\n  policy: {gateway_policy}\n"
                              + (f"  options: {json.dumps(options)}\n" if options else "")
                              + (key_settings(tmp, name, virtual_keys) if virtual_keys else ""))
            if virtual_keys:
                config.write_text(config.read_text().replace("server:\n", f"server:\n  api_keys: [{STATIC_KEY}]\n", 1))
            if extras[name]:
                config.write_text(merged_config(config.read_text(), extras[name], upstream_port))
            env = {**os.environ, "PYTHONPATH": str(src)} if src else None
            log = tmp / f"{name}.out"
            cmd = [sys.executable, "-c", "from tierroute.cli import main; main()", "serve", "--config", str(config)]
            proc = procs.start(cmd, cpus=gateway_cpus, log=log, env=env)
            wait_for(f"http://127.0.0.1:{port}/health", proc, log)
            ports[name] = (port, proc.pid)
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(nginx.pid)], capture_output=True,
                                                   text=True).stdout.split()]
        yield upstream_port, (workers[0] if workers else nginx.pid), ports
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)


def merged_config(text: str, extra: dict[str, Any], upstream_port: int) -> str:
    """The generated config with ``extra`` merged in (mappings merge, anything else replaces); the string
    UPSTREAM stands for nginx's URL, which answers any POST with 200 (e.g. an OTLP sink that costs nothing)."""
    import yaml

    def merge(base: Any, more: Any) -> Any:
        if isinstance(base, dict) and isinstance(more, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in more.items()}}
        if isinstance(more, str):
            return more.replace("UPSTREAM", f"http://127.0.0.1:{upstream_port}")
        return more

    return yaml.safe_dump(merge(yaml.safe_load(text), extra))


# -- measuring --------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, target: str, connections: int, duration: float, script: Path, cpus: set[int] | None,
            server_pid: int | None = None) -> WrkResult:
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pinned(cpus), timeout=duration + 60)
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else None
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if out.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line[len("BENCH "):])
    return WrkResult(target=target, connections=connections, requests=data["requests"],
                     rps=data["requests"] / (data["duration_us"] / 1e6), p50_ms=data["p50_us"] / 1000,
                     p99_ms=data["p99_us"] / 1000, mean_ms=data["mean_us"] / 1000,
                     errors=data["socket_errors"] + data["non2xx"],
                     cpu_us_per_request=cpu * 1e6 / data["requests"] if cpu is not None and data["requests"] else None)


STATIC_KEY = "bench-static-key-0123456789"


def key_settings(tmp: Path, name: str, n: int) -> str:
    """--virtual-keys: both gateways take the static key; "gateway" also N virtual keys (made in its ledger
    before it starts), and its load sends the last of them. Writes the key wrk sends to ``<name>.key`` and
    returns the config lines to append."""
    secret = STATIC_KEY
    extra = ""
    if name == "gateway":
        from tierroute.config import LedgerSettings
        from tierroute.keys.db import Database
        from tierroute.keys.settings import KeySpec
        from tierroute.keys.store import KeyStore

        store = KeyStore(Database(LedgerSettings(path=str(tmp / f"{name}-ledger.db"))))
        for i in range(n):
            _, secret = store.create(KeySpec(name=f"bench-{i}"), actor="bench")
        store.db.close()
        extra = "keys: {enabled: true}\n"
    (tmp / f"{name}.key").write_text(secret)
    return extra


def overhead_samples(port: int, n: int, bodies: Sequence[dict[str, Any]], key: str | None = None) -> list[float]:
    """The gateway's own view: ``x-tierroute-overhead-ms`` over ``n`` sequential keep-alive requests."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    payloads = [json.dumps(body).encode() for body in bodies]
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    samples = []
    try:
        for i in range(n):
            conn.request("POST", "/v1/chat/completions", body=payloads[i % len(payloads)], headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                sys.exit(f"gateway answered {resp.status}")
            samples.append(float(resp.getheader("x-tierroute-overhead-ms", "nan")))
    finally:
        conn.close()
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def benchmark(duration: float, rounds: int, pin: bool, baseline_src: Path | None = None,
              policy: str = "cheapest", baseline_policy: str | None = None,
              policy_options: dict[str, Any] | None = None, prompts: Path | None = None,
              extra: dict[str, Any] | None = None, baseline_extra: dict[str, Any] | None = None,
              virtual_keys: int = 0) -> dict[str, Any]:
    ensure_tools()
    gateway_cpus, load_cpus = cpu_plan() if pin else (None, None)
    bodies = outcome_bodies(prompts) if prompts else prompt_mix()
    with tempfile.TemporaryDirectory(prefix="tierroute-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "bodies.jsonl").write_text("".join(json.dumps(b, separators=(",", ":")) + "\n" for b in bodies))
        script = tmp / "post.lua"
        script.write_text(WRK_LUA.format(bodies=tmp / "bodies.jsonl", auth=""))
        with servers(tmp, gateway_cpus, load_cpus, baseline_src, policy, baseline_policy, policy_options,
                     extra, baseline_extra, virtual_keys) as (upstream_port, nginx_pid, gateways):
            # With --virtual-keys each gateway's load sends its own key (a virtual one to "gateway").
            scripts = {"direct": script}
            keys = {name: (tmp / f"{name}.key").read_text() if virtual_keys else None for name in gateways}
            for name, key in keys.items():
                scripts[name] = tmp / f"{name}.lua"
                scripts[name].write_text(WRK_LUA.format(
                    bodies=tmp / "bodies.jsonl", auth=f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""))
            urls = {"direct": f"http://127.0.0.1:{upstream_port}/v1/chat/completions"}
            urls.update({name: f"http://127.0.0.1:{port}/v1/chat/completions" for name, (port, _) in gateways.items()})
            pids = {"direct": nginx_pid, **{name: pid for name, (_, pid) in gateways.items()}}
            # Warm up: connection pools, first-call imports, the ledger's first transactions.
            for name in gateways:
                run_wrk(urls[name], name, HIGH_CONCURRENCY, min(duration, 2.0), scripts[name], load_cpus)
            results: list[WrkResult] = []
            for r in range(rounds):
                # Odd rounds measure the gateways in reverse order, so a drift in the machine's load between the
                # two measurements of a pair favours neither side over a run.
                order = list(urls) if r % 2 == 0 else ["direct", *reversed([t for t in urls if t != "direct"])]
                for connections in (1, HIGH_CONCURRENCY):
                    for target in order:
                        res = run_wrk(urls[target], target, connections, duration, scripts[target], load_cpus,
                                      pids[target])
                        results.append(res)
                        print(f"round {r + 1}/{rounds}  {target:<8} c={connections:<3} {res.rps:9.0f} req/s  "
                              f"p50 {res.p50_ms:7.3f} ms  p99 {res.p99_ms:7.3f} ms  "
                              f"server CPU {res.cpu_us_per_request or 0:6.1f} us/req  errors {res.errors}", file=sys.stderr)
            overhead = overhead_samples(gateways["gateway"][0], OVERHEAD_SAMPLES, bodies, keys["gateway"])
    chars = sorted(sum(len(m["content"]) for m in b["messages"] if isinstance(m.get("content"), str)) for b in bodies)
    return summarize(results, overhead, duration=duration, rounds=rounds, pinned=gateway_cpus is not None,
                     prompts={"source": str(prompts) if prompts else f"mix (seed {PROMPT_MIX_SEED})",
                              "bodies": len(bodies), "chars_p10_p50_p90_max": [chars[len(chars) // 10], chars[len(chars) // 2],
                                                                               chars[9 * len(chars) // 10], chars[-1]]},
                     baseline=str(baseline_src) if baseline_src else None, policy=policy,
                     baseline_policy=baseline_policy, policy_options=policy_options,
                     config=extra, baseline_config=baseline_extra,
                     cpus={"gateway": sorted(gateway_cpus or ()), "nginx_and_wrk": sorted(load_cpus or ())})


def summarize(results: list[WrkResult], overhead: list[float], **run: Any) -> dict[str, Any]:
    def pick(target: str, connections: int) -> list[WrkResult]:
        return [r for r in results if r.target == target and r.connections == connections]

    def side(target: str) -> dict[str, Any]:
        """Medians for one target, plus (for a gateway) its cost against direct, paired round by round."""
        c1, c50 = pick(target, 1), pick(target, HIGH_CONCURRENCY)
        out: dict[str, Any] = {
            "rps_c50": median([r.rps for r in c50]), "p50_ms_c1": median([r.p50_ms for r in c1]),
            "p99_ms_c1": median([r.p99_ms for r in c1]), "rps_c1": median([r.rps for r in c1]),
            "p50_ms_c50": median([r.p50_ms for r in c50]), "p99_ms_c50": median([r.p99_ms for r in c50]),
            "cpu_us_per_request_c50": median([r.cpu_us_per_request or 0.0 for r in c50]),
        }
        if target != "direct":
            d1, d50 = pick("direct", 1), pick("direct", HIGH_CONCURRENCY)
            out["added_p50_ms_c1"] = median([g.p50_ms - d.p50_ms for d, g in zip(d1, c1)])
            out["added_p99_ms_c1"] = median([g.p99_ms - d.p99_ms for d, g in zip(d1, c1)])
            out["rps_c50_ratio_to_direct"] = median([g.rps / d.rps for d, g in zip(d50, c50)])
        return out

    targets = list(dict.fromkeys(r.target for r in results))
    summary: dict[str, Any] = {name: side(name) for name in targets}
    if "baseline" in summary:
        g1, b1 = pick("gateway", 1), pick("baseline", 1)
        g50, b50 = pick("gateway", HIGH_CONCURRENCY), pick("baseline", HIGH_CONCURRENCY)
        summary["gateway_vs_baseline"] = {
            "rps_c50_ratio": median([g.rps / b.rps for b, g in zip(b50, g50)]),
            "p50_ms_c1_difference": median([g.p50_ms - b.p50_ms for b, g in zip(b1, g1)]),
            "cpu_per_request_c50_ratio": median([(g.cpu_us_per_request or 0.0) / (b.cpu_us_per_request or 1.0)
                                                 for b, g in zip(b50, g50)]),
        }
    summary["overhead_header_ms"] = {"p50": median(overhead), "p99": sorted(overhead)[int(len(overhead) * 0.99) - 1],
                                     "samples": len(overhead)}
    summary["errors"] = sum(r.errors for r in results)
    gateway = summary["gateway"]
    summary["targets"] = {
        "added_p50_under_ms": TARGET_ADDED_P50_MS, "rps_c50_at_least": TARGET_RPS_C50,
        "added_p50_met": gateway["added_p50_ms_c1"] < TARGET_ADDED_P50_MS,
        "rps_c50_met": gateway["rps_c50"] >= TARGET_RPS_C50,
    }
    return {"run": run, "machine": machine(), "summary": summary, "rounds": [asdict(r) for r in results]}


def report(data: dict[str, Any]) -> str:
    s, run, m = data["summary"], data["run"], data["machine"]
    t, o = s["targets"], s["overhead_header_ms"]
    names = [n for n in ("direct", "gateway", "baseline") if n in s]
    titles = {"direct": "direct (nginx)", "gateway": "via gateway", "baseline": "via baseline"}
    pin = (f"gateway on CPU {run['cpus']['gateway']}, nginx + wrk on CPU {run['cpus']['nginx_and_wrk']}"
           if run["pinned"] else "not pinned")

    def row(label: str, key: str, fmt: str) -> str:
        return f"{label:<26}" + "".join(f"{format(s[n][key], fmt):>16}" for n in names)

    lines = [
        f"machine: {m['cpu']}, {m['cpus']} CPUs; Python {m['python']}; {m['nginx']}; {m['wrk']}",
        f"{run['rounds']} rounds x {run['duration']:g} s per measurement, alternating; medians; {pin}",
    ]
    if run.get("baseline"):
        lines.append(f"baseline: gateway from {run['baseline']}")
    if run.get("prompts"):
        p = run["prompts"]
        lines.append(f"prompts: {p['bodies']} distinct bodies, {p['source']}; message characters p10/p50/p90/max "
                     + "/".join(str(c) for c in p["chars_p10_p50_p90_max"]))
    lines.append(f"policy: gateway {run.get('policy', 'cheapest')}"
                 + (f" {json.dumps(run['policy_options'])}" if run.get("policy_options") else "")
                 + (f", baseline {run['baseline_policy']}" if run.get("baseline_policy") else ""))
    lines += [
        "",
        f"{'':<26}" + "".join(f"{titles[n]:>16}" for n in names),
        row(f"req/s at c={HIGH_CONCURRENCY}", "rps_c50", ".0f"),
        row("p50 at c=1 (ms)", "p50_ms_c1", ".3f"),
        row("p99 at c=1 (ms)", "p99_ms_c1", ".3f"),
        row("req/s at c=1", "rps_c1", ".0f"),
        row(f"p50 at c={HIGH_CONCURRENCY} (ms)", "p50_ms_c50", ".3f"),
        row(f"server CPU us/req, c={HIGH_CONCURRENCY}", "cpu_us_per_request_c50", ".1f"),
        "",
    ]
    for n in names[1:]:
        lines.append(f"{titles[n]}: added p50 at c=1 {s[n]['added_p50_ms_c1']:.3f} ms, added p99 "
                     f"{s[n]['added_p99_ms_c1']:.3f} ms; req/s at c={HIGH_CONCURRENCY} "
                     f"{s[n]['rps_c50_ratio_to_direct']:.3f} x direct")
    if "gateway_vs_baseline" in s:
        vs = s["gateway_vs_baseline"]
        lines.append(f"gateway vs baseline (paired per round): req/s at c={HIGH_CONCURRENCY} x{vs['rps_c50_ratio']:.3f}, "
                     f"p50 at c=1 {vs['p50_ms_c1_difference']:+.3f} ms, CPU per request x{vs['cpu_per_request_c50_ratio']:.3f}")
    lines += [
        f"gateway x-tierroute-overhead-ms over {o['samples']} sequential requests: p50 {o['p50']:.3f}, p99 {o['p99']:.3f}",
        f"errors: {s['errors']}",
        f"target added p50 < {t['added_p50_under_ms']} ms: {'met' if t['added_p50_met'] else 'MISSED'}; "
        f"target >= {t['rps_c50_at_least']:.0f} req/s at c={HIGH_CONCURRENCY}: {'met' if t['rps_c50_met'] else 'MISSED'}",
    ]
    return "\n".join(lines)


def _yaml_mapping(text: str) -> dict[str, Any]:
    import yaml

    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk measurement (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the gateway and the load to separate CPUs")
    parser.add_argument("--json", action="store_true", help="print the full results as JSON")
    parser.add_argument("--baseline", type=Path, default=None, metavar="SRC_DIR",
                        help="also measure a gateway run from the tierroute package under SRC_DIR, side by side")
    parser.add_argument("--policy", default="cheapest",
                        help="router.policy of the gateway(s) under test, e.g. learned (default cheapest)")
    parser.add_argument("--baseline-policy", default=None, metavar="POLICY",
                        help="also measure a gateway (these sources, or --baseline's) with this policy, side by side")
    parser.add_argument("--policy-options", type=json.loads, default=None, metavar="JSON",
                        help="router.options for --policy, e.g. '{\"artifact\": \"/tmp/g.npz\"}'")
    parser.add_argument("--prompts", type=Path, default=None, metavar="FILE.jsonl",
                        help="send the messages of an outcome data file (first 512 items) instead of the built-in mix")
    parser.add_argument("--virtual-keys", type=int, default=0, metavar="N",
                        help="the gateway holds N virtual keys and is sent one; the baseline (same sources and "
                             "policy) is sent its single static key")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat the whole benchmark with freshly started servers, then report the median of "
                             "the per-run gateway/baseline ratios (default 1): runs differ more than rounds do")
    parser.add_argument("--config", type=_yaml_mapping, default=None, metavar="YAML", dest="extra",
                        help="merged into the config of the gateway under test, e.g. "
                             "'{server: {access_log: json}, telemetry: {otlp_endpoint: UPSTREAM}}' (UPSTREAM: nginx)")
    parser.add_argument("--baseline-config", type=_yaml_mapping, default=None, metavar="YAML", dest="baseline_extra",
                        help="also measure a gateway with this merged into its config, side by side, e.g. "
                             "'{server: {access_log: off}}'")
    args = parser.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "tierroute" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline}: expected a directory holding tierroute/cli.py")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    runs = []
    for _ in range(args.runs):
        data = benchmark(args.duration, args.rounds, pin=not args.no_pin, baseline_src=args.baseline,
                         policy=args.policy, baseline_policy=args.baseline_policy, policy_options=args.policy_options,
                         prompts=args.prompts, extra=args.extra, baseline_extra=args.baseline_extra,
                         virtual_keys=args.virtual_keys)
        print(json.dumps(data, indent=2) if args.json else report(data), flush=True)
        runs.append(data["summary"].get("gateway_vs_baseline"))
    if args.runs > 1 and all(runs):
        rps = [r["rps_c50_ratio"] for r in runs]
        cpu = [r["cpu_per_request_c50_ratio"] for r in runs]
        print(f"over {args.runs} runs, gateway vs baseline: req/s at c=50 median x{median(rps):.3f} "
              f"(runs {', '.join(f'x{v:.3f}' for v in rps)}), CPU per request median x{median(cpu):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
