import json
from pathlib import Path

import pytest

from tierroute.evaluation.data import OutcomeDataError, data_dir, load_outcomes

from tests.outcome_samples import ARC_TEST, full_outcomes, sample

GOOD = '{"id": "a", "messages": [{"role": "user", "content": "hi"}], "outcomes": {"m1": {"score": 1.0}, "m2": {"score": 0}}}'


def test_real_files_load() -> None:
    data = load_outcomes(sample(ARC_TEST))
    assert len(data) == 150 and len(data.models) == 11 and data.has_costs
    assert data.scores.shape == (150, 11) and data.costs.shape == (150, 11) and (data.costs > 0).all()
    assert all(len(item.response_chars) == 11 for item in data.items)  # every model's answer was recorded
    assert all(item.split == "test" and item.category == "arc-challenge" for item in data.items)


def test_the_full_file_loads() -> None:
    data = load_outcomes(full_outcomes(ARC_TEST))
    assert len(data) == 437 and len(data.models) == 11 and data.has_costs
    assert data.scores.shape == (437, 11)


@pytest.mark.parametrize("line,where", [
    ("{not json", ":2: line: not valid JSON"),
    ('{"messages": [{"role": "user", "content": "x"}], "outcomes": {"m1": {"score": 1}}}', ":2: id:"),
    ('{"id": "b", "messages": [], "outcomes": {"m1": {"score": 1}}}', ":2: messages:"),
    ('{"id": "b", "messages": [{"role": "user"}], "outcomes": {"m1": {"score": 1}}}', ":2: messages[0].content:"),
    ('{"id": "b", "messages": [{"role": "user", "content": "x"}], "outcomes": {"m1": {"score": 1.5}}}', "outcomes['m1'].score"),
    ('{"id": "b", "messages": [{"role": "user", "content": "x"}], "outcomes": {"m1": {"score": 1, "cost": -1}}}', "outcomes['m1'].cost"),
    ('{"id": "b", "messages": [{"role": "user", "content": "x"}], "outcomes": {"m1": {"score": 1, "response": 3}}}', "outcomes['m1'].response"),
    ('{"id": "b", "fold": "x", "messages": [{"role": "user", "content": "x"}], "outcomes": {"m1": {"score": 1}}}', ":2: fold:"),
])
def test_malformed_lines_name_file_line_and_field(tmp_path: Path, line: str, where: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + line + "\n")
    with pytest.raises(OutcomeDataError) as exc:
        load_outcomes(path)
    assert str(path) in exc.value.message and where in exc.value.message


def test_models_must_match_across_items(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(GOOD + "\n\n" + GOOD.replace('"m2"', '"m3"').replace('"a"', '"b"') + "\n")
    with pytest.raises(OutcomeDataError) as exc:
        load_outcomes(path)
    assert f"{path}:3: outcomes:" in exc.value.message and "missing ['m2'], extra ['m3']" in exc.value.message


def test_a_model_missing_from_a_later_file_names_that_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(GOOD + "\n")
    second.write_text(GOOD.replace(', "m2": {"score": 0}', "").replace('"a"', '"b"') + "\n")
    with pytest.raises(OutcomeDataError, match=r"b\.jsonl:1: outcomes: .*missing \['m2'\]"):
        load_outcomes([first, second])


def test_continuous_scores_and_a_single_model_load(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(GOOD.replace(', "m2": {"score": 0}', "").replace('"score": 1.0', '"score": 0.37') + "\n")
    data = load_outcomes(path)
    assert data.models == ("m1",) and data.scores.tolist() == [[0.37]] and not data.has_costs


def test_data_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERROUTE_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path


def _priced(item_id: str, c1: float | None, c2: float | None) -> str:
    out = {"m1": {"score": 1.0}, "m2": {"score": 0.0}}
    for model, cost in (("m1", c1), ("m2", c2)):
        if cost is not None:
            out[model]["cost"] = cost
    return json.dumps({"id": item_id, "messages": [{"role": "user", "content": "q"}], "outcomes": out})


def test_a_missing_cost_is_priced_at_the_models_mean_and_said(tmp_path: Path) -> None:
    """One gap must not turn a priced file into an unpriced one (every cost figure would silently vanish)."""
    path = tmp_path / "costs.jsonl"
    path.write_text("\n".join([_priced("a", 1.0, 0.1), _priced("b", 3.0, None), _priced("c", None, 0.3)]) + "\n")
    data = load_outcomes(path)
    assert data.has_costs
    assert data.costs.tolist() == [[1.0, 0.1], [3.0, 0.2], [2.0, 0.3]]
    (note,) = data.notes
    assert note.startswith(f"2 of 6 scores have no recorded cost (first: {path}:2, 'm2')")


def test_a_model_never_priced_beside_priced_ones_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "costs.jsonl"
    path.write_text("\n".join([_priced("a", 1.0, None), _priced("b", 3.0, None)]) + "\n")
    with pytest.raises(OutcomeDataError) as exc:
        load_outcomes(path)
    assert "no recorded cost for ['m2'] on any item" in exc.value.message and str(path) in exc.value.message
    path.write_text("\n".join([_priced("a", None, None), _priced("b", None, None)]) + "\n")
    data = load_outcomes(path)  # no costs at all: an unpriced file, nothing to say
    assert not data.has_costs and data.notes == ()


def test_a_repeated_id_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    """Usually a file given twice: folds, decisions and comparisons are keyed by id."""
    path = tmp_path / "twice.jsonl"
    path.write_text(GOOD + "\n")
    with pytest.raises(OutcomeDataError) as exc:
        load_outcomes([path, path])
    assert exc.value.message == f"{path}:1: id: 'a' repeats {path}:1; every item needs its own id"


def test_gzip_files_and_a_byte_order_mark_load(tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "data.jsonl.gz"
    packed.write_bytes(gzip.compress((GOOD + "\n").encode()))
    marked = tmp_path / "bom.jsonl"
    marked.write_bytes(b"\xef\xbb\xbf" + (GOOD + "\n").encode())
    assert load_outcomes(packed).scores.tolist() == load_outcomes(marked).scores.tolist() == [[1.0, 0.0]]
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress((GOOD + "\n").encode())[:20])
    with pytest.raises(OutcomeDataError, match=r"broken\.jsonl\.gz: cannot read outcome data"):
        load_outcomes(broken)
