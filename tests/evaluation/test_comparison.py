import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tierroute.evaluation.commands import compare_command, eval_command, train_command
from tests.outcome_samples import ARC_TEST, ARC_TRAIN, MMLU, sample, write_sample


def _ok(command, args: list[str]) -> str:  # noqa: ANN001
    res = CliRunner().invoke(command, args)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def arc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """ARC train/test heads and a router trained on the first."""
    d = tmp_path_factory.mktemp("arc")
    train = write_sample(ARC_TRAIN, d / "train.jsonl", 300)
    test = write_sample(ARC_TEST, d / "test.jsonl", 150)
    _ok(train_command, ["--data", str(train), "--out", str(d / "r.npz"), "--bits", "12", "--fast", "--quiet"])
    return train, test, d / "r.npz"


def test_a_router_file_and_its_decisions_compare_as_identical(arc: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, test, router = arc
    decisions = tmp_path / "d.jsonl"
    _ok(eval_command, ["--router", str(router), "--data", str(test), "--decisions", str(decisions), "--resamples", "0"])
    result = json.loads(_ok(compare_command, ["--data", str(test), str(router), str(decisions), "--json",
                                              "--resamples", "200"]))
    figures = {row["figure"]: row for row in result["figures"]}
    assert {"aiq_router", "gap_closed", "min_margin_over_zero", "brier"} <= set(figures)
    for row in result["figures"]:  # decisions keep full precision and the prices: eval's figures exactly
        assert row["first"] == row["second"]
        assert row["interval"] is None or row["interval"] == [0.0, 0.0]
    metrics = json.loads(_ok(eval_command, ["--router", str(router), "--data", str(test), "--json"]))
    assert figures["gap_closed"]["first"] == metrics["cost_quality"]["gap_closed"]


def test_a_router_that_ignores_the_prompt_is_worse_and_the_interval_says_so(tmp_path: Path) -> None:
    data = sample(MMLU)
    good = tmp_path / "good.jsonl"
    _ok(eval_command, ["--cv", "5", "--fast", "--bits", "12", "--data", str(data), "--decisions", str(good),
                       "--resamples", "0"])
    rows = [json.loads(line) for line in good.read_text().splitlines()]
    rng = np.random.default_rng(0)
    shuffled = [dict(row, predicted=rows[j]["predicted"]) for row, j in zip(rows, rng.permutation(len(rows)))]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(row) + "\n" for row in shuffled))
    output = _ok(compare_command, ["--data", str(data), str(good), str(bad), "--resamples", "300"])
    assert "second - first (95%)" in output
    apgr = next(line for line in output.splitlines() if line.startswith("APGR"))
    lo, hi = (float(v) for v in apgr.split("(")[1].rstrip(")").split(" .. "))
    assert hi < 0  # shuffled predictions lose APGR, beyond doubt on 1,000 items
    assert "pt (" in next(line for line in output.splitlines() if line.startswith("CPT(50%)"))


def test_decisions_that_do_not_cover_the_data_are_a_clean_error(arc: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, test, router = arc
    decisions = tmp_path / "d.jsonl"
    _ok(eval_command, ["--router", str(router), "--data", str(test), "--decisions", str(decisions), "--resamples", "0"])
    lines = decisions.read_text().splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[1:]) + "\n")
    res = CliRunner().invoke(compare_command, ["--data", str(test), str(router), str(short)])
    first_id = json.loads(lines[0])["id"]
    assert res.exit_code == 1 and "no decision for 1 of 150 items" in res.output and first_id in res.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + "\n{not json\n")
    res = CliRunner().invoke(compare_command, ["--data", str(test), str(router), str(broken)])
    assert res.exit_code == 1 and "broken.jsonl:2: not a decisions line" in res.output
    row = json.loads(lines[0])
    del row["predicted"][next(iter(row["predicted"]))]
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps(row) + "\n")
    res = CliRunner().invoke(compare_command, ["--data", str(test), str(router), str(partial)])
    assert res.exit_code == 1 and "partial.jsonl:1: 'predicted' has no number for" in res.output
