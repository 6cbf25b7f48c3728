"""How long `tierroute train` takes, in-process and on worker processes, and whether the routers are identical.

    python bench/bench_training.py --data ../shared/data/outcomes/routellm-mmlu.jsonl
    python bench/bench_training.py --data ../shared/data/outcomes/routellm-mmlu.jsonl --many-models 11

Trains the full pipeline (`train_router`, the defaults of `tierroute train`) once per `--jobs` value, one after
another in this process, and prints wall and CPU seconds for each and whether every predictor array equals the
first run's.

`--many-models K` replaces the scores with K simulated models, to time the shape of RouterBench's larger files
(14,000 prompts x 11 models) from the one 14,000-prompt file we have: each item gets a latent difficulty from
its two recorded scores plus noise, and model j answers it with probability sigmoid(ability_j - difficulty),
abilities spread over [0, 2.5], priced per prompt token (characters / 4) from 0.2 to 30 (x 1e-6). The prompts,
categories and folds are the file's own, so featurising and the auxiliary targets cost what they would on real
data. The routing quality of such a file means nothing; only the time does.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from joblib.externals.loky import get_reusable_executor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tierroute.evaluation.data import OutcomeSet, load_outcomes, to_outcome_set  # noqa: E402
from tierroute.evaluation.train import train_router  # noqa: E402


def many_models(data: OutcomeSet, k: int, seed: int = 0) -> OutcomeSet:
    """``data``'s prompts with ``k`` simulated models (see the module docstring)."""
    rng = np.random.default_rng(seed)
    recorded = np.nan_to_num(data.scores).mean(axis=1)
    difficulty = rng.normal(size=len(data)) - 3.0 * (recorded - 0.5)
    ability = np.linspace(2.5, 0.0, k)
    price = np.geomspace(30e-6, 0.2e-6, k)
    right = rng.random((len(data), k)) < 1 / (1 + np.exp(-(ability - difficulty[:, None])))
    items = []
    for i, item in enumerate(data.items):
        chars = sum(len(str(m.get("content", ""))) for m in item.messages)
        names = [f"model-{j}" for j in range(k)]
        items.append(replace(item, scores={n: float(right[i, j]) for j, n in enumerate(names)},
                             costs={n: float(price[j] * chars / 4) for j, n in enumerate(names)}, response_chars={}))
    return to_outcome_set(items)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, nargs="+")
    parser.add_argument("--many-models", type=int, default=0, help="simulate this many models (see above)")
    parser.add_argument("--jobs", type=int, action="append", help="worker processes; repeatable [1 and 2]")
    args = parser.parse_args()
    data = load_outcomes(args.data)
    if args.many_models:
        data = many_models(data, args.many_models)
    print(f"{len(data)} items x {len(data.models)} models")
    first = None
    for jobs in args.jobs or [1, 2]:
        wall, cpu = time.perf_counter(), cpu_seconds()
        artifact, report = train_router(data, jobs=jobs)
        get_reusable_executor().shutdown(wait=True)  # workers exit, so their CPU time is counted
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        arrays = artifact.predictor.to_arrays()[1]
        first = first or arrays
        same = first.keys() == arrays.keys() and all(np.array_equal(first[n], arrays[n]) for n in first)
        print(f"jobs {jobs}: {wall:6.1f} s wall, {cpu:6.1f} s CPU (with workers'), {report.weighting} C={report.c:g}, "
              f"arrays identical to the first run: {same}")


if __name__ == "__main__":
    main()
