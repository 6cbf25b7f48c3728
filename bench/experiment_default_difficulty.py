"""Experiment: can the untrained default router's difficulty weights be fitted on the public outcome data?

The default router (``policies/predictors/prior.py``) bends catalog quality priors by a prompt difficulty
computed from the 18 dense structure features with hand-set weights. The obvious improvement is to fit those
weights on public outcome data. What matters for a default is how it does on traffic it was *not* fitted on,
so this script measures leave-one-dataset-out: fit on two of MMLU / GSM8K / ARC, score the third.

Rows:
* ``hand-set``: the shipped weights (no fitting).
* ``dense refit``: the same functional form as the shipped prior (error = (1 - q) * exp(SPREAD * (d - 0.5)),
  ``d = sigmoid(w . dense)``, ``q`` = each model's mean score in its dataset), ``w`` fitted by L-BFGS on the
  log-loss of every (item, model) outcome, each dataset weighted equally, L2 on the non-bias weights.
* ``n-gram ridge``: ridge regression of the per-model-centred error rate on the hashed n-grams + dense features
  (2^16 buckets), each dataset weighted equally: the richest fast signal tierroute has.

Scores: APGR of the difficulty as the router score for the two-model sets (0.5 = random), and for ARC's 11
models the Pearson correlation of difficulty with the item's mean error (ARC is held out as its test split; its
train split is used when ARC is a training set).

    python bench/experiment_default_difficulty.py            # ~1 min; needs the train extra (scipy, sklearn)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tierroute.evaluation.data import OutcomeSet, data_dir, load_outcomes
from tierroute.evaluation.metrics import two_model_report
from tierroute.evaluation.train import item_text
from tierroute.policies.featurizers import HashingFeaturizer
from tierroute.policies.predictors.prior import SPREAD, PriorPredictor

FILES = {"mmlu": "routellm-mmlu.jsonl", "gsm8k": "routellm-gsm8k.jsonl",
         "arc": "routerbench-arc_challenge-train.jsonl", "arc-test": "routerbench-arc_challenge-test.jsonl"}
HELD_OUT = {"mmlu": "mmlu", "gsm8k": "gsm8k", "arc": "arc-test"}


def _score(data: OutcomeSet, difficulty: np.ndarray) -> float:
    if len(data.models) == 2:
        means = data.scores.mean(axis=0)
        strong = int(np.argmax(means))
        return two_model_report(difficulty, data.scores[:, strong], data.scores[:, 1 - strong]).apgr
    return float(np.corrcoef(difficulty, 1.0 - data.scores.mean(axis=1))[0, 1])


def _prior_loss(w: np.ndarray, sets: list[tuple[np.ndarray, np.ndarray]], l2: float) -> tuple[float, np.ndarray]:
    """Log-loss of the prior's functional form over every (item, model) outcome, and its gradient in ``w``."""
    total, grad = 0.0, np.zeros_like(w)
    for dense, scores in sets:
        q = scores.mean(axis=0)
        d = 1.0 / (1.0 + np.exp(-(dense @ w)))
        raw = (1.0 - q)[None, :] * np.exp(SPREAD * (d - 0.5))[:, None]
        err = np.clip(raw, 1e-4, 1 - 1e-4)
        y = 1.0 - scores
        total += float(-(y * np.log(err) + (1 - y) * np.log(1 - err)).mean()) / len(sets)
        d_err = -(y / err - (1 - y) / (1 - err)) / scores.size * ((raw > 1e-4) & (raw < 1 - 1e-4))
        d_z = (d_err * err).sum(axis=1) * SPREAD * d * (1 - d)
        grad += dense.T @ d_z / len(sets)
    reg = w.copy()
    reg[-1] = 0.0  # the bias is not shrunk
    return total + l2 * float(reg @ reg), grad + 2 * l2 * reg


def _fit_dense(sets: list[tuple[np.ndarray, np.ndarray]], l2: float) -> np.ndarray:
    from scipy.optimize import minimize

    result = minimize(_prior_loss, np.zeros(sets[0][0].shape[1]), args=(sets, l2), jac=True, method="L-BFGS-B")
    return np.asarray(result.x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None, help="outcome data directory (default ../shared/data)")
    ap.add_argument("--l2", type=float, default=1e-3, help="L2 on the dense refit's weights")
    ap.add_argument("--alpha", type=float, default=100.0, help="ridge alpha of the n-gram model")
    args = ap.parse_args()
    from scipy import sparse
    from sklearn.linear_model import Ridge

    root = args.data_dir or data_dir() / "outcomes"
    featurizer = HashingFeaturizer(bits=16)
    data, dense, grams = {}, {}, {}
    for name, file in FILES.items():
        data[name] = load_outcomes([root / file])
        x, d = featurizer.transform_many([item_text(it.messages) for it in data[name].items])
        dense[name] = d.astype(np.float64)
        grams[name] = sparse.hstack([x, sparse.csr_matrix(d)]).tocsr()
    prior = PriorPredictor()
    rows: dict[str, dict[str, float]] = {"hand-set": {}, "dense refit": {}, "n-gram ridge": {}}
    for held, test in HELD_OUT.items():
        train = [n for n in HELD_OUT if n != held]
        rows["hand-set"][held] = _score(data[test], prior.difficulty_many(dense[test]))
        w = _fit_dense([(dense[n], data[n].scores) for n in train], args.l2)
        rows["dense refit"][held] = _score(data[test], dense[test] @ w)
        target = [((1 - data[n].scores) - (1 - data[n].scores).mean(axis=0)).mean(axis=1) for n in train]
        weight = np.concatenate([np.full(len(t), 1000.0 / len(t)) for t in target])
        ridge = Ridge(alpha=args.alpha).fit(sparse.vstack([grams[n] for n in train]), np.concatenate(target),
                                            sample_weight=weight)
        rows["n-gram ridge"][held] = _score(data[test], ridge.predict(grams[test]))
    print("| difficulty | MMLU held out (APGR) | GSM8K held out (APGR) | ARC test held out (corr. with mean error) |")
    print("| --- | --- | --- | --- |")
    for row, vals in rows.items():
        print(f"| {row} | {vals['mmlu']:.3f} | {vals['gsm8k']:.3f} | {vals['arc']:.3f} |")


if __name__ == "__main__":
    main()
