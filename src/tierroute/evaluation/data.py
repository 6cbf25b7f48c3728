"""Load routing outcome data (the canonical JSONL of ``shared/data/README.md``) with errors that point.

Training and evaluation both start here, so a malformed line must fail with ``file:line: field: problem``
rather than a ``KeyError`` deep inside a metric. The loaded form is columnar (a text list, a score matrix and
a cost matrix) because every consumer works model-by-model over all items.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .._exceptions import TierrouteError

DATA_DIR_ENV = "TIERROUTE_DATA_DIR"


class OutcomeDataError(TierrouteError):
    """An outcome file is missing, unreadable, or has a malformed line (message names file:line and field)."""

    error_type = "data_error"


def data_dir() -> Path:
    """Where the full public outcome files live: ``$TIERROUTE_DATA_DIR`` or ``<repo>/../shared/data``.

    Only benchmarks and figure reproduction read them; the test suite uses the small samples in
    ``tests/fixtures/outcomes`` (tests/fixtures/README.md says where the full files come from).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


@dataclass(frozen=True)
class OutcomeItem:
    """One prompt and what each model scored (and cost) on it."""

    id: str
    messages: tuple[dict[str, Any], ...]
    scores: dict[str, float]
    costs: dict[str, float]
    category: str | None = None
    dataset: str | None = None
    fold: int | None = None
    split: str | None = None
    # Length in characters of each model's recorded answer, where the source kept it: training-only signal
    # (``evaluation.auxiliary``), never needed to route. The text itself is not kept in memory.
    response_chars: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OutcomeSet:
    """Items in columnar form: ``scores[i, j]`` is model ``models[j]`` on item ``i``; NaN cost = unrecorded."""

    items: tuple[OutcomeItem, ...]
    models: tuple[str, ...]
    scores: np.ndarray
    costs: np.ndarray
    # What loading changed and a user should hear about (missing costs priced at the model's mean), for the CLI.
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_costs(self) -> bool:
        """Every recorded score has its recorded cost (with complete outcomes: every item, every model)."""
        return bool(np.isfinite(self.costs[self.observed]).all())

    @property
    def observed(self) -> np.ndarray:
        """``observed[i, j]``: item i has model j's score (always, unless loaded with ``partial``)."""
        return np.isfinite(self.scores)

    @property
    def complete(self) -> bool:
        return bool(self.observed.all())

    @property
    def incomplete_items(self) -> int:
        """How many items lack some model's score."""
        return int((~self.observed).any(axis=1).sum())

    @property
    def folds(self) -> np.ndarray:
        return np.array([-1 if it.fold is None else it.fold for it in self.items])

    def subset(self, mask: np.ndarray | Sequence[int]) -> OutcomeSet:
        index = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask, dtype=int)
        return OutcomeSet(tuple(self.items[i] for i in index), self.models, self.scores[index], self.costs[index])

    def prompts(self) -> list[list[dict[str, Any]]]:
        return [list(it.messages) for it in self.items]

    def project(self, models: Sequence[tuple[str, str]]) -> OutcomeSet:
        """Only the models named, in that order, each renamed ``(name in this data, name to give it)``: how a
        router trained on one pair of models is judged on a file that scores more (RouterBench's eleven, with
        Mixtral under another name). An unknown name is an error listing the data's models."""
        unknown = [name for name, _ in models if name not in self.models]
        if unknown:
            raise OutcomeDataError(f"--project: {unknown} not in the data's models {list(self.models)}")
        renamed = [new for _, new in models]
        if len(set(renamed)) != len(renamed) or not renamed:
            raise OutcomeDataError(f"--project: give one or more distinct models, got {renamed}")
        columns = [self.models.index(name) for name, _ in models]
        rename = dict(models)
        items = tuple(replace(it, scores={rename[m]: v for m, v in it.scores.items() if m in rename},
                              costs={rename[m]: v for m, v in it.costs.items() if m in rename},
                              response_chars={rename[m]: v for m, v in it.response_chars.items() if m in rename})
                      for it in self.items)
        return OutcomeSet(items, tuple(renamed), self.scores[:, columns], self.costs[:, columns], self.notes)


def _fail(path: Path, line: int, field: str, problem: str) -> OutcomeDataError:
    return OutcomeDataError(f"{path}:{line}: {field}: {problem}")


def _parse_line(raw: bytes, path: Path, line: int) -> OutcomeItem:
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _fail(path, line, "line", f"not valid JSON ({exc})") from None
    if not isinstance(row, dict):
        raise _fail(path, line, "line", "expected a JSON object")
    item_id = row.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise _fail(path, line, "id", "required non-empty string")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail(path, line, "messages", "required non-empty array of messages")
    for k, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise _fail(path, line, f"messages[{k}].role", "required string")
        if not isinstance(msg.get("content"), (str, list)):
            raise _fail(path, line, f"messages[{k}].content", "required string or array of parts")
    outcomes = row.get("outcomes")
    if not isinstance(outcomes, dict) or not outcomes:
        raise _fail(path, line, "outcomes", "required non-empty object of model -> {score, cost?}")
    scores: dict[str, float] = {}
    costs: dict[str, float] = {}
    response_chars: dict[str, int] = {}
    for model, out in outcomes.items():
        where = f"outcomes[{model!r}]"
        if not isinstance(out, dict):
            raise _fail(path, line, where, "expected an object with 'score'")
        score = out.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            raise _fail(path, line, f"{where}.score", f"expected a number in [0, 1], got {score!r}")
        scores[model] = float(score)
        cost = out.get("cost")
        if cost is not None:
            if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0:
                raise _fail(path, line, f"{where}.cost", f"expected a non-negative number, got {cost!r}")
            costs[model] = float(cost)
        response = out.get("response")
        if response is not None:
            if not isinstance(response, str):
                raise _fail(path, line, f"{where}.response", f"expected a string, got {type(response).__name__}")
            response_chars[model] = len(response)
    fold = row.get("fold")
    if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int)):
        raise _fail(path, line, "fold", f"expected an integer, got {fold!r}")
    split = row.get("split")
    if split is not None and not isinstance(split, str):
        raise _fail(path, line, "split", f"expected a string, got {split!r}")
    return OutcomeItem(id=item_id, messages=tuple(messages), scores=scores, costs=costs,
                       category=row.get("category"), dataset=row.get("dataset"), fold=fold, split=split,
                       response_chars=response_chars)


def read_items(path: str | Path) -> list[OutcomeItem]:
    """Parse one JSONL file; blank lines are skipped, anything else malformed raises ``OutcomeDataError``."""
    return [item for _, item in _read_numbered(Path(path))]


def _read_numbered(path: Path) -> list[tuple[int, OutcomeItem]]:
    """Numbered items of a JSONL file; a ``.gz`` file is decompressed, and a UTF-8 byte order mark (as some
    Windows editors write) is skipped."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise OutcomeDataError(f"{path}: cannot read outcome data ({getattr(exc, 'strerror', None) or exc})") from None
    lines = raw.removeprefix(b"\xef\xbb\xbf").splitlines()
    return [(n, _parse_line(text, path, n)) for n, text in enumerate(lines, start=1) if text.strip()]


def to_outcome_set(items: Iterable[OutcomeItem], *, where: str = "data", partial: bool = False) -> OutcomeSet:
    """Columnarise items. Every item must score the same models (the first item fixes the set and order), unless
    ``partial``: then the models are every model any item scores, in order of appearance, and a score an item
    lacks is NaN (logged traffic, where each request was answered by the model the router chose)."""
    items = tuple(items)
    if not items:
        raise OutcomeDataError(f"{where}: no outcome items")
    if partial:
        models = tuple(dict.fromkeys(m for it in items for m in it.scores))
    else:
        models = tuple(items[0].scores)
        model_set = set(models)
        for it in items:
            if set(it.scores) != model_set:
                missing = sorted(model_set - set(it.scores)) or sorted(set(it.scores) - model_set)
                raise OutcomeDataError(f"{where}: item {it.id!r}: outcomes: models differ from the first item "
                                       f"({missing}){PARTIAL_HINT}")
    scores = np.array([[it.scores.get(m, np.nan) for m in models] for it in items], dtype=np.float64)
    costs = np.array([[it.costs.get(m, np.nan) for m in models] for it in items], dtype=np.float64)
    return OutcomeSet(items, models, scores, costs)


# Where complete outcomes are required, the error says what can be done with logged (one model per item) traffic.
PARTIAL_HINT = ("; logged traffic that scores only the model that answered each request can be trained on "
                "(tierroute train), not evaluated counterfactually")


def load_outcomes(paths: str | Path | Sequence[str | Path], *, partial: bool = False) -> OutcomeSet:
    """Load and concatenate one or more outcome files (``partial``: see ``to_outcome_set``)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    items: list[OutcomeItem] = []
    where: list[str] = []
    seen: dict[str, str] = {}
    first: tuple[Path, int, set[str]] | None = None
    for p in paths:
        for line, item in _read_numbered(Path(p)):
            where.append(f"{p}:{line}")
            # Folds, decisions and comparisons are keyed by id; a repeat is usually a file given twice.
            if item.id in seen:
                raise _fail(Path(p), line, "id", f"{item.id!r} repeats {seen[item.id]}; every item needs its own id")
            seen[item.id] = where[-1]
            if first is None:
                first = (Path(p), line, set(item.scores))
            elif not partial and set(item.scores) != first[2]:
                missing, extra = sorted(first[2] - set(item.scores)), sorted(set(item.scores) - first[2])
                raise _fail(Path(p), line, "outcomes", f"every item must score the same models as {first[0]}:{first[1]}"
                            f" (missing {missing}, extra {extra}); drop those models or those items{PARTIAL_HINT}")
            items.append(item)
    label = ", ".join(str(p) for p in paths)
    return _price_missing(to_outcome_set(items, where=label, partial=partial), where, label)


def _price_missing(data: OutcomeSet, where: list[str], label: str) -> OutcomeSet:
    """Costs recorded for some scores and not others: price the gaps at the model's mean recorded cost, and say
    so. Treating such a file as unpriced instead would drop every cost figure over one missing value; a model
    with no recorded cost at all cannot be priced that way, which is an error naming it."""
    recorded = data.observed & np.isfinite(data.costs)
    missing = data.observed & ~np.isfinite(data.costs)
    if not recorded.any() or not missing.any():
        return data
    unpriced = [m for j, m in enumerate(data.models) if missing[:, j].any() and not recorded[:, j].any()]
    if unpriced:
        raise OutcomeDataError(f"{label}: no recorded cost for {unpriced} on any item, while "
                               f"other models have costs: record a cost for every model, or for none "
                               f"(then models are compared by score alone)")
    means = np.array([data.costs[recorded[:, j], j].mean() if recorded[:, j].any() else np.nan
                      for j in range(len(data.models))])
    costs = np.where(missing, means, data.costs)
    i, j = (int(v[0]) for v in np.nonzero(missing))
    note = (f"{int(missing.sum())} of {int(data.observed.sum())} scores have no recorded cost (first: {where[i]}, "
            f"{data.models[j]!r}); priced at that model's mean recorded cost")
    return OutcomeSet(data.items, data.models, data.scores, costs, data.notes + (note,))
