"""Logged traffic: each request scored only for the model that answered it (what `tierroute export` writes)."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("sklearn")

from tierroute.evaluation.commands import eval_command, train_command
from tierroute.evaluation.data import OutcomeDataError, load_outcomes
from tierroute.evaluation.replay import replay_artifact, report
from tierroute.evaluation.train import train_router
from tierroute.policies.featurizers import HashingFeaturizer

PRICE = {"small": 0.001, "large": 0.01}


def _traffic(path: Path, n: int = 400, seed: int = 0) -> Path:
    """The small model answers poems well and maths badly; the large one both. Each request went to one."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        maths = i % 2 == 0
        text = f"solve the integral of x^{i % 7} dx step by step" if maths else f"write a short poem about rain {i}"
        model = "small" if rng.random() < 0.5 else "large"
        chance = 0.95 if model == "large" else (0.2 if maths else 0.9)
        lines.append(json.dumps({"id": f"r{i}", "dataset": "traffic", "messages": [{"role": "user", "content": text}],
                                 "outcomes": {model: {"score": float(rng.random() < chance), "cost": PRICE[model]}}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_partial_outcomes_load_as_missing_scores(tmp_path: Path) -> None:
    path = _traffic(tmp_path / "t.jsonl", n=20)
    data = load_outcomes(path, partial=True)
    assert set(data.models) == {"small", "large"} and not data.complete
    assert (data.observed.sum(axis=1) == 1).all() and np.isnan(data.scores[~data.observed]).all()
    with pytest.raises(OutcomeDataError, match="logged traffic"):
        load_outcomes(path)  # evaluation needs every model's score on each item, and says so


def test_training_on_traffic_learns_where_the_cheap_model_fails(tmp_path: Path) -> None:
    data = load_outcomes(_traffic(tmp_path / "t.jsonl"), partial=True)
    artifact, rep = train_router(data, bits=12)
    assert artifact.heldout["partial"] is True and not rep.second_stage and rep.auxiliary == ()
    assert artifact.mean_costs == pytest.approx(PRICE)  # each model's cost where it answered
    featurizer: HashingFeaturizer = artifact.featurizer
    small = artifact.predictor.models.index("small")
    maths = artifact.predictor.predict(*featurizer.transform("solve the integral of x^3 dx step by step"))
    poem = artifact.predictor.predict(*featurizer.transform("write a short poem about rain 999"))
    assert maths[small] < 0.5 < poem[small]
    for m, figures in rep.calibration.items():
        assert 0 < figures["items"] < len(data) and figures["brier"] < 0.25, m


def test_train_and_eval_commands_on_traffic(tmp_path: Path) -> None:
    path = _traffic(tmp_path / "t.jsonl")
    res = CliRunner().invoke(train_command, ["--data", str(path), "--out", str(tmp_path / "r.npz"), "--bits", "12"])
    assert res.exit_code == 0, res.output
    assert "lack some model's score (logged traffic)" in res.output
    res = CliRunner().invoke(eval_command, ["--cv", "5", "--data", str(path)])
    assert res.exit_code != 0 and "logged traffic" in res.output and "t.jsonl:" in res.output


def test_too_few_items_is_a_clean_error(tmp_path: Path) -> None:
    path = _traffic(tmp_path / "t.jsonl", n=3)
    res = CliRunner().invoke(train_command, ["--data", str(path), "--out", str(tmp_path / "r.npz")])
    assert res.exit_code != 0 and "3 items: training needs at least 10" in res.output


def test_train_on_traffic_then_evaluate_on_a_fully_scored_sample(tmp_path: Path) -> None:
    """Logged traffic to train on, a sample scored by every model to judge on: `eval --train T --data S`."""
    traffic = _traffic(tmp_path / "t.jsonl")
    rng = np.random.default_rng(7)
    lines = []
    for i in range(200):
        maths = i % 2 == 0
        text = f"solve the integral of x^{i % 5} dx carefully" if maths else f"write a haiku poem about snow {i}"
        lines.append(json.dumps({"id": f"s{i}", "messages": [{"role": "user", "content": text}], "outcomes": {
            "small": {"score": float(rng.random() < (0.2 if maths else 0.9)), "cost": PRICE["small"]},
            "large": {"score": float(rng.random() < 0.95), "cost": PRICE["large"]}}}))
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(eval_command, ["--train", str(traffic), "--data", str(sample), "--bits", "12", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{"):])["two_model"]["apgr"] > 0.6  # maths to large, poems to small
    with pytest.raises(OutcomeDataError, match="lack some model's score"):
        report(replay_artifact(train_router(load_outcomes(traffic, partial=True), bits=12)[0],
                               load_outcomes(traffic, partial=True)))
