"""The compiled kernels compute what the numpy path computes, and fail loudly on misuse.

Every object reads ``TIERROUTE_NATIVE`` when it is built, so each test builds one numpy-only twin (the switch
off) beside the compiled one and compares them on real prompts from the outcome files and on edge cases.
Without a C compiler at install time the kernels are absent and these tests skip, unless
``TIERROUTE_REQUIRE_NATIVE=1`` (CI sets it) turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import numpy as np
import pytest

from tierroute.policies.featurizers import HashingFeaturizer
from tierroute.policies.kernels import ENV_SWITCH, load_kernels
from tierroute.policies.predictors.linear import LinearPredictor
from tierroute.policies.predictors.stacked import StackedPredictor, TreeEnsemble

from tests.outcome_samples import ARC_TEST, GSM8K, MMLU, sample_lines

T = TypeVar("T")

if load_kernels() is None:
    if os.environ.get("TIERROUTE_REQUIRE_NATIVE") == "1":
        pytest.fail("TIERROUTE_REQUIRE_NATIVE=1 but the compiled kernels are not importable "
                    "(was the package installed without a C compiler?)", pytrace=False)
    pytest.skip("compiled kernels not built (no C compiler at install time): numpy path only", allow_module_level=True)


def twins(build: Callable[[], T], monkeypatch: pytest.MonkeyPatch) -> tuple[T, T]:
    """(numpy-only, compiled) instances of the same object."""
    monkeypatch.setenv(ENV_SWITCH, "0")
    slow = build()
    monkeypatch.delenv(ENV_SWITCH)
    return slow, build()


def real_texts(per_file: int = 150) -> list[str]:
    texts = []
    for name in (GSM8K, MMLU, ARC_TEST):
        for line in sample_lines(name, per_file):
            item = json.loads(line)
            texts.append(item["messages"][-1]["content"])
            texts += [o["response"] for o in item["outcomes"].values() if o.get("response")][:1]
    return texts


EDGE = ["", " ", "a", "ab", "abc", "\n\n\n", "```py\nx = {1: 2};\n```", "1.2.3,4 and 5,6. 7.", ".5 5. 1..2 1.,2",
        "Ünïcödé ✓ 日本語のテキスト Ωmega", "\ud800 lone surrogate", "A. yes\nB. no\n(c) maybe\nD)\u00a0x\n(E) not an option",
        "What is 40% of $2,500.75? Explain! Then stop?\nOk.", "x" * 20_000, "word " * 3_000]


def fuzz_texts(n: int = 300) -> list[str]:
    rng = random.Random(7)
    alphabet = "aAbBcCdDxyz()., \n\t\u00a0\u2003!?$%{};`=+^*/<>0123456789éü日本\u2028"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 600))) for _ in range(n)]


@pytest.mark.parametrize("config", [
    {"bits": 16},
    {"bits": 12, "char_ngrams": (2, 4, 6), "word_bigrams": False, "focus": "all"},
    {"bits": 20, "max_chars": 256},
    {"bits": 8, "char_ngrams": ()},
])
def test_featurizer_matches_numpy(config: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    plain = HashingFeaturizer(**config)  # type: ignore[arg-type]
    idf = np.random.default_rng(0).uniform(0.5, 3.0, plain.dim).astype(np.float32)
    pairs = [twins(lambda: replace(plain), monkeypatch), twins(lambda: replace(plain, idf=idf), monkeypatch)]
    for slow, fast in pairs:
        assert slow._kernels is None and fast._kernels is not None
    for text in real_texts() + EDGE + fuzz_texts():
        for a, b in pairs:
            (i1, v1, d1), (i2, v2, d2) = a.transform(text), b.transform(text)
            assert i2.dtype == np.int64 and v2.dtype == np.float32 and d2.dtype == np.float32
            assert np.array_equal(i1, i2), text[:60]  # the same buckets, in the same (ascending) order
            assert np.allclose(v1, v2, rtol=0, atol=1e-6), text[:60]  # float sums in another order
            assert np.array_equal(d1, d2), text[:60]  # structure features: exactly the Python values


def test_training_matrix_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("scipy")
    slow, fast = twins(HashingFeaturizer, monkeypatch)
    texts = real_texts(60)
    (x1, d1), (x2, d2) = slow.transform_many(texts), fast.transform_many(texts)
    assert np.array_equal(x1.indptr, x2.indptr) and np.array_equal(x1.indices, x2.indices)
    assert np.allclose(x1.data, x2.data, atol=1e-6) and np.array_equal(d1, d2)


def _random_linear(rng: np.random.Generator, dim: int, n_dense: int, m: int) -> LinearPredictor:
    return LinearPredictor(tuple(f"m{j}" for j in range(m)), rng.normal(size=(dim, m)).astype(np.float32),
                           rng.normal(size=(n_dense, m)).astype(np.float32), rng.normal(size=m),
                           rng.uniform(0.5, 2, m), rng.normal(size=m))


def _random_trees(rng: np.random.Generator, m: int, n_features: int, n_trees: int = 40, depth: int = 3) -> TreeEnsemble:
    n_nodes = 2 ** (depth + 1) - 1  # complete binary trees: node i's children are 2i+1 and 2i+2
    shape = (m, n_trees, n_nodes)
    node = np.arange(n_nodes)
    leaf = node >= 2 ** depth - 1
    feature = np.where(leaf, 0, rng.integers(0, n_features, size=shape)).astype(np.int32)
    threshold = np.where(leaf, np.inf, rng.normal(size=shape))
    left = np.broadcast_to(np.where(leaf, node, 2 * node + 1), shape).astype(np.int32)
    right = np.broadcast_to(np.where(leaf, node, 2 * node + 2), shape).astype(np.int32)
    value = np.where(leaf, rng.normal(scale=0.1, size=shape), 0.0)
    return TreeEnsemble(feature, threshold, left, right, value, rng.normal(size=m), depth)


@pytest.mark.parametrize("m", [1, 2, 11])
def test_predictors_match_numpy(m: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(m)
    featurizer = HashingFeaturizer(bits=12)
    linear = _random_linear(rng, featurizer.dim, featurizer.n_dense, m)
    trees = _random_trees(rng, m, m + featurizer.n_dense)
    builds: list[Callable[[], LinearPredictor | StackedPredictor]] = [
        lambda: replace(linear), lambda: StackedPredictor(linear, trees, 1.0), lambda: StackedPredictor(linear, trees, 0.3)]
    for build in builds:
        slow, fast = twins(build, monkeypatch)
        assert slow._scorer is None and fast._scorer is not None
        for text in real_texts(20) + EDGE:
            x = featurizer.transform(text)
            assert np.allclose(slow.predict(*x), fast.predict(*x), rtol=0, atol=1e-6), text[:60]


@pytest.mark.parametrize("with_trees", [False, True])
def test_predict_text_is_transform_then_predict(with_trees: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The learned policy's one-call path: same probabilities and structure features as the two numpy steps."""
    rng = np.random.default_rng(11)
    featurizer = HashingFeaturizer(bits=12, idf=rng.uniform(0.5, 3.0, 1 << 12).astype(np.float32))
    linear = _random_linear(rng, featurizer.dim, featurizer.n_dense, 3)
    predictor = StackedPredictor(linear, _random_trees(rng, 3, 3 + featurizer.n_dense), 0.5) if with_trees else linear
    slow_f, _ = twins(lambda: replace(featurizer), monkeypatch)
    slow_p, _ = twins(lambda: replace(predictor), monkeypatch)
    kernels = load_kernels()
    assert kernels is not None
    scorer = kernels.Scorer(*predictor.scorer_args(), featurizer=featurizer.kernel_settings())
    for text in real_texts(30) + EDGE + fuzz_texts(50):
        cut, full = featurizer.bounded(text)
        probabilities, dense = scorer.predict_text(cut, cut.lower().encode("utf-8", "ignore"), full)
        idx, vals, expected_dense = slow_f.transform(text)
        assert dense == expected_dense.tolist(), text[:60]
        assert np.allclose(probabilities, slow_p.predict(idx, vals, expected_dense), rtol=0, atol=1e-6), text[:60]


def test_a_nan_input_is_handled_as_numpy_handles_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN structure feature goes right at every split (NaN <= t is false) and a NaN logit gives NaN."""
    rng = np.random.default_rng(3)
    linear = _random_linear(rng, 16, 4, 2)
    idx, vals, dense = np.array([1, 5], np.int64), np.ones(2, np.float32), np.array([np.nan, 0.1, 0, 1], np.float32)
    for build in (lambda: StackedPredictor(linear, _random_trees(np.random.default_rng(4), 2, 6), 1.0),
                  lambda: replace(linear)):
        slow, fast = twins(build, monkeypatch)
        assert slow._scorer is None and fast._scorer is not None
        p1, p2 = slow.predict(idx, vals, dense), fast.predict(idx, vals, dense)
        assert np.array_equal(np.isnan(p1), np.isnan(p2)) and np.allclose(p1, p2, equal_nan=True, atol=1e-9)


def test_kernels_name_what_is_wrong() -> None:
    kernels = load_kernels()
    assert kernels is not None
    table = np.log1p(np.arange(100, dtype=np.float32))
    idx, vals = np.empty(8, np.int64), np.empty(8, np.float32)
    with pytest.raises(TypeError, match="out_idx: expected 8-byte signed int items"):
        kernels.hash_features(b"hello", idx.astype(np.int32), vals, table, None, 16, (3,), True)
    with pytest.raises(ValueError, match="too few for this text's buckets"):
        kernels.hash_features(b"hello wide world", idx[:2], vals[:2], table, None, 16, (3,), True)
    with pytest.raises(ValueError, match="idf: expected 2\\*\\*16 entries"):
        kernels.hash_features(b"hello", idx, vals, table, np.ones(10, np.float32), 16, (3,), True)
    with pytest.raises(TypeError, match="ngrams"):
        kernels.hash_features(b"hello", idx, vals, table, None, 16, [3], True)
    with pytest.raises(TypeError, match="text: expected str"):
        kernels.dense_features(b"hello", b"hello", 5, np.empty(18, np.float32))

    linear = _random_linear(np.random.default_rng(0), 16, 18, 2)
    scorer = kernels.Scorer(*linear.native_arrays(), None, 1.0)
    ok = (np.array([3, 15], np.int64), np.ones(2, np.float32), np.zeros(18, np.float32), np.empty(2))
    scorer.predict(*ok)
    with pytest.raises(IndexError, match="bucket 16 outside"):
        scorer.predict(np.array([3, 16], np.int64), *ok[1:])
    with pytest.raises(TypeError, match="out: expected a C-contiguous writable array"):
        scorer.predict(*ok[:3], np.zeros(4)[::2])  # strided: not C-contiguous
    with pytest.raises(ValueError, match="expected idx and vals of one length, 18 dense features, out of 2"):
        scorer.predict(*ok[:2], np.zeros(17, np.float32), ok[3])
    with pytest.raises(TypeError, match="dense_weights: expected 4-byte float items"):
        kernels.Scorer(linear.weights, linear.dense_weights.astype(np.float64), *linear.native_arrays()[2:], None, 1.0)
    with pytest.raises(ValueError, match="blend must be in"):
        kernels.Scorer(*linear.native_arrays(), None, 1.5)
    with pytest.raises(ValueError, match="needs a Scorer built with its featurizer"):
        scorer.predict_text("hello", b"hello", 5)
    with pytest.raises(ValueError, match="the featurizer gives 2\\*\\*12 buckets and 18 structure features, "
                                         "the weights expect 16 and 18"):
        kernels.Scorer(*linear.scorer_args(), featurizer=HashingFeaturizer(bits=12).kernel_settings())


def test_malformed_trees_are_refused_when_loaded_not_read_out_of_bounds() -> None:
    good = _random_trees(np.random.default_rng(5), 1, 4)
    linear = _random_linear(np.random.default_rng(6), 16, 3, 1)  # 1 logit + 3 dense features = the trees' 4 inputs
    bad_left = good.left.copy()
    bad_left[0, 0, 0] = 999
    with pytest.raises(ValueError, match="tree child node 999/"):
        StackedPredictor(linear, replace(good, left=bad_left))
    bad_feature = good.feature.copy()
    bad_feature[0, 3, 1] = 4
    with pytest.raises(ValueError, match="tree feature 4 outside"):
        StackedPredictor(linear, replace(good, feature=bad_feature))
    kernels = load_kernels()
    assert kernels is not None
    empty = tuple(np.zeros((1, 2, 0), dtype) for dtype in (np.int32, np.float64, np.int32, np.int32, np.float64))
    with pytest.raises(ValueError, match="trees need at least one node"):
        kernels.Scorer(*linear.native_arrays(), (*empty, np.zeros(1), 3), 1.0)


def test_switch_off_keeps_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("0", "false", "off"):
        monkeypatch.setenv(ENV_SWITCH, value)
        assert load_kernels() is None and HashingFeaturizer()._kernels is None
    monkeypatch.setenv(ENV_SWITCH, "1")
    assert HashingFeaturizer()._kernels is not None
