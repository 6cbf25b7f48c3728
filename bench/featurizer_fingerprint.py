"""Bit-for-bit check of the featurizer: fingerprint its outputs on a corpus before a speed change, compare after.

Every prompt (each message's text) of the given outcome files, plus the gateway benchmark's prompt mix, goes
through ``transform`` and ``dense_list`` of several featurizer configurations (the default, the trained
routers' 2^16, the intents' 2^14 ``focus="all"``, an idf-weighted one, a 16,384-character cap). One SHA-256
per (configuration, text) over the raw bytes of the outputs, so any change of value, dtype or order shows; and
the subset the catalog priors ask for (``dense_list(text, only=...)``) must equal the full vector there.

    python bench/featurizer_fingerprint.py --save /tmp/fp/before.json DATA/*.jsonl
    python bench/featurizer_fingerprint.py --check /tmp/fp/before.json DATA/*.jsonl

Fingerprints belong to one code path: the compiled kernels' n-gram weights differ from numpy's in the last
bits (float sums in another order), so save and check with the same ``TIERROUTE_NATIVE`` setting (``=0`` for
the numpy path).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_gateway import prompt_mix  # noqa: E402

from tierroute.policies.featurizers import HashingFeaturizer  # noqa: E402
from tierroute.policies.predictors.prior import PriorPredictor  # noqa: E402

PRIOR_READS = sorted(PriorPredictor().reads)


def featurizers() -> dict[str, HashingFeaturizer]:
    idf = (np.random.default_rng(0).random(1 << 16) * 3 + 1).astype(np.float16).astype(np.float32)
    return {
        "default": HashingFeaturizer(),
        "trained-16": HashingFeaturizer(bits=16),
        "intents-14-all": HashingFeaturizer(bits=14, focus="all"),
        "idf-16": HashingFeaturizer(bits=16, idf=idf),
        "wide-20-all-16k": HashingFeaturizer(bits=20, focus="all", max_chars=16_384),
        "chars-2-4-no-bigrams": HashingFeaturizer(char_ngrams=(2, 4), word_bigrams=False),
    }


def texts(paths: list[Path]) -> list[str]:
    out = ["", " ", "\n\n", "é", "A", "ab", "日本語のテキスト"]
    for path in paths:
        with path.open() as lines:
            for line in lines:
                for message in json.loads(line)["messages"]:
                    if isinstance(message.get("content"), str):
                        out.append(message["content"])
    for body in prompt_mix():
        out += [m["content"] for m in body["messages"]]
    return out


def fingerprint(feat: HashingFeaturizer, text: str) -> str:
    idx, vals, dense = feat.transform(text)
    # What the catalog priors ask for must be exactly what the full vector holds.
    part = feat.dense_list(text, only=PRIOR_READS)
    assert [part[i] for i in PRIOR_READS] == [float(dense[i]) for i in PRIOR_READS], text[:80]
    h = hashlib.sha256()
    for a in (idx, vals, dense):
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(np.array(feat.dense_list(text), np.float64).tobytes())
    return h.hexdigest()[:24]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", type=Path)
    mode.add_argument("--check", type=Path)
    parser.add_argument("data", type=Path, nargs="+", help="outcome data files (JSON lines with messages)")
    args = parser.parse_args()
    corpus = texts(args.data)
    prints = {name: [fingerprint(feat, t) for t in corpus] for name, feat in featurizers().items()}
    if args.save:
        args.save.write_text(json.dumps(prints))
        print(f"saved {sum(map(len, prints.values()))} fingerprints ({len(corpus)} texts x {len(prints)} featurizers)")
        return 0
    reference = json.loads(args.check.read_text())
    bad = 0
    for name, values in prints.items():
        diff = [i for i, (a, b) in enumerate(zip(values, reference[name])) if a != b]
        if diff or len(values) != len(reference[name]):
            bad += 1
            print(f"{name}: {len(diff)} of {len(values)} texts differ, first {corpus[diff[0]][:80]!r}" if diff
                  else f"{name}: corpus size changed")
    print(f"{'MISMATCH' if bad else 'identical'}: {sum(map(len, prints.values()))} fingerprints "
          f"({len(corpus)} texts x {len(prints)} featurizers)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
