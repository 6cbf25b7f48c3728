"""Experiment: how a router trained on one benchmark ranks another's prompts, and what the familiarity guard does.

Train on MMLU and judge GSM8K, and the reverse (both RouteLLM files score GPT-4-1106 and Mixtral-8x7B), and
train on both and judge ARC's test split projected onto the same pair (RouterBench names Mixtral
``mistralai/mixtral-8x7b-chat``). Rows, each as APGR with its 95% bootstrap interval over the judged items:

* ``prior``: the untrained default's hand-set prompt difficulty (``policies/predictors/prior.py``) as the score.
* ``tf-idf + LR``: a plain baseline, scikit-learn's TfidfVectorizer (word 1-2-grams, sublinear tf, min_df 2)
  and one logistic regression per model, C=1, strong minus weak predicted probability.
* ``shipped``: ``train_router`` as ``tierroute train`` runs it (inner-CV search, auxiliary targets, second
  stage, familiarity guard).
* ``no guard``: the same router with every prompt's n-grams trusted (its inner predictor), so the difference
  to ``shipped`` is paired: same router, same items.
* ``structure only``: the same router with no prompt's n-grams trusted (what the guard gives a prompt it finds
  wholly unfamiliar): the most the guard could do here if it flagged every judged prompt.

    python bench/experiment_transfer.py          # ~2 min on 2 CPUs; needs the train extra (scipy, sklearn)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from scipy import sparse

from tierroute.evaluation.data import OutcomeSet, data_dir, load_outcomes
from tierroute.evaluation.metrics import strong_and_weak, two_model_report
from tierroute.evaluation.train import featurize, item_text, train_router
from tierroute.evaluation.uncertainty import paired_two_model, two_model_intervals
from tierroute.policies.predictors.guarded import GuardedPredictor
from tierroute.policies.predictors.prior import PriorPredictor

GPT4, MIXTRAL = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
ARC_MIXTRAL = "mistralai/mixtral-8x7b-chat"


def _load(names: list[str]) -> OutcomeSet:
    return load_outcomes([data_dir() / "outcomes" / f"{n}.jsonl" for n in names])


def _arc_pair() -> OutcomeSet:
    return _load(["routerbench-arc_challenge-test"]).project([(GPT4, GPT4), (ARC_MIXTRAL, MIXTRAL)])


def _tfidf_scores(train: OutcomeSet, test: OutcomeSet) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2))
    xa = vectorizer.fit_transform([item_text(it.messages) for it in train.items])
    xb = vectorizer.transform([item_text(it.messages) for it in test.items])
    s, w = strong_and_weak(train.scores)
    prob = [LogisticRegression(C=1.0, max_iter=2000).fit(xa, train.scores[:, j] >= 0.5).predict_proba(xb)[:, 1]
            for j in (s, w)]
    return prob[0] - prob[1]


def run(name: str, train: OutcomeSet, test: OutcomeSet, resamples: int, jobs: int | None,
        echo: Callable[[str], None] = print) -> None:
    s, w = strong_and_weak(test.scores)
    strong, weak = test.scores[:, s], test.scores[:, w]
    artifact, _ = train_router(train, jobs=jobs)
    guarded = artifact.predictor
    assert isinstance(guarded, GuardedPredictor)
    x, dense = featurize(test, artifact.featurizer)
    cols = [artifact.models.index(test.models[j]) for j in (s, w)]

    def gap(pred: np.ndarray) -> np.ndarray:
        return pred[:, cols[0]] - pred[:, cols[1]]

    shipped = gap(guarded.predict_many(x, dense))
    rows = {"prior": PriorPredictor().difficulty_many(dense), "tf-idf + LR": _tfidf_scores(train, test),
            "shipped": shipped, "no guard": gap(guarded.inner.predict_many(x, dense)),
            "structure only": gap(guarded.inner.predict_many(sparse.csr_matrix(x.shape, dtype=x.dtype), dense))}
    trust = guarded.trust_many(x)
    echo(f"\n{name}: {len(train)} training items -> {len(test)} judged; {np.mean(trust < 1):.1%} less familiar than "
         f"90% of held-out training prompts, {np.mean(trust <= 0):.1%} wholly unfamiliar, mean trust {trust.mean():.2f}")
    echo(f"  {'router':16s} {'APGR':>6s}  95% interval     shipped - row (paired 95%)")
    for label, score in rows.items():
        apgr = two_model_report(score, strong, weak).apgr
        lo, hi = two_model_intervals(score, strong, weak, resamples)["apgr"] or (np.nan, np.nan)
        paired = ""
        if label != "shipped":
            d = two_model_report(shipped, strong, weak).apgr - apgr
            plo, phi = paired_two_model(score, shipped, strong, weak, resamples)["apgr"] or (np.nan, np.nan)
            paired = f"{d:+.3f} ({plo:+.3f}..{phi:+.3f})"
        echo(f"  {label:16s} {apgr:6.3f}  {lo:.3f}..{hi:.3f}     {paired}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    mmlu, gsm8k = _load(["routellm-mmlu"]), _load(["routellm-gsm8k"])
    run("MMLU -> GSM8K", mmlu, gsm8k, args.resamples, args.jobs)
    run("GSM8K -> MMLU", gsm8k, mmlu, args.resamples, args.jobs)
    run("MMLU + GSM8K -> ARC test (GPT-4 vs Mixtral)", _load(["routellm-mmlu", "routellm-gsm8k"]), _arc_pair(),
        args.resamples, args.jobs)


if __name__ == "__main__":
    main()
