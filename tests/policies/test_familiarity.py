"""A trained router trusts a prompt's n-grams only as far as the prompt resembles its training prompts
(``policies.familiarity``, ``predictors.guarded``); routers written before that load and route as they did."""

from pathlib import Path

import numpy as np
import pytest

from tierroute.evaluation.data import load_outcomes
from tierroute.evaluation.replay import predict_with_trust
from tierroute.evaluation.train import item_text, train_router
from tierroute.policies.artifact import ArtifactError, load_artifact, save_artifact
from tierroute.policies.familiarity import Familiarity, fit_familiarity, prototypes
from tierroute.policies.learned import build_learned_policy
from tierroute.policies.predictors.guarded import GuardedPredictor
from tierroute.policies.predictors.linear import LinearPredictor
from tierroute.types import ModelSpec, RequestFeatures, StateSnapshot

from tests.outcome_samples import GSM8K, MMLU, sample

OLD_ROUTER = Path(__file__).resolve().parents[1] / "fixtures" / "routers" / "pre-familiarity-linear.npz"
GPT4, MIXTRAL = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
CATALOG = [ModelSpec("gpt-4", "p", "gpt-4", 128000, 8192, 10.0, 30.0, quality=0.9),
           ModelSpec("mixtral", "p", "mixtral", 32768, 4096, 0.6, 0.6, quality=0.7)]
MAP = {"model_map": {GPT4: "gpt-4", MIXTRAL: "mixtral"}}
# Nothing like an MMLU question: source code.
FAR = ("def merge(a, b):\n    out = []\n    while a and b:\n        out.append(a.pop(0) if a[0] < b[0] else b.pop(0))\n"
       "    return out + a + b\n\nclass Node:\n    __slots__ = ('left', 'right')\n") * 3
FAST = {"c_grid": (1.0,), "weightings": ("tf",), "second_stage": False, "auxiliary": False, "jobs": 1}


@pytest.fixture(scope="module")
def mmlu() -> tuple:
    data = load_outcomes(sample(MMLU))
    held = np.arange(len(data)) % 5 == 0
    artifact, _ = train_router(data.subset(~held), bits=12, **FAST)
    return artifact, data.subset(held)


def _features(artifact, text: str):
    return artifact.featurizer.transform(text)


def test_familiar_prompts_keep_the_trained_prediction(mmlu: tuple) -> None:
    artifact, held = mmlu
    guarded = artifact.predictor
    assert isinstance(guarded, GuardedPredictor) and isinstance(guarded.inner, LinearPredictor)
    _, trust = predict_with_trust(artifact, held)
    assert trust is not None and np.mean(trust == 1.0) >= 0.8  # unseen MMLU questions: nearly all familiar
    same = 0
    for it, t in zip(held.items, trust):
        idx, vals, dense = _features(artifact, item_text(it.messages))
        if t == 1.0:
            np.testing.assert_array_equal(guarded.predict(idx, vals, dense), guarded.inner.predict(idx, vals, dense))
            same += 1
    assert same >= 0.8 * len(held)


def test_far_prompts_are_predicted_from_their_structure_features(mmlu: tuple) -> None:
    artifact, _ = mmlu
    guarded = artifact.predictor
    idx, vals, dense = _features(artifact, FAR)
    assert guarded.trust(idx, vals) == 0.0
    structure_only = guarded.inner.predict(idx, np.zeros_like(vals), dense)
    np.testing.assert_allclose(guarded.predict(idx, vals, dense), structure_only)
    assert np.abs(guarded.inner.predict(idx, vals, dense) - structure_only).max() > 1e-3  # the n-grams did move it


def test_partly_familiar_prompts_land_between_the_two(mmlu: tuple) -> None:
    artifact, _ = mmlu
    guarded = artifact.predictor
    gsm8k = load_outcomes(sample(GSM8K))
    _, trust = predict_with_trust(artifact, gsm8k)
    assert trust is not None and trust.mean() < 0.97  # word problems are less familiar than MMLU questions
    partial = [it for it, t in zip(gsm8k.items, trust) if 0.0 < t < 1.0]
    assert partial
    for it in partial[:20]:
        idx, vals, dense = _features(artifact, item_text(it.messages))
        full, none = guarded.inner.predict(idx, vals, dense), guarded.inner.predict(idx, 0 * vals, dense)
        mixed = guarded.predict(idx, vals, dense)
        assert np.all(mixed >= np.minimum(full, none) - 1e-12) and np.all(mixed <= np.maximum(full, none) + 1e-12)


def test_saved_router_decides_as_evaluation_replays(mmlu: tuple, tmp_path: Path) -> None:
    artifact, held = mmlu
    path = tmp_path / "router.npz"
    save_artifact(artifact, path)
    loaded = load_artifact(path)
    assert isinstance(loaded.predictor, GuardedPredictor)
    assert loaded.predictor.familiarity.near == artifact.predictor.familiarity.near
    texts = [item_text(it.messages) for it in held.items[:30]] + [FAR]
    x, dense = loaded.featurizer.transform_many(texts)
    np.testing.assert_allclose(loaded.predictor.predict_many(x, dense), artifact.predictor.predict_many(x, dense),
                               atol=1e-4)  # the linear weights are stored as float16
    policy = build_learned_policy({"artifact": str(path), **MAP}, CATALOG)
    column = {m: j for j, m in enumerate(loaded.models)}
    for text, row in zip(texts, loaded.predictor.predict_many(x, dense)):
        decision = policy.decide(RequestFeatures("auto", len(text) // 4, 256, text), CATALOG, StateSnapshot())
        got = {r.model.id: r.predicted_quality for r in decision.ranked}
        assert got["gpt-4"] == pytest.approx(row[column[GPT4]], abs=1e-6)
        assert got["mixtral"] == pytest.approx(row[column[MIXTRAL]], abs=1e-6)


def test_router_written_before_familiarity_loads_and_routes_as_before() -> None:
    """tests/fixtures/routers/pre-familiarity-linear.npz was written by the code before this change (README)."""
    artifact = load_artifact(OLD_ROUTER)
    assert isinstance(artifact.predictor, LinearPredictor)
    policy = build_learned_policy({"artifact": str(OLD_ROUTER), **MAP}, CATALOG)
    idx, vals, dense = artifact.featurizer.transform(FAR)
    expected = dict(zip(artifact.models, artifact.predictor.predict(idx, vals, dense)))
    decision = policy.decide(RequestFeatures("auto", 40, 256, FAR), CATALOG, StateSnapshot())
    got = {r.model.id: r.predicted_quality for r in decision.ranked}
    assert got["gpt-4"] == pytest.approx(expected[GPT4]) and got["mixtral"] == pytest.approx(expected[MIXTRAL])


def test_familiarity_can_be_turned_off() -> None:
    data = load_outcomes(sample(MMLU)).subset(np.arange(300))
    artifact, _ = train_router(data, bits=10, familiarity=False, **FAST)
    assert isinstance(artifact.predictor, LinearPredictor)
    assert artifact.heldout["familiarity"] is None


def test_prototypes_and_thresholds() -> None:
    from scipy import sparse

    rng = np.random.default_rng(0)
    # two clusters of unit rows on disjoint buckets: prototypes find both, and a row of a third is unfamiliar
    rows = np.zeros((60, 40))
    rows[:30, :10] = rng.random((30, 10))
    rows[30:, 10:20] = rng.random((30, 10))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    x = sparse.csr_matrix(rows)
    fam = fit_familiarity(x, np.arange(60) % 3)
    assert fam.far < fam.near
    assert np.all(fam.trust_many(fam.similarity_many(x)) > 0.5)
    other = np.zeros(40)
    other[30:] = 1 / np.sqrt(10)
    assert fam.trust(fam.similarity(np.arange(30, 40), other[30:])) == 0.0
    indices, values = prototypes(x, k=2, keep=10)
    assert indices.shape == (2, 10) and np.allclose(np.linalg.norm(values, axis=1), 1.0, atol=1e-5)


def test_malformed_familiarity_is_refused(mmlu: tuple, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="far"):
        Familiarity(8, np.zeros((1, 2), np.int32), np.ones((1, 2), np.float32), near=0.2, far=0.3)
    with pytest.raises(ValueError, match="outside"):
        Familiarity(8, np.full((1, 2), 9, np.int32), np.ones((1, 2), np.float32), near=0.3, far=0.2)
    artifact, _ = mmlu
    path = tmp_path / "router.npz"
    save_artifact(artifact, path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["p.g.indices"] = arrays["p.g.indices"][:, :3]  # no longer the shape of the values
    np.savez(path, **arrays)
    with pytest.raises(ArtifactError, match="malformed"):
        load_artifact(path)


def test_gateway_predicts_only_the_mapped_models_of_a_guarded_router(tmp_path: Path) -> None:
    """An 11-model router with 2 models in the catalog: the guarded linear predictor is cut to those 2 columns,
    and each decision's predictions are the full router's for them (familiar and unfamiliar prompts alike)."""
    from tests.outcome_samples import ARC_TRAIN

    data = load_outcomes(sample(ARC_TRAIN))
    artifact, _ = train_router(data, bits=10, **FAST)
    path = tmp_path / "arc.npz"
    save_artifact(artifact, path)
    loaded = load_artifact(path)
    assert isinstance(loaded.predictor, GuardedPredictor) and len(loaded.models) == 11
    mapping = {"model_map": {GPT4: "gpt-4", "mistralai/mixtral-8x7b-chat": "mixtral"}}
    policy = build_learned_policy({"artifact": str(path), "lambda": 0.3, **mapping}, CATALOG)  # route, not a mix
    assert isinstance(policy.predictor, GuardedPredictor) and len(policy.predictor.models) == 2
    texts = [item_text(it.messages) for it in data.items[:10]] + [FAR]
    x, dense = loaded.featurizer.transform_many(texts)
    full = loaded.predictor.predict_many(x, dense)
    assert loaded.predictor.trust_many(x)[-1] == 0.0
    for text, row in zip(texts, full):
        decision = policy.decide(RequestFeatures("auto", len(text) // 4, 256, text), CATALOG, StateSnapshot())
        got = {r.model.id: r.predicted_quality for r in decision.ranked}
        assert got["gpt-4"] == pytest.approx(row[loaded.models.index(GPT4)], abs=1e-6)
        assert got["mixtral"] == pytest.approx(row[loaded.models.index("mistralai/mixtral-8x7b-chat")], abs=1e-6)


def test_idf_weighted_router_compares_prompts_before_weighting(tmp_path: Path) -> None:
    """Prototypes are of the unweighted n-gram vectors; an idf-weighted router unweights each prompt to compare."""
    from dataclasses import replace

    data = load_outcomes(sample(MMLU)).subset(np.arange(400))
    artifact, _ = train_router(data, bits=12, **{**FAST, "weightings": ("idf",)})
    assert artifact.featurizer.idf is not None and artifact.predictor.familiarity.idf is not None
    path = tmp_path / "idf.npz"
    save_artifact(artifact, path)
    loaded = load_artifact(path)
    plain = replace(artifact.featurizer, idf=None)
    unbound = artifact.predictor.familiarity.with_idf(None)
    texts = [item_text(it.messages) for it in load_outcomes(sample(GSM8K)).items[:20]] + [FAR]
    misread = 0.0
    for text in texts:
        idx, vals, _ = loaded.featurizer.transform(text)
        pidx, pvals, _ = plain.transform(text)
        expected = unbound.similarity(pidx, pvals)
        assert loaded.predictor.familiarity.similarity(idx, vals) == pytest.approx(expected, abs=1e-4)
        misread = max(misread, abs(unbound.similarity(idx, vals) - expected))
    assert misread > 1e-2  # read as they arrive, idf-weighted prompts would be compared wrongly
    x, _ = loaded.featurizer.transform_many(texts)
    px, _ = plain.transform_many(texts)
    np.testing.assert_allclose(loaded.predictor.familiarity.similarity_many(x), unbound.similarity_many(px), atol=1e-4)
