"""Experiment: which part of a multi-turn conversation should drive the routing decision?

The gateway routes on the last user turn (``chat_request.routing_text``) and the featurizer keeps the final
question block of it (``focus="last"``). The public outcome data is single-turn, so this script builds
multi-turn conversations from it: every item gets ``--turns`` earlier exchanges in front of its own prompt,
each a real question from another item of the same fold (so no text crosses a CV fold) followed by GPT-4's
recorded answer to it (GSM8K keeps responses). The outcome being predicted is unchanged: the item's own scores.

Variants of the routing text, each through the same 5-fold CV pipeline (``--fast``: tf, C=1, linear):
* ``last user turn, focus=last``: what the gateway does.
* ``last user turn, focus=all``: the newest turn read whole (its few-shot examples included, head and tail).
* ``whole conversation, focus=all``: every turn, read whole (head and tail).
Any text ending in the item's prompt gives the shipped row exactly under ``focus=last`` (the final question
block is the same), so "last two turns" or "whole conversation" with ``focus=last`` are not separate rows.

    python bench/experiment_conversation_focus.py --data gsm8k mmlu   # GSM8K ~30 s, MMLU ~4 min
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np

from tierroute.evaluation.data import OutcomeItem, OutcomeSet, data_dir, load_outcomes, to_outcome_set
from tierroute.evaluation.replay import cross_validate, report
from tierroute.evaluation.train import item_text
from tierroute.policies.featurizers import focus_text

FILES = {"gsm8k": "routellm-gsm8k.jsonl", "mmlu": "routellm-mmlu.jsonl"}
FAST = {"c_grid": (1.0,), "weightings": ("tf",), "second_stage": False}
STRONG = "gpt-4-1106-preview"


def _history_pool(source: OutcomeSet, path: Path) -> dict[int, list[tuple[str, str]]]:
    """Per fold, (question, GPT-4's recorded answer) pairs to use as earlier turns."""
    answers = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            answers[row["id"]] = row["outcomes"][STRONG]["response"]
    pool: dict[int, list[tuple[str, str]]] = {}
    for it in source.items:
        question = focus_text(item_text(it.messages), "last")
        pool.setdefault(it.fold if it.fold is not None else -1, []).append((question, answers[it.id]))
    return pool


def _conversations(data: OutcomeSet, pool: dict[int, list[tuple[str, str]]], turns: int,
                   seed: int) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    out = []
    for it in data.items:
        history: list[dict[str, str]] = []
        for question, answer in rng.sample(pool[it.fold if it.fold is not None else -1], turns):
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        out.append(history + [{"role": "user", "content": item_text(it.messages)}])
    return out


def _with_text(data: OutcomeSet, texts: list[str]) -> OutcomeSet:
    items: list[OutcomeItem] = [replace(it, messages=({"role": "user", "content": t},)) for it, t in zip(data.items, texts)]
    return to_outcome_set(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", choices=sorted(FILES), default=["gsm8k"])
    ap.add_argument("--turns", type=int, default=2, help="earlier exchanges put in front of each prompt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = data_dir() / "outcomes"
    gsm8k = load_outcomes([root / FILES["gsm8k"]])
    pool = _history_pool(gsm8k, root / FILES["gsm8k"])
    print("| data | routing text | APGR | CPT(50%) | CPT(80%) |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.data:
        data = gsm8k if name == "gsm8k" else load_outcomes([root / FILES[name]])
        convs = _conversations(data, pool, args.turns, args.seed)
        users = [[m["content"] for m in conv if m["role"] == "user"] for conv in convs]
        whole = ["\n\n".join(m["content"] for m in conv) for conv in convs]
        variants = [
            ("last user turn, focus=last (shipped)", [u[-1] for u in users], "last"),
            ("last user turn, focus=all", [u[-1] for u in users], "all"),
            ("whole conversation, focus=all", whole, "all"),
        ]
        for label, texts, focus in variants:
            replay = cross_validate(_with_text(data, texts), focus=focus, **FAST)  # type: ignore[arg-type]
            t = report(replay)["two_model"]
            print(f"| {name} | {label} | {t['apgr']:.3f} | {t['cpt50']:.1%} | {t['cpt80']:.1%} |", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
