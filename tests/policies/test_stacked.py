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
