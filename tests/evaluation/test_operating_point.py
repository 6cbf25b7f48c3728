"""The deployed operating point: chosen on out-of-fold cost and quality with prices in view, never below the zero
router (the best mix of single models) out of fold, and decided by the gateway exactly as evaluation replays it."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("sklearn")

from tierroute._exceptions import ConfigError
from tierroute.evaluation.commands import eval_command, train_command
from tierroute.evaluation.data import load_outcomes
from tierroute.evaluation.metrics import LAMBDA_SWEEP
from tierroute.evaluation.operating_point import _routed, choose_operating_point, zero_hull, zero_mix_at
from tierroute.evaluation.replay import choose, replay_artifact, report
from tierroute.evaluation.train import train_router
from tierroute.policies.artifact import ArtifactError, load_artifact, save_artifact
from tierroute.policies.calibration import Goal
from tierroute.policies.learned import build_learned_policy
from tierroute.policies.objective import Objective, choose_many, mix_choice
from tierroute.types import ModelSpec, RequestFeatures, StateSnapshot

MODELS = ("c", "m", "d")
RATES = np.array([0.70, 0.85, 0.90])
PRICE = np.array([1.0, 2.0, 20.0])
FAST = {"bits": 12, "c_grid": (1.0,), "weightings": ("tf",), "second_stage": False, "auxiliary": False}


def _misleading(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three models on the zero router's hull (c - m - d) and predictions that split items between c and d for
    no reason: every routed setting mixes around m, below the hull."""
    rng = np.random.default_rng(seed)
    scores = (rng.random((n, 3)) < RATES).astype(float)
    pred = np.tile(RATES, (n, 1))
    half = rng.random(n) < 0.5
    pred[half, 0] += 0.3
    pred[~half, 2] += 0.3
    return pred, scores, np.broadcast_to(PRICE, (n, 3)).copy()


@pytest.mark.parametrize("goal", ["quality=0.95", "cost=5", "lambda=0.05", "strong_share=0.3"])
def test_when_no_routed_setting_beats_the_zero_router_its_mix_is_served(goal: str) -> None:
    pred, scores, costs = _misleading()
    single_cost, single_quality = costs.mean(axis=0), scores.mean(axis=0)
    hull = zero_hull(single_cost, single_quality)
    assert hull == [0, 1, 2]
    settings = [_routed(Objective("lambda", float(k)), pred, scores, costs, PRICE, hull, single_cost, 2)
                for k in LAMBDA_SWEEP]
    assert min(s.margin for s in settings) < -0.05  # deploying a routed setting here would lose to not routing
    objective, achieved = choose_operating_point(pred, scores, costs, PRICE, MODELS, Goal.parse(goal), priced=True)
    assert objective.mode == "mix" and not achieved["routed"] and achieved["settings_beating_zero"] == 0
    assert achieved["met"] and achieved["margin_over_zero"] == 0.0
    assert len(objective.models) == 2 and 0 < objective.value < 1  # a two-model mix on the hull
    columns, share = zero_mix_at(hull, single_cost, achieved["cost"])
    assert objective.models == tuple(MODELS[j] for j in columns) and objective.value == pytest.approx(share)
    if goal.startswith("quality"):  # the cheapest mix reaching 95% of the best model's quality (1% share steps)
        assert 0.95 * single_quality.max() <= achieved["quality"] < 0.95 * single_quality.max() + 0.002
    elif goal.startswith("cost"):
        assert 4.8 <= achieved["cost"] <= 5.0


def test_informative_predictions_route_and_beat_the_zero_router() -> None:
    rng = np.random.default_rng(1)
    _, scores, costs = _misleading()
    pred = np.clip(0.6 * scores + 0.2 + rng.normal(0, 0.05, scores.shape), 0, 1)
    for goal in ("quality=0.95", "cost=5", "lambda=0.05"):
        objective, achieved = choose_operating_point(pred, scores, costs, PRICE, MODELS, Goal.parse(goal), priced=True)
        assert objective.mode == "lambda" and achieved["routed"] and achieved["margin_over_zero"] > 0.1, goal
    objective, _ = choose_operating_point(pred, scores, costs, PRICE, MODELS, Goal.parse("lambda=0.05"), priced=True)
    assert objective.value == 0.05  # the lambda the user asked for, when it beats the zero router


def test_goal_parsing_accepts_lambda_and_refuses_nonsense() -> None:
    assert Goal.parse("lambda=0.3") == Goal("lambda", 0.3)
    for bad in ("lambda=-1", "lambda=x", "speed=1", "quality=2"):
        with pytest.raises(ValueError):
            Goal.parse(bad)


def _write(path: Path, n: int, seed: int, signal: bool = True) -> Path:
    """Maths and poem prompts; the cheap model fails maths, the dear one does both. Costs vary per item."""
    rng = np.random.default_rng(seed)
    words = ["rain", "sea", "stone", "light", "wind", "snow", "fire", "moss"]
    lines = []
    for i in range(n):
        maths = bool(rng.random() < 0.5)
        text = (f"solve the integral of x^{i % 7} times {words[i % 8]} step by step" if maths
                else f"write a short poem about {words[i % 8]} and {words[(i * 3) % 8]}")
        if not signal:
            text = " ".join(rng.choice(words, 6))
        chance = {"c": 0.2 if maths else 0.95, "m": 0.6 if maths else 0.95, "d": 0.95}
        if not signal:
            chance = {"c": 0.9, "m": 0.7, "d": 0.8}
        size = 1.0 + rng.random()
        outcomes = {m: {"score": float(rng.random() < chance[m]), "cost": float(p * size * 1e-3)}
                    for m, p in zip(MODELS, PRICE)}
        lines.append(json.dumps({"id": f"q{seed}-{i}", "dataset": "gen", "messages": [{"role": "user", "content": text}],
                                 "outcomes": outcomes}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("op")
    train, test = _write(d / "train.jsonl", 400, 0), _write(d / "test.jsonl", 200, 1)
    artifact, _ = train_router(load_outcomes(train), **FAST)
    assert artifact.objective.mode == "lambda"  # routing pays on this data: a routed setting is deployed
    save_artifact(artifact, d / "router.npz")
    return d / "router.npz", test


CATALOG = [ModelSpec(m, "p", m, 128000, 8192, 1.0, 1.0) for m in MODELS]  # catalog prices all alike


def _gateway_choices(policy, data) -> list[str]:  # type: ignore[no-untyped-def]
    return [policy.decide(RequestFeatures("auto", 50, None, it.messages[-1]["content"]), CATALOG,
                          StateSnapshot()).chosen.model.id for it in data.items]


def test_the_gateway_decides_as_evaluation_replays(trained: tuple[Path, Path]) -> None:
    router, test = trained
    data = load_outcomes(test)
    artifact = load_artifact(router)
    replayed = [data.models[j] for j in replay_artifact(artifact, data).deployed]
    # Recorded prices (the default for a router trained on priced data): each model at its mean recorded cost,
    # weighed against the dearest one's, as `train` calibrated and `eval` replays, whatever the catalog says.
    policy = build_learned_policy({"artifact": str(router)}, CATALOG)
    assert _gateway_choices(policy, data) == replayed
    assert {"c", "d"} <= set(replayed)  # it routes: the cheap model for poems, the dear one for maths
    # Catalog prices: here every model costs the same, so the gateway buys the best predicted model everywhere.
    catalog_priced = _gateway_choices(build_learned_policy({"artifact": str(router), "prices": "catalog"}, CATALOG), data)
    assert catalog_priced != replayed
    assert catalog_priced.count("d") > replayed.count("d")
    # Only some candidates in a request: the lambda keeps its meaning, cost relative to the dearest recorded cost
    # (not to the dearest candidate's), as if the others were predicted useless.
    pred = replay_artifact(artifact, data).pred.copy()
    pred[:, data.models.index("d")] = -1.0
    costs = np.array([artifact.mean_costs[m] for m in data.models])
    expected = [data.models[j] for j in choose_many(pred, costs, artifact.objective)]
    two = [m for m in CATALOG if m.id != "d"]
    assert [policy.decide(RequestFeatures("auto", 50, None, it.messages[-1]["content"]), two,
                          StateSnapshot()).chosen.model.id for it in data.items] == expected


def test_a_served_mix_splits_requests_as_evaluation_replays(trained: tuple[Path, Path], tmp_path: Path) -> None:
    router, test = trained
    data = load_outcomes(test)
    artifact = replace(load_artifact(router), objective=Objective("mix", 0.3, ("m", "d")))
    save_artifact(artifact, tmp_path / "mix.npz")
    loaded = load_artifact(tmp_path / "mix.npz")
    assert loaded.objective == artifact.objective
    replayed = [data.models[j] for j in replay_artifact(loaded, data).deployed]
    assert 0.15 < replayed.count("d") / len(replayed) < 0.45 and set(replayed) == {"m", "d"}
    policy = build_learned_policy({"artifact": str(tmp_path / "mix.npz")}, CATALOG)
    decision = policy.decide(RequestFeatures("auto", 50, None, "hello"), CATALOG, StateSnapshot())
    assert [r.model.id for r in decision.ranked][:2] in (["m", "d"], ["d", "m"]) and "no routing" in decision.reason
    assert _gateway_choices(policy, data) == replayed
    assert mix_choice(artifact.objective, "hello") == decision.chosen.model.id
    # The mix survives a model_map, and a served model the catalog lacks is refused at start-up.
    renamed = [replace(m, id=f"x-{m.id}") for m in CATALOG]
    mapped = build_learned_policy({"artifact": str(tmp_path / "mix.npz"),
                                   "model_map": {m: f"x-{m}" for m in MODELS}}, renamed)
    assert mapped.objective.models == ("x-m", "x-d")
    with pytest.raises(ConfigError) as exc:
        build_learned_policy({"artifact": str(tmp_path / "mix.npz")}, [m for m in CATALOG if m.id != "d"])
    assert exc.value.param == "router.options.model_map" and "'d'" in exc.value.message


def test_malformed_mix_and_price_options_are_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    router, _ = trained
    save_artifact(replace(load_artifact(router), objective=Objective("mix", 0.5, ("m", "nope"))), tmp_path / "bad.npz")
    with pytest.raises(ArtifactError, match="not one or two of the router's models"):
        load_artifact(tmp_path / "bad.npz")
    with pytest.raises(ConfigError) as exc:
        build_learned_policy({"prices": "recorded"}, CATALOG)
    assert exc.value.param == "router.options.prices"
    save_artifact(replace(load_artifact(router), mean_costs={}), tmp_path / "unpriced.npz")
    with pytest.raises(ConfigError) as exc:
        build_learned_policy({"artifact": str(tmp_path / "unpriced.npz"), "prices": "recorded"}, CATALOG)
    assert exc.value.param == "router.options.prices" and "records no costs" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        build_learned_policy({"artifact": str(router), "prices": "list"}, CATALOG)
    assert exc.value.param == "router.options.prices"


def test_eval_reports_the_deployed_point_against_the_zero_router(trained: tuple[Path, Path]) -> None:
    router, test = trained
    res = CliRunner().invoke(eval_command, ["--router", str(router), "--data", str(test), "--json", "--resamples", "200"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)
    op = m["operating_point"]
    assert op["margin_over_zero"] == pytest.approx(op["quality"] - op["zero_at_cost"])
    assert op["margin_over_zero"] > 0 and op["objective"]["text"].startswith("lambda=")
    lo, hi = op["intervals"]["margin_over_zero"]
    assert lo <= op["margin_over_zero"] <= hi
    settings = m["cost_quality"]["settings"]
    assert len(settings["points"]) == len(LAMBDA_SWEEP)  # every setting, not only the hull
    assert settings["worst_margin"] == min(p["margin"] for p in settings["points"])
    text = CliRunner().invoke(eval_command, ["--router", str(router), "--data", str(test), "--resamples", "0"]).output
    assert "deployed operating point (lambda=" in text and "every setting (" in text


def test_train_says_when_routing_does_not_pay_and_serves_the_zero_router(tmp_path: Path) -> None:
    path = _write(tmp_path / "noise.jsonl", 300, 2, signal=False)
    out = tmp_path / "r.npz"
    res = CliRunner().invoke(train_command, ["--data", str(path), "--out", str(out), "--bits", "12", "--fast", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["objective"]["mode"] == "mix" and summary["heldout_operating_point"]["routed"] is False
    assert any("zero router" in note and "serves no routing" in note for note in summary["notes"])
    data, artifact = load_outcomes(path), load_artifact(out)
    served = {data.models[j] for j in choose(artifact.objective, np.zeros_like(data.scores), np.ones(3), data)}
    assert artifact.heldout["notes"] == summary["notes"]  # the router file says so too
    assert served == set(artifact.objective.models)
    res = CliRunner().invoke(train_command, ["--data", str(path), "--out", str(out), "--bits", "12", "--fast",
                                             "--goal", "lambda=0.2"])
    assert res.exit_code == 0, res.output
    assert "operating point for lambda=0.2:" in res.output


def test_a_cv_evaluation_scores_each_fold_at_its_own_operating_point(tmp_path: Path) -> None:
    data = load_outcomes(_write(tmp_path / "g.jsonl", 300, 3))
    from tierroute.evaluation.replay import cross_validate

    replay = cross_validate(data, k=3, **FAST)
    metrics = report(replay)
    folds = [t["operating_point"]["deployed"] for t in metrics["training"]]
    assert len(folds) == 3 and metrics["operating_point"]["objective"]["text"] == "per fold: " + "; ".join(folds)
    assert replay.picks is not None and metrics["operating_point"]["margin_over_zero"] > 0
