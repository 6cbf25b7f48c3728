"""Training on worker processes gives the same router as training in-process, bit for bit."""

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("sklearn")

from tierroute.cli import main
from tierroute.evaluation.data import OutcomeItem, OutcomeSet, to_outcome_set
from tierroute.evaluation.train import train_router
from tierroute.evaluation.workers import PARALLEL_MIN_WORK, Workers, default_jobs

TOPICS = ("algebra proof lemma", "poem rhyme verse", "history war treaty", "python code function")


def _data(n: int = 180, *, partial: bool = False) -> OutcomeSet:
    """Three priced models, four categories of 45 items (so the auxiliary targets are tried too)."""
    rng = np.random.default_rng(3)
    items = []
    for i in range(n):
        topic = i % len(TOPICS)
        chance = (0.95, 0.3 if topic in (0, 3) else 0.9, 0.2 if topic in (0, 3) else 0.8)
        scores = {f"m{j}": float(rng.random() < p) for j, p in enumerate(chance)}
        if partial:  # logged traffic: one model answered each request
            scores = {f"m{i % 3}": scores[f"m{i % 3}"]}
        items.append(OutcomeItem(id=f"q{i}", messages=({"role": "user", "content": f"{TOPICS[topic]} {i} {i % 7}"},),
                                 scores=scores, costs={m: 10.0 ** -int(m[1]) for m in scores},
                                 category=TOPICS[topic].split()[0]))
    return to_outcome_set(items, partial=partial)


def _arrays(data: OutcomeSet, jobs: int) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    artifact, report = train_router(data, bits=12, jobs=jobs)
    return artifact.predictor.to_arrays()[1], {**dataclasses.asdict(report), "seconds": None}


@pytest.mark.parametrize("partial", [False, True])
def test_two_workers_train_the_same_router_as_one(partial: bool) -> None:
    data = _data(partial=partial)
    one, one_report = _arrays(data, 1)
    two, two_report = _arrays(data, 2)
    assert one.keys() == two.keys()
    for name in one:
        assert np.array_equal(one[name], two[name]), name
    assert one_report == two_report  # same choices, same cross-validation table
    if not partial:
        assert "auxiliary targets, cross-fitted stack" in one_report["cv_table"]  # that search ran on workers too


def test_workers_run_in_order_and_reject_nonsense() -> None:
    assert Workers(2).map(divmod, [(7, 2), (9, 4), (1, 1)]) == [(3, 1), (2, 1), (1, 0)]
    assert Workers(1).map(divmod, [(7, 2)]) == [(3, 1)]
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        Workers(0)
    assert Workers.for_corpus(None, PARALLEL_MIN_WORK // 2 - 1, 2).jobs == 1  # little work: in-process
    assert Workers.for_corpus(None, PARALLEL_MIN_WORK // 2, 2).jobs == default_jobs()  # one per CPU
    assert Workers.for_corpus(3, 10, 1).jobs == 3  # an explicit number is taken as given


def test_jobs_option_is_checked(tmp_path) -> None:
    result = CliRunner().invoke(main, ["train", "--data", __file__, "--out", str(tmp_path / "r.npz"), "--jobs", "0"])
    assert result.exit_code == 2
    assert "--jobs" in result.output and "0 is not in the range x>=1" in result.output


def test_workers_are_processes_even_under_a_threading_backend() -> None:
    import os

    from joblib import parallel_config

    with parallel_config(backend="threading"):
        pids = Workers(2).map(os.getpid, [(), (), (), ()])
    assert os.getpid() not in pids  # every task ran in another process
