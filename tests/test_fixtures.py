"""The outcome samples stay small, and are exactly what their script draws from the full files."""

from __future__ import annotations

import importlib.util

from tierroute.evaluation.data import data_dir, load_outcomes

from .outcome_samples import ARC_TEST, ARC_TRAIN, FIXTURES, GSM8K, MMLU, full_outcomes, sample


def _script():  # noqa: ANN202 - a module loaded from its path: tests/fixtures is data, not a package
    spec = importlib.util.spec_from_file_location("make_outcome_samples", FIXTURES.parent / "make_outcome_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_samples_are_small_and_load() -> None:
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 1_000_000  # a bare clone stays light
    sizes = {name: len(load_outcomes(sample(name))) for name in (GSM8K, MMLU, ARC_TRAIN, ARC_TEST)}
    assert sizes == {GSM8K: 500, MMLU: 1000, ARC_TRAIN: 300, ARC_TEST: 150}
    assert len({it.category for it in load_outcomes(sample(MMLU)).items}) == 57  # every subject is drawn


def test_samples_regenerate_from_the_full_files() -> None:
    for name in (GSM8K, MMLU, ARC_TRAIN, ARC_TEST):
        full_outcomes(name)  # skips, saying where to get them, without the full files
    assert _script().main(["--data-dir", str(data_dir()), "--check"]) == 0
