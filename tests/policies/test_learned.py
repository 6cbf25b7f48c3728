from pathlib import Path

import numpy as np
import pytest

from tierroute._exceptions import ConfigError
from tierroute.evaluation.data import load_outcomes
from tierroute.evaluation.train import train_router
from tierroute.policies.artifact import ArtifactError, RouterArtifact, load_artifact, save_artifact
from tierroute.policies.base import Policy
from tierroute.policies.featurizers import HashingFeaturizer
from tierroute.policies.learned import build_learned_policy
from tierroute.policies.objective import Objective
from tierroute.policies.predictors.linear import LinearPredictor
from tierroute.types import ModelSpec, RequestFeatures, StateSnapshot

from tests.outcome_samples import GSM8K, sample

STRONG = ModelSpec("strong", "p", "strong", 128000, 8192, 10.0, 30.0, quality=0.95)
MID = ModelSpec("mid", "p", "mid", 128000, 8192, 1.0, 3.0, quality=0.85)
WEAK = ModelSpec("weak", "p", "weak", 128000, 8192, 0.1, 0.3, quality=0.70)
CATALOG = [STRONG, MID, WEAK]
EASY = RequestFeatures("auto", 10, 50, "hi, thanks!")
HARD = RequestFeatures("auto", 400, 512, "Let f(x) = x^3 - 6x^2 + 11x - 6. Find all roots, prove that f has no other real "
                       "roots, and compute the integral of f from 0 to 3. Show that 3*4 = 12 and 2^10 = 1024. " * 3)


def test_default_policy_works_without_training() -> None:
    policy = build_learned_policy({}, CATALOG)
    assert isinstance(policy, Policy)
    easy = policy.decide(EASY, CATALOG, StateSnapshot())
    hard = policy.decide(HARD, CATALOG, StateSnapshot())
    assert easy.chosen.model.id == "weak"
    assert hard.chosen.model.quality > easy.chosen.model.quality
    assert hard.details["difficulty"] > easy.details["difficulty"]
    assert len(hard.details["top"]) == 3 and "predicted_quality" in hard.details["top"][0]


def test_budget_pressure_shifts_cheaper_and_says_so() -> None:
    policy = build_learned_policy({"lambda": 0.1}, CATALOG)
    calm = policy.decide(HARD, CATALOG, StateSnapshot(budget_pressure=0.5))
    pressed = policy.decide(HARD, CATALOG, StateSnapshot(budget_pressure=0.99))
    assert pressed.chosen.expected_cost_usd < calm.chosen.expected_cost_usd
    assert "budget pressure" in pressed.reason and "budget pressure" not in calm.reason


@pytest.mark.parametrize("options,field", [
    ({"lamda": 1}, "router.options.lamda"),
    ({"lambda": -1}, "router.options.lambda"),
    ({"lambda": 0.1, "margin": 0.1}, "router.options"),
    ({"model_map": {"a": "not-in-catalog"}}, "router.options.model_map.a"),
    ({"artifact": "/nonexistent/router.npz"}, "router.options.artifact"),
])
def test_bad_options_name_the_field(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_learned_policy(options, CATALOG)
    assert exc.value.message.startswith(field)


@pytest.fixture(scope="module")
def small_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = load_outcomes(sample(GSM8K))
    artifact, _ = train_router(data.subset(np.arange(400)), bits=12, c_grid=(1.0,), weightings=("idf",))
    path = tmp_path_factory.mktemp("router") / "r.npz"
    save_artifact(artifact, path)
    return path


def test_artifact_round_trip_is_exact(small_router: Path) -> None:
    art = load_artifact(small_router)
    again_path = small_router.with_name("again.npz")
    save_artifact(art, again_path)
    again = load_artifact(again_path)
    idx, vals, dense = art.featurizer.transform("Tom has 3 apples and buys 5 more. How many?")
    assert art.featurizer.idf is not None and np.array_equal(art.featurizer.idf, again.featurizer.idf)
    assert np.array_equal(idx, again.featurizer.transform("Tom has 3 apples and buys 5 more. How many?")[0])
    assert np.allclose(art.predictor.predict(idx, vals, dense), again.predictor.predict(idx, vals, dense))
    assert art.provenance["n_items"] == 400


def test_pickle_or_garbage_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.array([1, 2]))
    with pytest.raises(ArtifactError, match="not a tierroute router"):
        load_artifact(bad)
    (tmp_path / "junk.npz").write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ArtifactError):
        load_artifact(tmp_path / "junk.npz")


def test_trained_policy_maps_models_and_degrades_for_unknown(small_router: Path) -> None:
    mapping = {"gpt-4-1106-preview": "strong", "mistralai/Mixtral-8x7B-Instruct-v0.1": "weak"}
    policy = build_learned_policy({"artifact": str(small_router), "model_map": mapping}, CATALOG)
    both = policy.decide(HARD, [STRONG, WEAK], StateSnapshot())
    assert both.details["trained"] and not both.details["unknown_to_router"]
    mixed = policy.decide(HARD, CATALOG, StateSnapshot())
    assert mixed.details["unknown_to_router"] == ["mid"] and "not in the trained router" in mixed.reason
    only_unknown = policy.decide(HARD, [MID], StateSnapshot())
    assert "no candidate is in the trained router" in only_unknown.reason


def test_a_trained_router_without_the_compiled_kernels_says_so_at_start_up(
        small_router: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    options = {"artifact": str(small_router), "model_map": {"gpt-4-1106-preview": "strong",
                                                            "mistralai/Mixtral-8x7B-Instruct-v0.1": "weak"}}
    monkeypatch.setenv("TIERROUTE_NATIVE", "0")
    with caplog.at_level("WARNING", logger="tierroute.policies"):
        slow = build_learned_policy(options, CATALOG)
    assert "runs on numpy" in caplog.text and "TIERROUTE_NATIVE=0" in caplog.text
    monkeypatch.delenv("TIERROUTE_NATIVE")
    caplog.clear()
    fast = build_learned_policy(options, CATALOG)
    if fast.predictor is not None and getattr(fast.predictor, "_scorer", None) is not None:
        assert "runs on numpy" not in caplog.text
    # Same decision either way.
    for request in (EASY, HARD):
        a, b = slow.decide(request, CATALOG, StateSnapshot()), fast.decide(request, CATALOG, StateSnapshot())
        assert [r.model.id for r in a.ranked] == [r.model.id for r in b.ranked]
        assert [round(r.predicted_quality or 0, 5) for r in a.ranked] == [round(r.predicted_quality or 0, 5) for r in b.ranked]


def test_a_linear_router_predicts_only_the_models_the_catalog_maps(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    featurizer = HashingFeaturizer(bits=10)
    names = ("a", "b", "c", "d")
    full = LinearPredictor(names, rng.normal(size=(featurizer.dim, 4)).astype(np.float32),
                           rng.normal(size=(featurizer.n_dense, 4)).astype(np.float32), rng.normal(size=4),
                           np.ones(4), np.zeros(4))
    path = tmp_path / "four.npz"
    save_artifact(RouterArtifact(featurizer, full, Objective("lambda", 0.3)), path)
    policy = build_learned_policy({"artifact": str(path), "model_map": {"d": "strong", "b": "weak"}}, CATALOG)
    assert policy.predictor is not None and policy.predictor.models == ("b", "d")  # artifact order, mapped only
    decision = policy.decide(HARD, CATALOG, StateSnapshot())
    predicted = {r.model.id: r.predicted_quality for r in decision.ranked}
    expected = load_artifact(path).predictor.predict(*featurizer.transform(HARD.text))  # float16 weights, as stored
    assert predicted["strong"] == pytest.approx(expected[3], abs=1e-6)
    assert predicted["weak"] == pytest.approx(expected[1], abs=1e-6)
    assert np.allclose(full.select([3, 1]).predict(*featurizer.transform(EASY.text)),
                       full.predict(*featurizer.transform(EASY.text))[[3, 1]])
