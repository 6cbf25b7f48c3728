import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierroute.evaluation.commands import _print_heldout_routing, eval_command, train_command

from tests.outcome_samples import ARC_TEST, ARC_TRAIN, GSM8K, MMLU, sample, write_sample


@pytest.fixture(scope="module")
def arc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("arc")
    return write_sample(ARC_TRAIN, d / "train.jsonl", 300), write_sample(ARC_TEST, d / "test.jsonl", 150)


def test_train_then_eval_many_models(arc: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = arc
    router = tmp_path / "r.npz"
    res = CliRunner().invoke(train_command, ["--data", str(train), "--out", str(router), "--bits", "12", "--fast",
                                             "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["items"] == 300 and router.stat().st_size == summary["bytes"]
    dec, plot = tmp_path / "d.jsonl", tmp_path / "p.png"
    res = CliRunner().invoke(eval_command, ["--router", str(router), "--data", str(test), "--json",
                                            "--decisions", str(dec), "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output)
    cq = metrics["cost_quality"]
    assert cq["aiq_oracle"] >= cq["aiq_zero"] > 0.5
    lo, hi = cq["intervals"]["gap_closed"]  # bootstrap intervals by default, 1,000 resamples of the items
    assert lo <= cq["gap_closed"] <= hi and metrics["bootstrap"]["resamples"] == 1000
    points = cq["at_model_costs"]  # the cost-quality points: every curve at each single model's cost
    assert list(points) == sorted(points, key=lambda m: points[m]["cost"]) and len(points) == 11
    for row in points.values():  # the zero router is at least each model alone, the oracle at least the zero router
        assert row["zero"] >= row["quality"] - 1e-12 and row["oracle"] >= row["zero"] - 1e-12
    assert {"router", "zero", "oracle"} == set(cq["curves"]) and cq["curves"]["zero"][0][0] == min(
        row["cost"] for row in points.values())
    text = CliRunner().invoke(eval_command, ["--router", str(router), "--data", str(test), "--resamples", "0"])
    assert "quality at each model's cost" in text.output
    rows = [json.loads(line) for line in dec.read_text().splitlines()]
    assert len(rows) == 150 and {"id", "chosen", "router_score", "chosen_at"} <= set(rows[0])
    assert plot.stat().st_size > 1000


def test_cv_two_models_beats_random() -> None:
    data = sample(MMLU)  # 1,000 items of all 57 subjects, read from gzip as it is
    res = CliRunner().invoke(eval_command, ["--cv", "5", "--fast", "--bits", "12", "--data", str(data)])
    assert res.exit_code == 0, res.output
    assert "APGR" in res.output and "CPT(50%)" in res.output
    apgr = float(res.output.split("APGR ")[1].split()[0])
    assert apgr > 0.55
    lo, hi = map(float, res.output.split("resamples of the items): APGR ")[1].split(",")[0].split(".."))
    assert 0.5 < lo < apgr < hi  # better than random routing beyond the bootstrap's doubt
    for k in range(5):  # what each fold's router chose, one line each (--fast: tf, C=1, nothing else)
        assert f"trained (fold {k}): tf, C=1 (" in res.output


def test_resamples_zero_skips_the_intervals(arc: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = arc
    res = CliRunner().invoke(eval_command, ["--train", str(train), "--data", str(test), "--fast", "--bits", "12",
                                            "--json", "--resamples", "0"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output)
    assert "intervals" not in metrics["cost_quality"] and "bootstrap" not in metrics
    res = CliRunner().invoke(eval_command, ["--train", str(train), "--data", str(test), "--resamples", "-1"])
    assert res.exit_code == 2 and "--resamples" in res.output


def test_bad_data_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    res = CliRunner().invoke(train_command, ["--data", str(bad), "--out", str(tmp_path / "r.npz")])
    assert res.exit_code != 0 and "bad.jsonl:1: id:" in res.output


def test_eval_needs_exactly_one_mode(arc: tuple[Path, Path]) -> None:
    res = CliRunner().invoke(eval_command, ["--data", str(arc[1])])
    assert res.exit_code != 0 and "exactly one of" in res.output


def test_cv_without_fold_fields_hashes_ids_and_says_so(arc: tuple[Path, Path]) -> None:
    res = CliRunner().invoke(eval_command, ["--cv", "3", "--fast", "--bits", "12", "--data", str(arc[1])])
    assert res.exit_code == 0, res.output
    assert "no item has a 'fold' field: 3 folds from a stable hash of each id" in res.output
    assert "gap closed" in res.output
    train, test = arc
    res = CliRunner().invoke(eval_command, ["--train", str(train), "--data", str(test), "--bits", "12", "--json"])
    assert res.exit_code == 0, res.output
    (trained,) = json.loads(res.output)["training"]  # the full search: what inner CV chose, in the report
    assert trained["router"] == "train split" and trained["weighting"] in ("tf", "idf")
    assert trained["c"] in (0.3, 0.5, 1.0) and 0 < trained["shrink"] <= 1 and trained["seconds"] > 0


def test_train_reports_auxiliary_targets_and_can_skip_them(tmp_path: Path) -> None:
    """GSM8K records both models' answers: training tries their lengths, and says whether it kept them."""
    data = str(sample(GSM8K))  # 500 items
    args = ["--data", data, "--out", str(tmp_path / "r.npz"), "--bits", "13", "--json", "--quiet"]
    res = CliRunner().invoke(train_command, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert 0.55 < summary["heldout_routing"]["apgr"] < 0.8  # out of fold, GSM8K's signal
    assert summary["auxiliary_targets"] == ["answer length: gpt-4-1106-preview",
                                            "answer length: mistralai/Mixtral-8x7B-Instruct-v0.1"]
    res = CliRunner().invoke(train_command, [*args, "--no-auxiliary"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["auxiliary_targets"] == []
    res = CliRunner().invoke(train_command, [a for a in args if a != "--json"])  # the text summary
    assert res.exit_code == 0, res.output
    assert ("auxiliary targets (training only, folded into the linear stage): answer length "
            "(gpt-4-1106-preview, mistralai/Mixtral-8x7B-Instruct-v0.1)") in res.output
    assert "held out, inner CV (optimistic" in res.output and "APGR 0." in res.output


def test_train_says_when_routing_does_not_pay(capsys: pytest.CaptureFixture[str]) -> None:
    """The held-out summary and its note, for figures that show no gain (many models, and two)."""
    _print_heldout_routing({"aiq_router": 0.90, "aiq_zero": 0.91, "aiq_oracle": 0.98, "gap_closed": -0.14,
                            "min_margin_over_zero": -0.02})
    out = capsys.readouterr()
    assert "gap closed -14.0%" in out.out and "does not beat the best fixed mix of models" in out.err
    _print_heldout_routing({"apgr": 0.49, "cpt50": 0.51})
    assert "no better than chance" in capsys.readouterr().err
    _print_heldout_routing({"apgr": 0.7, "cpt50": 0.25})
    _print_heldout_routing({})  # no routing curve (no costs, or one model): nothing to say
    assert capsys.readouterr().err == ""


def test_a_missing_cost_is_priced_and_reported_not_dropped(arc: tuple[Path, Path], tmp_path: Path) -> None:
    _, test = arc
    rows = [json.loads(line) for line in test.read_text().splitlines()]
    del rows[3]["outcomes"]["claude-v1"]["cost"]
    gap = tmp_path / "gap.jsonl"
    gap.write_text("".join(json.dumps(row) + "\n" for row in rows))
    res = CliRunner().invoke(eval_command, ["--cv", "3", "--fast", "--bits", "12", "--data", str(gap),
                                            "--resamples", "0"])
    assert res.exit_code == 0, res.output
    assert f"note: 1 of 1650 scores have no recorded cost (first: {gap}:4, 'claude-v1')" in res.output
    assert "gap closed" in res.output  # the cost figures are still there


def test_eval_says_when_test_items_were_trained_on(arc: tuple[Path, Path]) -> None:
    train, _ = arc
    res = CliRunner().invoke(eval_command, ["--train", str(train), "--data", str(train), "--fast", "--bits", "12",
                                            "--resamples", "0"])
    assert res.exit_code == 0, res.output
    assert "note: 300 of the 300 evaluated items are also in the training data" in res.output


def test_split_trains_on_train_items_and_judges_test_items(arc: tuple[Path, Path], tmp_path: Path) -> None:
    """One file carrying RouterBench's fixed split gives what the two split files give."""
    train, test = arc
    both = tmp_path / "both.jsonl"
    both.write_text(train.read_text() + test.read_text())
    common = ["--fast", "--bits", "12", "--json", "--resamples", "0"]
    split = CliRunner().invoke(eval_command, ["--split", "--data", str(both), "--decisions", str(tmp_path / "a.jsonl"),
                                              *common])
    files = CliRunner().invoke(eval_command, ["--train", str(train), "--data", str(test), *common])
    assert split.exit_code == 0 and files.exit_code == 0, split.output + files.output
    a, b = json.loads(split.output), json.loads(files.output)
    assert a["items"] == 150 and a["cost_quality"] == b["cost_quality"]
    res = CliRunner().invoke(eval_command, ["--split", "--data", str(test), "--fast"])
    assert res.exit_code == 1 and "the data has 0 train and 150 test items; it needs both" in res.output
    router = tmp_path / "r.npz"
    res = CliRunner().invoke(train_command, ["--data", str(both), "--split", "train", "--out", str(router), "--fast",
                                             "--bits", "12", "--json", "--quiet"])
    assert res.exit_code == 0 and json.loads(res.output)["items"] == 300, res.output
    replayed = CliRunner().invoke(eval_command, ["--router", str(router), "--data", str(test), "--json",
                                                 "--resamples", "0", "--decisions", str(tmp_path / "b.jsonl")])
    # The same router as eval --split's, up to the router file's float16 weights (a router trained on other
    # items predicts differently by tenths): each prediction within 1e-4, the same choice for every item.
    assert json.loads(replayed.output)["cost_quality"]["gap_closed"] == pytest.approx(
        a["cost_quality"]["gap_closed"], abs=1e-3)
    in_memory, from_file = ([json.loads(line) for line in (tmp_path / f).read_text().splitlines()]
                            for f in ("a.jsonl", "b.jsonl"))
    assert [row["chosen"] for row in in_memory] == [row["chosen"] for row in from_file]
    for x, y in zip(in_memory, from_file):
        assert x["id"] == y["id"] and x["predicted"] == pytest.approx(y["predicted"], abs=1e-4)
    res = CliRunner().invoke(train_command, ["--data", str(both), "--split", "dev", "--out", str(router)])
    assert res.exit_code == 1 and "no item has split 'dev'; the data has 'test', 'train'" in res.output
    rows = [json.loads(line) for line in both.read_text().splitlines()]
    del rows[7]["split"]
    gap = tmp_path / "gap.jsonl"
    gap.write_text("".join(json.dumps(row) + "\n" for row in rows))
    res = CliRunner().invoke(eval_command, ["--split", "--data", str(gap), "--fast"])
    assert res.exit_code == 1 and f"found (none) (first: item {rows[7]['id']!r})" in res.output


def test_goals_that_cannot_be_met_are_said(arc: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = arc
    out = ["--out", str(tmp_path / "r.npz"), "--fast", "--bits", "12"]
    res = CliRunner().invoke(train_command, ["--data", str(train), *out, "--goal", "cost=0.000001"])
    assert res.exit_code == 0, res.output
    assert "note: goal cost=1e-06 is out of reach: the cheapest setting costs" in res.output
    res = CliRunner().invoke(train_command, ["--data", str(train), *out, "--goal", "quality=0.9"])
    assert res.exit_code == 0 and "out of reach" not in res.output
    gsm8k = write_sample(GSM8K, tmp_path / "g.jsonl", 200)  # no recorded costs
    res = CliRunner().invoke(train_command, ["--data", str(gsm8k), *out, "--goal", "cost=0.5"])
    assert res.exit_code == 1 and "--goal cost=0.5: the data records no costs" in res.output


def test_project_judges_two_of_many_models_under_the_training_names(tmp_path: Path) -> None:
    """Train on RouteLLM's pair, judge on ARC's eleven models projected onto that pair (Mixtral renamed)."""
    train = write_sample(GSM8K, tmp_path / "gsm8k.jsonl", 200)
    mixtral = "mistralai/mixtral-8x7b-chat=mistralai/Mixtral-8x7B-Instruct-v0.1"
    args = ["--train", str(train), "--data", str(sample(ARC_TEST)), "--fast", "--bits", "12", "--resamples", "0",
            "--json", "--project", "gpt-4-1106-preview", "--project", mixtral]
    res = CliRunner().invoke(eval_command, args)
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output)
    assert metrics["items"] == 150
    assert metrics["models"] == ["gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"]
    assert 0.0 <= metrics["two_model"]["apgr"] <= 1.0
    without = CliRunner().invoke(eval_command, args[:-4])  # the router knows 2 of the 11 models: refused
    assert without.exit_code != 0 and "not trained on" in without.output
    wrong = CliRunner().invoke(eval_command, args[:-1] + ["nope=x"])
    assert wrong.exit_code != 0 and "['nope'] not in the data's models" in wrong.output


def test_eval_across_benchmarks_reports_unfamiliar_prompts_and_can_turn_the_guard_off(tmp_path: Path) -> None:
    """Trained on GSM8K, MMLU's questions are mostly unfamiliar; --no-familiarity trusts every prompt's n-grams."""
    args = ["--train", str(sample(GSM8K)), "--data", str(sample(MMLU)), "--fast", "--bits", "12", "--resamples", "0"]
    res = CliRunner().invoke(eval_command, args + ["--json"])
    assert res.exit_code == 0, res.output
    familiarity = json.loads(res.output)["familiarity"]
    assert familiarity["unfamiliar_share"] > 0.3 and familiarity["mean_trust"] < 0.9
    text = CliRunner().invoke(eval_command, args)
    assert "familiarity: " in text.output and "structure features were used" in text.output
    off = CliRunner().invoke(eval_command, args + ["--json", "--no-familiarity"])
    assert off.exit_code == 0, off.output
    assert "familiarity" not in json.loads(off.output)
    router = tmp_path / "r.npz"
    trained = CliRunner().invoke(train_command, ["--data", str(sample(GSM8K)), "--out", str(router), "--fast",
                                                 "--bits", "12", "--json", "--no-familiarity"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)["familiarity"] is None
