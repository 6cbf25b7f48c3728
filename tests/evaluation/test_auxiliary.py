"""Auxiliary targets: built without leaking an item's own score, and folded exactly into one linear predictor."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from tierroute.evaluation.auxiliary import (
    CATEGORY,
    LENGTH,
    MAX_COMPONENTS,
    MIN_CATEGORY_ITEMS,
    AuxiliaryTargets,
    auxiliary_targets,
    fit_regression,
    fit_stack,
    fold_into,
    projection,
)
from tierroute.evaluation.data import OutcomeItem, OutcomeSet, load_outcomes, to_outcome_set
from tierroute.evaluation.replay import cv_folds
from tierroute.evaluation.train import featurize, fit_predictor, train_router
from tierroute.policies.featurizers import HashingFeaturizer
from tierroute.policies.predictors.linear import fit_linear

from tests.outcome_samples import ARC_TRAIN, GSM8K, full_outcomes, sample

WORDS = ("integral matrix proof", "sonnet metaphor rhyme", "treaty empire war")


def _data(n: int = 120, *, categories: bool = True, responses: bool = True, seed: int = 0) -> OutcomeSet:
    """Three categories of differing difficulty; the strong model's answer is longer on the hard one."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        c = i % 3
        scores = {"strong": float(rng.random() < 0.9), "weak": float(rng.random() < (0.3, 0.8, 0.6)[c])}
        chars = {"strong": int(50 + 400 * (c == 0) + rng.integers(0, 50)), "weak": 80} if responses else {}
        items.append(OutcomeItem(id=f"q{i}", messages=({"role": "user", "content": f"{WORDS[c]} item {i}"},),
                                 scores=scores, costs={}, category=f"cat{c}" if categories else None,
                                 response_chars=chars))
    return to_outcome_set(items)


def test_targets_follow_what_the_data_records() -> None:
    targets = auxiliary_targets(_data())
    assert targets is not None
    # the weak model's answers all have one length: nothing to learn there
    assert targets.names == (f"{CATEGORY}strong", f"{CATEGORY}weak", f"{LENGTH}strong")
    assert auxiliary_targets(_data(categories=False, responses=False)) is None
    only_lengths = auxiliary_targets(_data(categories=False))
    assert only_lengths is not None and only_lengths.names == (f"{LENGTH}strong",)
    small = _data(n=2 * MIN_CATEGORY_ITEMS)  # three categories, none with enough items for a rate
    assert auxiliary_targets(small).names == (f"{LENGTH}strong",)  # type: ignore[union-attr]


def test_a_category_rate_never_sees_the_items_own_score() -> None:
    data = _data()
    before = auxiliary_targets(data).values  # type: ignore[union-attr]
    items = list(data.items)
    flipped = {m: 1.0 - s for m, s in items[0].scores.items()}
    items[0] = OutcomeItem(**{**items[0].__dict__, "scores": flipped})
    after = auxiliary_targets(to_outcome_set(items)).values  # type: ignore[union-attr]
    assert np.array_equal(before[0], after[0])  # item 0's own target is unchanged
    assert not np.array_equal(before[3, :2], after[3, :2])  # its category neighbours' targets moved
    # the weak model's rate is lowest on the hard category
    assert before[0::3, 1].mean() < before[1::3, 1].mean()


def test_rebuilding_like_a_full_set_keeps_its_columns() -> None:
    data = _data()
    full = auxiliary_targets(data)
    part = auxiliary_targets(data.subset(np.arange(30)), like=full)  # 10 items a category: no rates of its own
    assert part is not None and part.names == full.names and part.values.shape == (30, 3)  # type: ignore[union-attr]


def test_the_stack_folds_into_one_linear_predictor() -> None:
    data = _data()
    featurizer = HashingFeaturizer(bits=10)
    x, dense = featurizer.transform_many([it.messages[0]["content"] for it in data.items])
    targets = auxiliary_targets(data)
    assert targets is not None
    first = fit_linear(x, dense, data.scores, data.models, c=1.0)
    regression = fit_regression(x, dense, targets.values)
    predicted = regression.predict_many(x, dense)
    assert np.corrcoef(predicted[:, 2], targets.values[:, 2])[0, 1] > 0.9  # answer length follows the topic
    stack = fit_stack(first.logits_many(x, dense), predicted, data.scores)
    folded = fold_into(first, regression, stack)
    expected = 1 / (1 + np.exp(-stack.logits(first.logits_many(x, dense), predicted)))
    assert np.allclose(folded.predict_many(x, dense), expected, atol=1e-4)
    idx, vals, d = featurizer.transform(data.items[5].messages[0]["content"])
    assert np.allclose(folded.predict(idx, vals, d), expected[5], atol=1e-4)  # compiled path, one prompt


def test_gsm8k_answer_lengths_are_chosen_by_inner_cv() -> None:
    """On real data (500 GSM8K items) the paired inner-CV test picks the GPT-4 / Mixtral answer lengths."""
    data = load_outcomes(sample(GSM8K))
    featurizer = HashingFeaturizer(bits=14)
    x, dense = featurize(data, featurizer)
    fitted = fit_predictor(x, dense, data, featurizer, c_grid=(1.0,), weightings=("tf",), second_stage=False)
    paired = fitted.table["auxiliary targets, cross-fitted stack"]
    assert paired["apgr with"] > paired["apgr without"]
    assert fitted.auxiliary == (f"{LENGTH}gpt-4-1106-preview", f"{LENGTH}mistralai/Mixtral-8x7B-Instruct-v0.1")


@pytest.mark.parametrize("models", [1, 2, 3])
def test_every_shape_trains_with_targets_present(models: int) -> None:
    """Fractional scores, a category missing on some items, one to three models: training runs, and whatever
    it keeps, the artifact predicts probabilities."""
    rng = np.random.default_rng(1)
    items = []
    for i in range(150):
        c = i % 3
        scores = {f"m{j}": float(np.clip(rng.normal((0.9, 0.3 + 0.2 * c, 0.6)[j], 0.2), 0, 1)) for j in range(models)}
        items.append(OutcomeItem(id=f"q{i}", messages=({"role": "user", "content": f"{WORDS[c]} {i}"},),
                                 scores=scores, costs={}, category=None if i % 7 == 0 else f"c{c}",
                                 response_chars={m: int(rng.integers(5, 400)) for m in scores}))
    data = to_outcome_set(items)
    featurizer = HashingFeaturizer(bits=10)
    x, dense = featurize(data, featurizer)
    fitted = fit_predictor(x, dense, data, featurizer, c_grid=(1.0,), weightings=("tf",))
    assert set(fitted.auxiliary) <= set(auxiliary_targets(data).names)  # type: ignore[union-attr]
    p = fitted.predictor.predict_many(x, dense)
    assert p.shape == (150, models) and np.all((p > 0) & (p < 1))


def test_many_targets_are_regressed_through_a_few_components() -> None:
    rng = np.random.default_rng(2)
    hard = rng.normal(size=(300, 1))
    values = np.hstack([hard * w + 0.1 * rng.normal(size=(300, 1)) for w in np.linspace(0.5, 2.0, 22)])
    targets = AuxiliaryTargets(tuple(f"t{k}" for k in range(22)), values)
    basis = projection(targets)
    assert basis.components.shape == (22, MAX_COMPONENTS)
    first = basis.apply(values)[:, 0]
    assert abs(np.corrcoef(first, hard[:, 0])[0, 1]) > 0.99  # one shared difficulty: the first component is it
    few = AuxiliaryTargets(("a", "b"), values[:, :2])
    assert np.array_equal(projection(few).apply(few.values), few.values)  # two targets: regressed as they are


def test_a_brier_tie_with_a_negligible_routing_gain_keeps_the_simpler_stack() -> None:
    """ARC train, outer fold 0 of `eval --cv 5`: the answer lengths tie on Brier (slightly worse) and add 0.001
    inner AIQ, within its bootstrap standard error, so they are not taken (taking them cost that fold's router
    2.5 points of the zero-to-oracle gap). A regression test on the full file, where the case was found."""
    data = load_outcomes(full_outcomes(ARC_TRAIN))
    folds, _ = cv_folds(data, 5)
    _, report = train_router(data.subset(folds != 0), second_stage=False)
    paired = report.cv_table["auxiliary targets, cross-fitted stack"]
    assert paired["brier with"] > paired["brier without"]
    assert 0 < paired["aiq with"] - paired["aiq without"] < paired["aiq gain standard error"]
    assert report.auxiliary == ()
