"""The second-stage trees: exported arrays reproduce scikit-learn exactly, and survive an artifact round trip."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.ensemble import HistGradientBoostingClassifier

from tierroute.policies.artifact import RouterArtifact, load_artifact, save_artifact
from tierroute.policies.featurizers import HashingFeaturizer
from tierroute.policies.objective import Objective
from tierroute.policies.predictors.linear import LinearPredictor
from tierroute.policies.predictors.stacked import TREE_PARAMS, StackedPredictor, fit_trees


@pytest.fixture(scope="module")
def toy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(800, 5))
    interaction = f[:, 0] + f[:, 1] * f[:, 2] + rng.normal(size=800) > 0  # what a linear stage cannot express
    scores = np.column_stack([interaction, f[:, 3] > 0.3]).astype(float)
    scores[:10, 1] = 0.5  # fractional scores are fitted as weighted copies
    return f, scores


def test_exported_trees_match_sklearn(toy: tuple[np.ndarray, np.ndarray]) -> None:
    f, scores = toy
    trees = fit_trees(f, scores)
    reference = HistGradientBoostingClassifier(**TREE_PARAMS).fit(f, scores[:, 0]).predict_proba(f[:100])[:, 1]
    ours = 1 / (1 + np.exp(-trees.raw_many(f[:100])[:, 0]))
    assert np.allclose(ours, reference, atol=1e-9)
    assert np.allclose(np.array([trees.raw(row) for row in f[:20]]), trees.raw_many(f[:20]))


def test_flat_walk_is_the_3d_walk_exactly(toy: tuple[np.ndarray, np.ndarray]) -> None:
    f, scores = toy
    trees = fit_trees(f, np.column_stack([scores, f[:, 4] > 0]).astype(float))
    m, t, _ = trees.feature.shape
    rows, cols = np.arange(m)[:, None], np.arange(t)[None, :]
    for row in f[:50]:
        node = np.zeros((m, t), dtype=np.int32)
        for _ in range(trees.depth):
            go_left = row[trees.feature[rows, cols, node]] <= trees.threshold[rows, cols, node]
            node = np.where(go_left, trees.left[rows, cols, node], trees.right[rows, cols, node])
        assert np.array_equal(trees.raw(row), trees.baseline + trees.value[rows, cols, node].sum(axis=1))


def test_stacked_artifact_round_trip(toy: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    f, scores = toy
    featurizer = HashingFeaturizer(bits=10)
    n_dense = featurizer.n_dense
    dense = np.zeros((f.shape[0], n_dense), np.float32)
    dense[:, : f.shape[1] - 2] = f[:, 2:]
    logits = f[:, :2]
    first = LinearPredictor(("a", "b"), np.zeros((featurizer.dim, 2), np.float32), np.zeros((n_dense, 2), np.float32),
                            np.zeros(2), np.ones(2), np.zeros(2))
    trees = fit_trees(np.hstack([logits, dense]), scores)
    predictor = StackedPredictor(first, trees)
    path = tmp_path / "stacked.npz"
    save_artifact(RouterArtifact(featurizer, predictor, Objective("margin", 0.1)), path)
    loaded = load_artifact(path).predictor
    assert loaded.kind == "stacked" and loaded.models == ("a", "b")
    idx, vals, d = featurizer.transform("Tom has 3 apples and buys 5 more. How many?")
    assert np.allclose(loaded.predict(idx, vals, d), predictor.predict(idx, vals, d), atol=1e-4)


def test_blended_stacked_round_trip_and_matches_its_parts(toy: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    f, scores = toy
    featurizer = HashingFeaturizer(bits=10)
    rng = np.random.default_rng(1)
    first = LinearPredictor(("a", "b"), rng.normal(size=(featurizer.dim, 2)).astype(np.float32),
                            np.zeros((featurizer.n_dense, 2), np.float32), np.zeros(2), np.array([0.7, 1.2]),
                            np.array([0.1, -0.2]))
    trees = fit_trees(np.hstack([f[:, :2], np.zeros((f.shape[0], featurizer.n_dense))]), scores)
    blended = StackedPredictor(first, trees, 0.5)
    idx, vals, d = featurizer.transform("Tom has 3 apples and buys 5 more. How many?")
    expected = 0.5 * StackedPredictor(first, trees).predict(idx, vals, d) + 0.5 * first.predict(idx, vals, d)
    assert np.allclose(blended.predict(idx, vals, d), expected)
    path = tmp_path / "blended.npz"
    save_artifact(RouterArtifact(featurizer, blended, Objective("margin", 0.1)), path)
    loaded = load_artifact(path).predictor
    assert loaded.blend == 0.5
    assert np.allclose(loaded.predict(idx, vals, d), expected, atol=1e-3)
