"""Routing-decision latency: featurize + decide, p50/p99, short and 2,000-token prompts, and the mean over the
gateway benchmark's mix of 512 prompts (``bench_gateway.prompt_mix``: what a gateway decides on).

Compares the trivial CheapestPolicy with the learned policy (untrained default, and a trained artifact if
``--router`` is given, repeatable, with and without the compiled kernels when they are built). Run: ``python bench/bench_routing.py [--router ROUTER.npz ...] [--n 2000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gateway import prompt_mix  # noqa: E402

from tierroute.policies.artifact import load_artifact  # noqa: E402
from tierroute.policies.cheapest import CheapestPolicy  # noqa: E402
from tierroute.policies.kernels import ENV_SWITCH, load_kernels  # noqa: E402
from tierroute.policies.learned import build_learned_policy  # noqa: E402
from tierroute.types import ModelSpec, RequestFeatures, StateSnapshot  # noqa: E402

CANDIDATES = [
    ModelSpec("gpt-4-1106-preview", "openai", "gpt-4-1106-preview", 128000, 4096, 10.0, 30.0, quality=0.9),
    ModelSpec("mixtral", "together", "mixtral", 32768, 4096, 0.6, 0.6, quality=0.7),
    ModelSpec("gpt-5-mini", "openai", "gpt-5-mini", 400000, 128000, 0.25, 2.0, quality=0.86),
]
# A discovered local model: free, with an estimated prior, so the untrained router runs its easy-prompt check.
WITH_LOCAL = [*CANDIDATES, ModelSpec("ollama/llama3.2:1b", "ollama", "llama3.2:1b", 131072, 131072, 0.0, 0.0,
                                     quality=0.40, quality_estimated=True)]
SHORT = "Which of the following best explains why magnets stick to a refrigerator door?"
# ~8,000 characters, no blank lines: the worst case for the featurizer (the whole text is read).
LONG = " ".join(f"Step {i}: consider the value x_{i} = {i * 37 % 101} and the function f(x) = x^2 + {i}x." for i in range(150))[:8000]


def measure(policy: object, text: str, n: int, candidates: list[ModelSpec] = CANDIDATES) -> tuple[float, float]:
    features = RequestFeatures("auto", len(text) // 4, 512, text)
    state = StateSnapshot()
    for _ in range(50):
        policy.decide(features, candidates, state)  # type: ignore[attr-defined]
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        policy.decide(features, candidates, state)  # type: ignore[attr-defined]
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e6), float(np.percentile(times, 99) * 1e6)


def measure_mix(policy: object, texts: list[str], rounds: int = 7) -> float:
    """Mean microseconds per decision over ``texts`` (best of ``rounds`` passes), each text its own request."""
    features = [RequestFeatures("auto", len(text) // 4, 512, text) for text in texts]
    state = StateSnapshot()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for f in features:
            policy.decide(f, CANDIDATES, state)  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - start)
    return best / len(features) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--router", action="append", default=[],
                        help="trained router .npz (repeatable; model names mapped onto the bench candidates)")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    policies: list[tuple[str, object]] = [("cheapest", CheapestPolicy())]
    routers: list[tuple[str | None, dict[str, str], int]] = [(None, {}, 0)]  # (artifact, model_map, its models)
    for path in args.router:
        names = load_artifact(path).models
        routers.append((path, {name: "mixtral" for name in names if "mixtral-8x7b" in name.lower()}, len(names)))
    for path, mapping, trained_on in routers:
        for native in ((True, False) if load_kernels() is not None else (False,)):
            # Policies read the switch when they are built: the same router with and without the compiled kernels.
            os.environ[ENV_SWITCH] = "1" if native else "0"
            options = {"artifact": path, "model_map": mapping} if path else {}
            policy = build_learned_policy(options, CANDIDATES)
            os.environ.pop(ENV_SWITCH)
            how = "compiled" if native else "numpy"
            if policy.predictor is None:
                policies.append((f"learned (default, untrained, {how})", policy))
            else:
                policies.append((f"trained ({policy.predictor.kind}, {trained_on} models ({len(policy.predictor.models)} "
                                 f"predicted), 2^{policy.featurizer.bits}, {how})", policy))
    mix = [body["messages"][-1]["content"] for body in prompt_mix()]
    print(f"{'policy':58s} {'prompt':>16s} {'p50 us':>8s} {'p99 us':>8s} {'mix mean us':>12s}")
    for name, policy in policies:
        for label, text in (("short (20 tok)", SHORT), (f"long ({len(LONG) // 4} tok)", LONG)):
            p50, p99 = measure(policy, text, args.n)
            print(f"{name:58s} {label:>16s} {p50:8.0f} {p99:8.0f}")
        print(f"{name:58s} {'mix of ' + str(len(mix)):>16s} {'':>8s} {'':>8s} {measure_mix(policy, mix):12.1f}")
    untrained = next(policy for name, policy in policies if name.startswith("learned (default"))
    for label, text in (("hi (1 tok)", "hi"), ("short (20 tok)", SHORT), (f"long ({len(LONG) // 4} tok)", LONG)):
        p50, p99 = measure(untrained, text, args.n, WITH_LOCAL)
        print(f"{'learned (default) + a local model (estimated prior)':58s} {label:>16s} {p50:8.0f} {p99:8.0f}")


if __name__ == "__main__":
    main()
