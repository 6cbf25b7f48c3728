"""Paired comparison of two routers on the same two-model items, from their ``tierroute eval --decisions`` files.

    python bench/compare_decisions.py --data ../shared/data/outcomes/routellm-gsm8k.jsonl base.jsonl new.jsonl

Prints APGR, CPT(50%) and CPT(80%) of each router, and the difference (second - first) with a 95% interval from a
paired bootstrap over items (the same resampled items score both routers), so a difference can be told from noise.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from tierroute.evaluation.data import load_outcomes
from tierroute.evaluation.metrics import two_model_report
from tierroute.evaluation.uncertainty import resample_rows

FIGURES = ("apgr", "cpt50", "cpt80")


def _scores(path: str, ids: list[str]) -> np.ndarray:
    with open(path, encoding="utf-8") as f:
        by_id = {row["id"]: float(row["router_score"]) for row in map(json.loads, f)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        sys.exit(f"{path}: no decision for {len(missing)} item(s), first {missing[0]!r}")
    return np.array([by_id[i] for i in ids])


def _figures(score: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    rep = two_model_report(score, strong, weak)
    return np.array([rep.apgr, rep.cpt50, rep.cpt80])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, action="append",
                        help="an outcome file both routers were scored on (repeatable)")
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    data = load_outcomes(args.data)
    if len(data.models) != 2:
        sys.exit(f"two-model data only; this data has {len(data.models)} models")
    strong = int(np.argmax(data.scores.mean(axis=0)))
    s, w = data.scores[:, strong], data.scores[:, 1 - strong]
    ids = [it.id for it in data.items]
    a, b = _scores(args.first, ids), _scores(args.second, ids)
    fa, fb = _figures(a, s, w), _figures(b, s, w)
    diffs = []
    for pick in resample_rows(len(ids), args.resamples):
        diffs.append(_figures(b[pick], s[pick], w[pick]) - _figures(a[pick], s[pick], w[pick]))
    lo, hi = np.percentile(np.array(diffs), [2.5, 97.5], axis=0)
    print(f"{len(ids)} items, {args.resamples} paired resamples")
    for k, name in enumerate(FIGURES):
        print(f"{name:6s} first {fa[k]:.4f}  second {fb[k]:.4f}  second - first {fb[k] - fa[k]:+.4f} "
              f"(95%: {lo[k]:+.4f} .. {hi[k]:+.4f})")


if __name__ == "__main__":
    main()
