"""Per-request cost of the optional sentence encoder in the routing decision (docs/routing-quality.md).

Trains a small GSM8K router with and without the local MiniLM encoder (``--fast`` configuration; embeddings come
from the on-disk cache when present), then times, per request and one request at a time, what the gateway runs:
``await policy.prepare(features)`` (the embedding, on the encoder's worker thread) and ``policy.decide(...)``.
Needs the ``train`` and ``encoder`` extras. Run from the repo root::

    OMP_NUM_THREADS=2 python bench/bench_encoder.py [--runs 50] [--cache ~/.cache/tierroute/embeddings.sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tierroute.evaluation.data import load_outcomes
from tierroute.evaluation.encoder_options import DEFAULT_CACHE
from tierroute.evaluation.train import train_router
from tierroute.policies.artifact import save_artifact
from tierroute.policies.encoders import CachedEncoder
from tierroute.policies.encoders.local import LocalEncoder
from tierroute.policies.learned import build_learned_policy
from tierroute.types import ModelSpec, RequestFeatures, StateSnapshot

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "outcomes" / "routellm-gsm8k.jsonl"
STRONG = ModelSpec("strong", "p", "strong", 128000, 8192, 10.0, 30.0, quality=0.95)
WEAK = ModelSpec("weak", "p", "weak", 128000, 8192, 0.1, 0.3, quality=0.70)
MODEL_MAP = {"gpt-4-1106-preview": "strong", "mistralai/Mixtral-8x7B-Instruct-v0.1": "weak"}
SHORT = "Which of the following best explains why magnets stick to a refrigerator door?"
LONG = " ".join(f"Step {i}: consider the value x_{i} = {i * 37 % 101} and the function f(x) = x^2 + {i}x."
                for i in range(150))[:8000]  # as in bench_routing.py: ~2,000 tokens


def percentiles(seconds: list[float]) -> str:
    us = np.array(seconds) * 1e6
    fmt = (lambda v: f"{v / 1000:.1f} ms") if np.median(us) > 1000 else (lambda v: f"{v:.0f} us")
    return f"p50 {fmt(np.percentile(us, 50))} / p99 {fmt(np.percentile(us, 99))}"


async def time_policy(policy, text: str, runs: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    features = RequestFeatures("auto", len(text) // 4, 256, text)
    prepare, decide = [], []
    for i in range(runs + 3):
        t0 = time.perf_counter()
        ready = await policy.prepare(features) if policy.prepare is not None else features
        t1 = time.perf_counter()
        policy.decide(ready, [STRONG, WEAK], StateSnapshot())
        t2 = time.perf_counter()
        if i >= 3:  # warm-up
            prepare.append(t1 - t0)
            decide.append(t2 - t1)
    return prepare, decide


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--cache", default=str(DEFAULT_CACHE))
    args = ap.parse_args()
    data = load_outcomes([str(DATA)])
    fast = {"c_grid": (1.0,), "weightings": ("tf",), "second_stage": False}
    encoder = CachedEncoder(LocalEncoder(), args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        policies = {}
        for name, enc in (("n-grams only", None), ("n-grams + MiniLM", encoder)):
            artifact, _ = train_router(data, encoder=enc, **fast)  # type: ignore[arg-type]
            path = Path(tmp) / f"{len(policies)}.npz"
            save_artifact(artifact, path)
            policies[name] = build_learned_policy({"artifact": str(path), "model_map": MODEL_MAP}, [STRONG, WEAK])
        for label, text in (("short prompt", SHORT), ("2,000-token prompt", LONG)):
            for name, policy in policies.items():
                prepare, decide = asyncio.run(time_policy(policy, text, args.runs))
                total = [a + b for a, b in zip(prepare, decide)]
                print(f"{label:19s} {name:17s} encode {percentiles(prepare):28s} decide {percentiles(decide):24s} "
                      f"total {percentiles(total)}", flush=True)


if __name__ == "__main__":
    main()
