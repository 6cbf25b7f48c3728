"""Offline cascades from recorded replies: answer extraction, the chain chosen on training items only, and
``tierroute eval --cascade`` on the checked-in RouterBench ARC and GSM8K samples."""

import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tierroute.cascade.answers import extract
from tierroute.evaluation.cascade import Chain, read_answers, read_replies, run_chain
from tierroute.evaluation.commands import eval_command
from tierroute.evaluation.data import load_outcomes

from tests.outcome_samples import ARC_TEST, ARC_TRAIN, GSM8K, sample


@pytest.mark.parametrize(("reply", "kind", "answer"), [
    ("D", "auto", "choice:D"), ("D\n", "auto", "choice:D"), ("(C) because", "auto", "choice:C"),
    ("The answer is b.", "auto", "choice:B"), ("I do not have enough context", "choice", None),
    ("A bird flies", "choice", None), ("3 x 60 = 180\n#### 540\n\n", "auto", "number:540"),
    ("so 1,080.00 dollars in total", "number", "1080"), ("#### 12.50", "number", "12.5"),
    ("  Paris.  ", "text", "paris"), ("", "text", None),
])
def test_answer_extraction(reply: str, kind: str, answer: str | None) -> None:
    assert extract(reply, kind) == answer


def test_a_letter_never_agrees_with_a_number() -> None:
    assert extract("B", "auto") != extract("#### 2", "auto")


def test_agreement_chain_scores_by_hand() -> None:
    """Agreement serves the first cheap model's score at the cheap cost, disagreement the strong one's at all
    three costs; a missing answer never agrees."""
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    costs = np.array([[1.0, 2.0, 10.0]] * 3)
    answers = np.array([["A", "A", "B"], ["A", "B", "B"], [None, None, "C"]], dtype=object)
    score, cost, escalated = run_chain(Chain((0, 1), "agree", 2), scores, costs, answers, answers != None)  # noqa: E711
    assert score.tolist() == [1.0, 1.0, 1.0] and cost.tolist() == [3.0, 13.0, 13.0]
    assert escalated.tolist() == [False, True, True]


def test_eval_cascade_arc_train_test() -> None:
    train, test = sample(ARC_TRAIN), sample(ARC_TEST)
    res = CliRunner().invoke(eval_command, ["--train", str(train), "--data", str(test), "--cascade", "--fast",
                                            "--jobs", "1", "--resamples", "200", "--json"])
    assert res.exit_code == 0, res.output
    c = json.loads(res.output)["cascade"]
    chosen = c["chosen"]
    assert c["strong"] == "gpt-4-1106-preview" and c["priced"]
    lo, hi = chosen["intervals"]["quality"]
    assert lo <= chosen["quality"] <= hi and 0 < chosen["cost_share"] < 1
    # Recompute the chosen chain's quality and cost on the test items independently of run_chain.
    data = load_outcomes([test])
    answers, _ = read_answers(read_replies([test]), data)
    spec = chosen["chains"][0]["chain"]
    strategy, _, rest = spec.partition("(")
    voters = [data.models.index(m) for m in rest.split(") -> ")[0].split(", ")]
    strong = data.models.index(c["strong"])
    assert strategy == "agree", spec  # on these samples agreement of cheap models wins; "answered" is one model
    agree = np.array([a[voters[0]] is not None and all(a[j] == a[voters[0]] for j in voters) for a in answers])
    score = np.where(agree, data.scores[:, voters[0]], data.scores[:, strong])
    cost = data.costs[:, voters].sum(axis=1) + np.where(agree, 0.0, data.costs[:, strong])
    assert chosen["quality"] == pytest.approx(score.mean())
    assert chosen["cost_share"] == pytest.approx(cost.sum() / data.costs[:, strong].sum())
    assert chosen["zero_at_cost"] is not None and chosen["router_at_cost"] is not None
    # the front only rises in quality as cost rises
    qualities = [row["quality"] for row in c["front"]]
    assert qualities == sorted(qualities)


def test_eval_cascade_gsm8k_cv_prints_the_comparison() -> None:
    res = CliRunner().invoke(eval_command, ["--cv", "5", "--data", str(sample(GSM8K)), "--cascade", "--fast",
                                            "--jobs", "1", "--resamples", "100"])
    assert res.exit_code == 0, res.output
    assert "cost = share of strong calls" in res.output
    assert res.output.count("chain: answered(mistralai/Mixtral-8x7B-Instruct-v0.1)") == 5  # one per fold
    assert "at the same cost: zero router" in res.output and "router" in res.output


def test_cascade_needs_training_items(tmp_path) -> None:
    res = CliRunner().invoke(eval_command, ["--router", __file__, "--data", str(sample(GSM8K)), "--cascade"])
    assert res.exit_code != 0 and "--cascade chooses its chain on training items" in res.output


def test_eval_cascade_split_chooses_on_the_train_items() -> None:
    res = CliRunner().invoke(eval_command, ["--split", "--data", str(sample(ARC_TRAIN)), "--data", str(sample(ARC_TEST)),
                                            "--cascade", "--fast", "--jobs", "1", "--resamples", "50", "--json"])
    assert res.exit_code == 0, res.output
    c = json.loads(res.output)["cascade"]
    train_items = sum(1 for line in gzip.decompress(sample(ARC_TRAIN).read_bytes()).splitlines() if line.strip())
    [part] = c["chosen"]["chains"]
    assert part["items"] == json.loads(res.output)["items"] and part["items"] < train_items
