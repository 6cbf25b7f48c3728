"""Training on outcome data of every shape the format allows: the inner-CV choice, shrinkage, and CV folds."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from tierroute.evaluation.data import OutcomeDataError, OutcomeItem, OutcomeSet, to_outcome_set
from tierroute.evaluation.replay import cross_validate, cv_folds, report
from tierroute.evaluation.selection import race, routing_metric, routing_score
from tierroute.evaluation.search import RACE_Z
from tierroute.evaluation.train import (
    SHRINK_GRID,
    _shrink,
    _shrunk_predictor,
    train_router,
)
from tierroute.policies.featurizers import HashingFeaturizer
from tierroute.policies.predictors.linear import fit_linear
from tierroute.policies.predictors.stacked import StackedPredictor, fit_trees, stage_two_inputs

TOPICS = ("algebra proof lemma", "poem rhyme verse", "history war treaty", "python code function")


def _data(n: int = 240, *, models: int = 3, costs: bool = True, continuous: bool = False, fold: bool = True,
          seed: int = 0) -> OutcomeSet:
    """Prompts whose topic decides which models get them right, so a router has something to learn."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        topic = i % len(TOPICS)
        hard = topic in (0, 3)
        chance = [0.95, 0.35 if hard else 0.9, 0.2 if hard else 0.8][:models]
        scores = {}
        for j, p in enumerate(chance):
            scores[f"m{j}"] = float(np.clip(p + rng.normal(0, 0.1), 0, 1)) if continuous else float(rng.random() < p)
        price = {f"m{j}": 10.0 ** -j for j in range(models)} if costs else {}
        items.append(OutcomeItem(id=f"q{i}", messages=({"role": "user", "content": f"{TOPICS[topic]} number {i}"},),
                                 scores=scores, costs=price, fold=i % 5 if fold else None))
    return to_outcome_set(items)


def test_routing_metric_follows_the_shape_of_the_data() -> None:
    assert routing_metric(np.zeros((4, 2)), np.full((4, 2), np.nan)) == "apgr"
    assert routing_metric(np.zeros((4, 3)), np.ones((4, 3))) == "aiq"
    assert routing_metric(np.zeros((4, 3)), np.full((4, 3), np.nan)) == "-brier"
    assert routing_metric(np.zeros((4, 1)), np.ones((4, 1))) == "-brier"
    data = _data(models=3)
    perfect = routing_score(data.scores, data.scores, data.costs)[1]
    constant = routing_score(np.broadcast_to(data.scores.mean(axis=0), data.scores.shape), data.scores, data.costs)[1]
    assert perfect > constant


def test_shrink_folds_into_linear_and_stacked_predictors() -> None:
    data = _data(models=3)
    featurizer = HashingFeaturizer(bits=10)
    x, dense = featurizer.transform_many([it.messages[0]["content"] for it in data.items])
    linear = fit_linear(x, dense, data.scores, data.models, c=1.0).with_platt(np.full(3, 0.8), np.full(3, 0.1))
    stacked = StackedPredictor(linear, fit_trees(stage_two_inputs(linear.logits_many(x, dense), dense), data.scores))
    blended = StackedPredictor(linear, stacked.trees, 0.5)
    base = np.array([1.0, -0.5, 0.2])
    for predictor in (linear, stacked):
        for strength in (0.0, 0.5, 1.0):
            expected = _shrink(predictor.predict_many(x, dense), base, strength)
            got = _shrunk_predictor(predictor, base, strength).predict_many(x, dense)
            assert np.allclose(got, expected, atol=1e-6)
    parts = [_shrink(p.predict_many(x, dense), base, 0.5) for p in (stacked, linear)]
    assert np.allclose(_shrunk_predictor(blended, base, 0.5).predict_many(x, dense), 0.5 * parts[0] + 0.5 * parts[1])
    assert np.allclose(_shrink(linear.predict_many(x, dense), base, 0.0), 1 / (1 + np.exp(-base)))


@pytest.mark.parametrize("continuous", [False, True])
def test_many_priced_models_choose_shrink_by_aiq(continuous: bool) -> None:
    data = _data(models=3, continuous=continuous)
    artifact, rep = train_router(data, bits=10, c_grid=(1.0,), weightings=("tf",), second_stage=False)
    assert rep.shrink in SHRINK_GRID
    assert {f"shrink {g:g}" for g in SHRINK_GRID} <= set(rep.cv_table)
    assert "aiq" in rep.cv_table["tf C=1"] and artifact.heldout["shrink"] == rep.shrink
    replay = cross_validate(data, bits=10, c_grid=(1.0,), weightings=("tf",), second_stage=False)
    cq = report(replay)["cost_quality"]
    assert cq["aiq_router"] >= cq["aiq_zero"] - 0.02  # shrink 0 is the zero router, so it cannot fall far below


def test_two_models_choose_by_apgr_and_three_unpriced_by_brier() -> None:
    _, two = train_router(_data(models=2, costs=False), bits=10, c_grid=(0.3, 1.0), weightings=("tf",))
    assert all("apgr" in two.cv_table[f"tf C={c:g}"] for c in (0.3, 1.0)) and two.shrink == 1.0
    # trees, alone and blended, are tried on the linear stage with the best Brier (here they fall so far behind
    # on the first inner fold that the other folds are not fitted: the table says so, with the three Briers)
    tried = {f"tf C={two.c:g} stacked", f"tf C={two.c:g} blend"} <= set(two.cv_table)
    raced = two.cv_table.get(f"tf C={two.c:g} second stage, raced out on inner fold 1", {})
    assert tried or set(raced) == {"brier linear", "brier stacked", "brier blend"}
    _, three = train_router(_data(models=3, costs=False), bits=10, c_grid=(1.0,), weightings=("tf",),
                            second_stage=False)
    assert set(three.cv_table) == {"tf C=1"} and "-brier" in three.cv_table["tf C=1"]


def test_a_single_model_trains_and_replays() -> None:
    data = _data(models=1, costs=False)
    artifact, _ = train_router(data, bits=10, c_grid=(1.0,), weightings=("tf",), second_stage=False)
    assert artifact.predictor.models == ("m0",)
    metrics = report(cross_validate(data, bits=10, c_grid=(1.0,), weightings=("tf",), second_stage=False))
    assert metrics["operating_point"]["share"] == {"m0": 1.0} and "two_model" not in metrics


def test_cv_folds_hash_ids_when_no_item_has_a_fold() -> None:
    data = _data(fold=False)
    folds, notes = cv_folds(data, 5)
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4] and notes
    assert np.array_equal(folds, cv_folds(data, 5)[0])  # stable
    with pytest.raises(OutcomeDataError, match="fold"):
        cv_folds(data)  # no k, no folds: nothing to cross-validate over
    partial = data.subset(np.arange(len(data)))
    items = list(partial.items)
    items[3] = OutcomeItem(**{**items[3].__dict__, "fold": 1})
    with pytest.raises(OutcomeDataError, match="239 of 240 items have no 'fold' field"):
        cv_folds(to_outcome_set(items), 5)
    with pytest.raises(OutcomeDataError, match="--cv 3: the data has 5 folds"):
        cv_folds(_data(), 3)


def test_the_race_drops_only_configurations_clearly_behind_on_the_first_fold() -> None:
    rng = np.random.default_rng(0)
    scores = (rng.random((600, 2)) < 0.6).astype(float)
    signal = np.where(scores == 1, 1.5, -1.5) + rng.normal(0, 1.5, scores.shape)  # informative logits
    logits = {("tf", 0.3): rng.normal(0, 1.0, scores.shape),  # no signal: far behind, dropped
              ("tf", 1.0): signal,
              ("idf", 0.3): signal + rng.normal(0, 0.01, scores.shape),  # the same within noise: a tie, kept
              ("idf", 1.0): 0.2 * signal}  # rescaled: its Platt step undoes the scale, so it ties too
    assert race(logits, scores, RACE_Z) == [("tf", 1.0), ("idf", 0.3), ("idf", 1.0)]  # in the original order
    # with missing scores (logged traffic) the race scores the observed ones only
    partial = scores.copy()
    partial[::2, 0] = np.nan
    partial[1::2, 1] = np.nan
    assert race(logits, partial, RACE_Z) == [("tf", 1.0), ("idf", 0.3), ("idf", 1.0)]
    assert RACE_Z > 1  # a one-standard-error race would drop ties the full search keeps


def test_the_race_saves_fits_without_changing_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    import tierroute.evaluation.search as search_module

    data = _data(n=300, models=3)
    calls: list[float] = []
    fit = search_module.held_out_logits

    def counted(*args: object) -> np.ndarray:
        calls.append(args[-1])  # type: ignore[arg-type]
        return fit(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(search_module, "held_out_logits", counted)
    kwargs = {"bits": 10, "c_grid": (1e-4, 1.0), "weightings": ("tf",), "second_stage": False, "jobs": 1}
    raced, raced_report = train_router(data, **kwargs)  # type: ignore[arg-type]
    raced_calls = len(calls)
    calls.clear()
    monkeypatch.setattr(search_module, "RACE_Z", 1e9)  # no configuration dropped
    full, full_report = train_router(data, **kwargs)  # type: ignore[arg-type]
    assert len(calls) == 6 and raced_calls == 4  # C=1e-4 is far behind on the first fold: not fitted on two
    assert raced_report.c == full_report.c == 1.0
    for name, array in raced.predictor.to_arrays()[1].items():
        assert np.array_equal(array, full.predictor.to_arrays()[1][name]), name


def _many(n: int = 300, models: int = 6, seed: int = 0) -> OutcomeSet:
    """``_data``'s topics with more models than the race scouts: each model weak on its own pair of topics."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        topic = i % len(TOPICS)
        scores = {f"m{j}": float(rng.random() < (0.3 if topic in (j % 4, (j + 1) % 4) else 0.9)) for j in range(models)}
        items.append(OutcomeItem(id=f"q{i}", messages=({"role": "user", "content": f"{TOPICS[topic]} number {i}"},),
                                 scores=scores, costs={f"m{j}": 10.0 ** -j for j in range(models)}, fold=i % 5))
    return to_outcome_set(items)


def test_with_many_models_the_race_scouts_on_a_few_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hopeless configuration is fitted for the scouts only; the router is the one the unscouted race trains."""
    import tierroute.evaluation.search as search_module

    data = _many()
    calls: list[tuple[float, int]] = []
    fit = search_module.held_out_logits

    def counted(*args: object) -> np.ndarray:
        calls.append((args[-1], args[2].shape[1]))  # type: ignore[attr-defined]
        return fit(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(search_module, "held_out_logits", counted)
    kwargs = {"bits": 10, "c_grid": (1e-4, 1.0), "weightings": ("tf",), "second_stage": False, "auxiliary": False,
              "jobs": 1}
    scouted, _ = train_router(data, **kwargs)  # type: ignore[arg-type]
    assert calls[:3] == [(1e-4, 4), (1.0, 4), (1.0, 2)]  # both on the 4 scouts, then C=1 on the other 2 models
    assert calls[3:] == [(1.0, 6), (1.0, 6)]  # the other folds, survivors only
    calls.clear()
    monkeypatch.setattr(search_module, "RACE_SCOUTS", 100)
    full, _ = train_router(data, **kwargs)  # type: ignore[arg-type]
    assert calls[:2] == [(1e-4, 6), (1.0, 6)]
    for name, array in scouted.predictor.to_arrays()[1].items():
        assert np.array_equal(array, full.predictor.to_arrays()[1][name]), name


def test_trees_clearly_behind_on_the_first_fold_are_not_fitted_on_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    import tierroute.evaluation.search as search_module
    import tierroute.evaluation.train as train_module

    data = _data(n=300, models=3)
    folds: list[int] = []
    held_out = search_module._held_out_trees

    def wrong(f: np.ndarray, scores: np.ndarray, f_test: np.ndarray) -> np.ndarray:
        folds.append(len(f_test))
        return -8.0 * (held_out(f, scores, f_test) > 0) + 4.0  # confidently inverted: far behind the linear stage

    monkeypatch.setattr(search_module, "_held_out_trees", wrong)
    final: list[object] = []
    fit_linear_stage = train_module._fit_linear

    def recorded(*args: object, **kwargs: object) -> object:
        final.append(args[8] if len(args) > 8 else kwargs.get("tree_inputs"))  # the stage on all rows, if chosen
        return fit_linear_stage(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "_fit_linear", recorded)
    artifact, report = train_router(data, bits=10, jobs=1)
    assert len(folds) == 1  # the first inner fold only (one piece: jobs=1)
    assert not report.second_stage and final == [None] and artifact.predictor.inner.kind == "linear"  # guarded
    (raced,) = [row for name, row in report.cv_table.items() if name.endswith("raced out on inner fold 1")]
    assert raced["brier stacked"] > raced["brier linear"]
