"""The quality guard on recorded outcomes: how fast it catches a degradation, how often it cries wolf, what
evaluation costs, and what the guard buys.

Traffic is MMLU (RouteLLM's recorded outcomes: GPT-4-1106 and Mixtral-8x7B each scored 0/1 per prompt),
replayed as requests drawn at random; every request is routed to the cheap model (Mixtral), and the prompts
fall into ``--routes`` routes by subject (a stable hash). A share ``--rate`` of requests is sampled: the
reference (GPT-4) answers too, and a judge compares the pair. The judge's ground truth is the recorded scores
(the cheap answer right and the reference wrong: a win; the reverse: a loss; else a tie); with probability
``--noise`` the judge instead says something at random. The real ``QualityGuard`` (memory store) sees every
judgment. In the degraded runs, from the middle of the traffic the cheap model answers one route wrong with
probability ``--drop``.

Reported over ``--runs`` runs of each kind:
- judgments (on the degraded route, after the onset) until the guard moved it, and the requests that took;
- the false-alarm rate: runs without degradation in which a given route was flagged, and in which any was;
  and, the hardest case, runs in which the margin is set at a route's true (judged) mean;
- evaluation spend (reference + two judge calls per sample) as a share of the traffic's spend;
- quality (mean recorded score of the answers served) and cost, with the guard, without it, and all-GPT-4.

Prices (USD per million tokens, input/output): Mixtral 0.6/0.6, GPT-4-1106 10/30, the judge (gpt-4o-mini)
0.15/0.6; prompt tokens ~ characters / 4, answers 20 tokens (MMLU answers are a letter and a line), a judge's
prompt is the request plus both answers with ~150 tokens of instructions, its reply 10 tokens.

    python bench/bench_guard.py [--runs 200] [--rate 0.02] [--json]      (TIERROUTE_DATA_DIR: the data folder)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tierroute.evals.guard import DEGRADED, QualityGuard
from tierroute.evals.settings import QualityGuardSettings
from tierroute.evals.store import MemoryGuardStore

CHEAP, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
PRICES = {"cheap": (0.6, 0.6), "strong": (10.0, 30.0), "judge": (0.15, 0.6)}
ANSWER_TOKENS, JUDGE_INSTRUCTIONS, JUDGE_REPLY = 20, 150, 10


def usd(kind: str, prompt: np.ndarray | float, completion: float) -> np.ndarray | float:
    i, o = PRICES[kind]
    return (prompt * i + completion * o) / 1e6


def load(data_dir: Path, routes: int) -> dict[str, np.ndarray]:
    path = data_dir / "outcomes" / "routellm-mmlu.jsonl"
    cheap, strong, tokens, route = [], [], [], []
    with path.open("rb") as handle:
        for line in handle:
            item = json.loads(line)
            out = item["outcomes"]
            if CHEAP not in out or STRONG not in out:
                continue
            cheap.append(out[CHEAP]["score"])
            strong.append(out[STRONG]["score"])
            tokens.append(sum(len(m["content"]) for m in item["messages"]) / 4)
            digest = hashlib.blake2b(item["category"].encode(), digest_size=4).digest()
            route.append(int.from_bytes(digest, "big") % routes)
    return {"cheap": np.array(cheap), "strong": np.array(strong), "tokens": np.array(tokens),
            "route": np.array(route)}


def verdicts(cheap: np.ndarray, strong: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The judge's x (1 loss, 0 tie, -1 win for the cheap arm): the recorded scores, plus noise."""
    x = np.sign(strong - cheap).astype(int)
    noisy = rng.random(len(x)) < noise
    x[noisy] = rng.integers(-1, 2, noisy.sum())
    return x


async def one_run(data: dict[str, np.ndarray], args: argparse.Namespace, seed: int, degrade: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = args.requests
    items = rng.integers(0, len(data["cheap"]), n)
    route = data["route"][items]
    cheap = data["cheap"][items].copy()
    strong = data["strong"][items]
    onset = n // 2
    target = int(rng.integers(0, args.routes))
    if degrade:
        hit = (np.arange(n) >= onset) & (route == target) & (rng.random(n) < args.drop)
        cheap[hit] = 0.0
    sampled = np.flatnonzero(rng.random(n) < args.rate)
    x = verdicts(cheap[sampled], strong[sampled], args.noise, rng)
    guard = QualityGuard(QualityGuardSettings(action="shift", margin=args.margin, confidence=args.confidence,
                                              min_judgments=args.min_judgments), MemoryGuardStore())
    # Shifted intervals per route, in request indices: [start, end).
    shifted: dict[int, list[list[int]]] = {r: [] for r in range(args.routes)}
    judged_after_onset = {r: 0 for r in range(args.routes)}
    detected_after: int | None = None
    detected_at: int | None = None
    for i, xi in zip(sampled, x):
        r = int(route[i])
        if i >= onset:
            judged_after_onset[r] += 1
        transition = await guard.observe(f"route{r}", int(xi), "strong", now=float(i))
        if transition is None:
            continue
        if transition.phase == DEGRADED:
            shifted[r].append([int(i) + 1, n])
            if degrade and r == target and i >= onset and detected_after is None:
                detected_after, detected_at = judged_after_onset[r], int(i) - onset
        else:
            shifted[r][-1][1] = int(i) + 1
    served_strong = np.zeros(n, dtype=bool)
    index = np.arange(n)
    for r, spans in shifted.items():
        for start, end in spans:
            served_strong |= (route == r) & (index >= start) & (index < end)
    tokens = data["tokens"][items]
    cost_cheap = usd("cheap", tokens, ANSWER_TOKENS)
    cost_strong = usd("strong", tokens, ANSWER_TOKENS)
    traffic_with = np.where(served_strong, cost_strong, cost_cheap).sum()
    judge_prompt = tokens[sampled] + 2 * ANSWER_TOKENS + JUDGE_INSTRUCTIONS
    # A sample on a shifted route replays the cheap model instead of the reference.
    shadow = np.where(served_strong[sampled], cost_cheap[sampled], cost_strong[sampled])
    evaluation = shadow.sum() + 2 * usd("judge", judge_prompt, JUDGE_REPLY).sum()
    return {
        "flagged": [r for r, spans in shifted.items() if spans],
        "target": target,
        "detected_after_judgments": detected_after,
        "detected_after_requests": detected_at,
        "quality_with": float(np.where(served_strong, strong, cheap).mean()),
        "quality_without": float(cheap.mean()),
        "quality_strong": float(strong.mean()),
        "cost_with": float(traffic_with), "cost_without": float(cost_cheap.sum()),
        "cost_strong": float(cost_strong.sum()),
        "eval_cost": float(evaluation),
        "judgments": len(sampled),
    }


def natural_gaps(data: dict[str, np.ndarray], routes: int) -> list[float]:
    """Each route's true mean of loss - win without degradation (and without judge noise)."""
    x = np.sign(data["strong"] - data["cheap"])
    return [float(x[data["route"] == r].mean()) for r in range(routes)]


def summarize(clean: list[dict[str, Any]], degraded: list[dict[str, Any]], args: argparse.Namespace,
              gaps: list[float]) -> dict[str, Any]:
    def q(values: list[float], p: float) -> float:
        return float(np.quantile(values, p)) if values else float("nan")

    detected = [r["detected_after_judgments"] for r in degraded if r["detected_after_judgments"] is not None]
    requests = [r["detected_after_requests"] for r in degraded if r["detected_after_requests"] is not None]
    per_route = [r in run["flagged"] for run in clean for r in range(args.routes)]
    mean = lambda rows, key: statistics.fmean(r[key] for r in rows)  # noqa: E731
    return {
        "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "routes_true_gap": gaps,
        "degraded_runs_detected": f"{len(detected)}/{len(degraded)}",
        "judgments_to_detect": {"median": q(detected, 0.5), "p90": q(detected, 0.9), "max": max(detected, default=None)},
        "requests_to_detect": {"median": q(requests, 0.5), "p90": q(requests, 0.9)},
        "false_alarm_rate_per_route": float(np.mean(per_route)),
        "false_alarm_rate_any_route": float(np.mean([bool(run["flagged"]) for run in clean])),
        "eval_spend_share_of_traffic": mean(clean, "eval_cost") / mean(clean, "cost_without"),
        "eval_spend_share_of_all_strong": mean(clean, "eval_cost") / mean(clean, "cost_strong"),
        "degraded": {"quality_without_guard": mean(degraded, "quality_without"),
                     "quality_with_guard": mean(degraded, "quality_with"),
                     "quality_all_strong": mean(degraded, "quality_strong"),
                     "cost_without_guard": mean(degraded, "cost_without"),
                     "cost_with_guard": mean(degraded, "cost_with"),
                     "cost_all_strong": mean(degraded, "cost_strong")},
        "clean": {"quality_without_guard": mean(clean, "quality_without"),
                  "quality_with_guard": mean(clean, "quality_with"),
                  "cost_without_guard": mean(clean, "cost_without"), "cost_with_guard": mean(clean, "cost_with")},
    }


def report(s: dict[str, Any]) -> str:
    a = s["settings"]
    d, c = s["degraded"], s["clean"]
    jd, rd = s["judgments_to_detect"], s["requests_to_detect"]
    return "\n".join([
        f"traffic: {a['requests']} requests per run, {a['routes']} routes, sampled {a['rate']:.1%}, judge noise "
        f"{a['noise']:.0%}; guard margin {a['margin']}, confidence {a['confidence']}, min_judgments "
        f"{a['min_judgments']}; {a['runs']} runs with and {a['runs']} without degradation (drop {a['drop']:.0%})",
        "routes' true mean(loss - win): " + ", ".join(f"{g:+.3f}" for g in s["routes_true_gap"]),
        f"detected: {s['degraded_runs_detected']} degraded runs; judgments on the route after the onset: median "
        f"{jd['median']:.0f}, p90 {jd['p90']:.0f}, max {jd['max']}; requests after the onset: median "
        f"{rd['median']:.0f}, p90 {rd['p90']:.0f}",
        f"false alarms without degradation: {s['false_alarm_rate_per_route']:.2%} per route, "
        f"{s['false_alarm_rate_any_route']:.2%} of runs on any route (level {1 - a['confidence']:.0%} per route)",
        f"false alarms at the edge (route{s['false_alarm_at_the_margin']['route']}'s judged mean "
        f"{s['false_alarm_at_the_margin']['margin']:+.3f} = the margin): {s['false_alarm_at_the_margin']['rate']:.2%} "
        f"of runs",
        f"evaluation spend: {s['eval_spend_share_of_traffic']:.1%} of the (cheap) traffic's spend, "
        f"{s['eval_spend_share_of_all_strong']:.2%} of what all-GPT-4 would cost",
        f"degraded runs: quality {d['quality_without_guard']:.4f} without the guard, {d['quality_with_guard']:.4f} "
        f"with it ({d['quality_all_strong']:.4f} all-GPT-4); traffic cost ${d['cost_without_guard']:.2f} without, "
        f"${d['cost_with_guard']:.2f} with (${d['cost_all_strong']:.2f} all-GPT-4)",
        f"clean runs: quality {c['quality_without_guard']:.4f} without, {c['quality_with_guard']:.4f} with; cost "
        f"${c['cost_without_guard']:.2f} without, ${c['cost_with_guard']:.2f} with",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs with, and runs without, degradation")
    parser.add_argument("--requests", type=int, default=100_000, help="requests per run")
    parser.add_argument("--routes", type=int, default=4, help="routes (subjects hashed into this many)")
    parser.add_argument("--rate", type=float, default=0.02, help="evals.sample_rate")
    parser.add_argument("--noise", type=float, default=0.1, help="chance the judge says something at random")
    parser.add_argument("--drop", type=float, default=0.8, help="share of the degraded route the cheap model "
                                                                "gets wrong after the onset")
    parser.add_argument("--margin", type=float, default=0.25, help="evals.guard.margin")
    parser.add_argument("--confidence", type=float, default=0.95, help="evals.guard.confidence")
    parser.add_argument("--min-judgments", type=int, default=10, help="evals.guard.min_judgments")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    logging.getLogger("tierroute.evals").setLevel(logging.ERROR)  # the guard logs each decision it makes
    data_dir = Path(os.environ.get("TIERROUTE_DATA_DIR", "data"))
    started = time.perf_counter()
    data = load(data_dir, args.routes)
    gaps = natural_gaps(data, args.routes)

    async def all_runs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        clean = [await one_run(data, args, args.seed * 100_000 + i, degrade=False) for i in range(args.runs)]
        degraded = [await one_run(data, args, args.seed * 100_000 + 50_000 + i, degrade=True) for i in range(args.runs)]
        return clean, degraded

    clean, degraded = asyncio.run(all_runs())
    summary = summarize(clean, degraded, args, gaps)
    # The hardest case for false alarms: a route whose true mean(loss - win), as the noisy judge sees it, sits
    # exactly at the margin (the edge of "holds"). Set the margin there and count how often it is flagged.
    worst = int(np.argmax(gaps))
    edge = argparse.Namespace(**{**vars(args), "margin": round(gaps[worst] * (1 - args.noise), 4)})

    async def edge_runs() -> list[dict[str, Any]]:
        return [await one_run(data, edge, args.seed * 100_000 + 90_000 + i, degrade=False) for i in range(args.runs)]

    flagged = [worst in run["flagged"] for run in asyncio.run(edge_runs())]
    summary["false_alarm_at_the_margin"] = {"route": worst, "margin": edge.margin, "rate": float(np.mean(flagged))}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, indent=2) if args.json else report(summary) + f"\n({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
