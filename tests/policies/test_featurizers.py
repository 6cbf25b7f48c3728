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


def test_dense_list_only_counts_what_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERROUTE_NATIVE", "0")  # the compiled kernels count every feature in one pass anyway
    f = HashingFeaturizer()
    text = "Q: A shop sells 3,000 pens at $2.50 each. How many are left?\n(A) 12\n(B) 30\nShow steps; f(x) = x^2."
    full = f.dense_list(text)
    assert full == f.dense(text).tolist()
    cheap = [DENSE_NAMES.index(n) for n in ("log_chars", "digit_share", "questions", "math_markers", "bias")]
    some = f.dense_list(text, only=cheap)
    assert [some[i] for i in cheap] == [full[i] for i in cheap]
    assert np.isnan(some[DENSE_NAMES.index("numbers")])  # not asked for: not counted
    with_numbers = f.dense_list(text, only=[*cheap, DENSE_NAMES.index("numbers")])
    assert with_numbers == full


@pytest.mark.parametrize("text", [
    "A. one\nB. two\n(c) three\nd) four\n\tE. no", "A.\nB. x", "(a)\n(b)\n(c) ", "x\nA.\n\nB.", "A.", "", "\n\n(B)\t",
    "Intro. Then? Yes! End.\nNext line.", "..  ?\n!\n. ", "no sentence end",
])
def test_regex_rewrites_count_what_the_originals_count(text: str) -> None:
    # The featurizer counts answer options and sentence ends with faster patterns; these are the originals.
    import re

    from tierroute.policies import featurizers

    choices = len(re.findall(r"(?m)^\(?[A-Da-d][.)]\s", text))
    assert len(featurizers._CHOICE_LINE.findall("\n" + text)) == choices
    raw = text.lower().encode()
    ends = sum(raw.count(p) for p in (b". ", b".\n", b"? ", b"?\n", b"! ", b"!\n"))
    assert len(featurizers._SENTENCE_END.findall(raw)) == ends


def test_bucket_counts_match_a_plain_unique() -> None:
    # The 16-bit path reads buckets in place from the products' top bits; check it against the plain fold.
    text = "the quick brown fox jumps over the lazy dog; the dog sleeps. 3,000 foxes! " * 5
    for bits in (10, 15, 16, 18):
        f = HashingFeaturizer(bits=bits, focus="all")
        raw = text.lower().encode()
        hashes = f._hashes(np.frombuffer(raw, dtype=np.uint8))
        with np.errstate(over="ignore"):
            plain = ((hashes * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)).astype(np.int64)
        want_idx, want_counts = np.unique(plain, return_counts=True)
        idx, vals, _ = f.transform(text)
        assert idx.dtype == np.int64 and np.array_equal(idx, want_idx)
        logs = np.log1p(want_counts.astype(np.float32))
        assert np.array_equal(vals, logs / np.sqrt(np.dot(logs, logs)))
