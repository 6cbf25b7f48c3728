import numpy as np
import pytest

from tierroute.policies.featurizers import DENSE_NAMES, HashingFeaturizer, focus_text


def test_hash_is_stable_and_position_independent() -> None:
    f = HashingFeaturizer(focus="all", char_ngrams=())
    a, _, _ = f.transform("hello world")
    b, _, _ = f.transform("xx hello zz world")
    assert len(set(a.tolist()) & set(b.tolist())) == 2  # 'hello', 'world'; bigram differs
    # fixed seeds, not Python's randomised hash(): same buckets in every process
    assert a.tolist() == HashingFeaturizer(focus="all", char_ngrams=()).transform("hello world")[0].tolist()


def test_vector_is_unit_norm_and_sorted_unique() -> None:
    idx, vals, dense = HashingFeaturizer().transform("What is 2 + 2? Explain step by step.")
    assert np.all(np.diff(idx) > 0)
    assert abs(float(np.dot(vals, vals)) - 1.0) < 1e-5
    assert dense.shape == (len(DENSE_NAMES),)


def test_long_prompt_uses_bincount_path_and_matches_unique_path() -> None:
    f = HashingFeaturizer(focus="all")
    text = "the quick brown fox jumps over the lazy dog. " * 400
    idx, vals, _ = f.transform(text)
    assert idx.size > 0 and abs(float(np.dot(vals, vals)) - 1.0) < 1e-5


def test_focus_last_keeps_final_question_of_few_shot_prompt() -> None:
    prompt = "Q: 1+1?\nAnswer:\n2\n\nQ: 2+2?\nAnswer:\n4\n\nWhich planet is largest in the solar system?\nA) Mars\nB) Jupiter\nAnswer:"
    assert focus_text(prompt, "last").startswith("Which planet")
    assert focus_text(prompt, "all") == prompt


def test_empty_text() -> None:
    idx, vals, dense = HashingFeaturizer().transform("")
    assert idx.size == 0 and vals.size == 0 and np.isfinite(dense).all()


def test_cost_is_bounded_head_and_tail_of_a_long_prompt() -> None:
    f = HashingFeaturizer(focus="all", max_chars=256)
    head, middle, tail = "alpha " * 30, "middle words nobody reads " * 2000, " omega" * 30
    cut = focus_text(head + middle + tail, "all", max_chars=256)
    assert len(cut) == 257 and cut.startswith("alpha") and cut.endswith("omega")
    idx, _, dense = f.transform(head + middle + tail)
    assert np.array_equal(idx, f.transform(cut)[0])
    # the length features still see the whole prompt, not the slice
    assert dense[DENSE_NAMES.index("log_chars")] > f.transform(cut)[2][DENSE_NAMES.index("log_chars")]


def test_focus_last_on_a_huge_prompt_reads_only_its_end() -> None:
    prompt = "worked example\n\n" * 50_000 + "Which planet is largest in the solar system? A) Mars B) Jupiter"
    assert focus_text(prompt, "last").startswith("Which planet")


def test_dense_alone_matches_transform() -> None:
    f = HashingFeaturizer()
    text = "A shop sells 3,000 pens at $2.50 each. It sells 40% on Monday. How many are left? Show steps."
    assert np.array_equal(f.dense(text), f.transform(text)[2])


def test_number_features_count_numbers_not_digits() -> None:
    dense = HashingFeaturizer().dense("Tom has 3,000 apples and 2.5 pears and 2.5 plums.")
    names = dict(zip(DENSE_NAMES, dense.tolist()))
    assert names["numbers"] == pytest.approx(3 / 20) and names["distinct_numbers"] == pytest.approx(2 / 20)
    assert names["decimals"] == pytest.approx(2 / 5) and names["longest_number"] == pytest.approx(5 / 10)


def test_idf_weights_rare_buckets_and_keeps_unit_norm() -> None:
    f = HashingFeaturizer(focus="all", char_ngrams=(), word_bigrams=False)
    x, _ = f.transform_many(["the cat", "the dog", "the fish", "the owl"])
    g = f.with_idf(x)
    idx, vals, _ = g.transform("the cat")
    the, cat = f.transform("the")[0][0], f.transform("cat")[0][0]
    weight = dict(zip(idx.tolist(), vals.tolist()))
    assert weight[cat] > weight[the] and abs(float(np.dot(vals, vals)) - 1.0) < 1e-5
    assert HashingFeaturizer.from_config(g.config(), g.arrays()).transform("the cat")[1].tolist() == \
        pytest.approx(vals.tolist(), rel=1e-3)
