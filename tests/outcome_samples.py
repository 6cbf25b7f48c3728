"""Outcome data for tests: small samples kept in the repository, and the full files only where a test
reproduces a published figure.

The samples (tests/fixtures/outcomes/, a few hundred items each, drawn by tests/fixtures/make_outcome_samples.py)
make a bare clone's test suite self-contained. ``full_outcomes`` finds a full file through ``data_dir()``
(``$TIERROUTE_DATA_DIR`` or ``../shared/data``) and skips the test, saying where to get it, when it is absent.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tierroute.evaluation.data import DATA_DIR_ENV, data_dir

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "outcomes"
GSM8K, MMLU = "routellm-gsm8k", "routellm-mmlu"
ARC_TRAIN, ARC_TEST = "routerbench-arc_challenge-train", "routerbench-arc_challenge-test"


def sample(name: str) -> Path:
    """The checked-in sample of outcome file ``name`` (gzip JSONL, which every loader reads as it is)."""
    return FIXTURES / f"{name}.sample.jsonl.gz"


def sample_lines(name: str, n: int | None = None) -> list[str]:
    """The first ``n`` (all by default) JSON lines of a sample, each without its newline."""
    lines = gzip.decompress(sample(name).read_bytes()).decode("utf-8").split("\n")[:-1]
    return lines if n is None else lines[:n]


def write_sample(name: str, dst: Path, n: int | None = None) -> Path:
    """The first ``n`` items of a sample as a plain JSONL file at ``dst``, for tests that edit or combine lines."""
    dst.write_text("".join(line + "\n" for line in sample_lines(name, n)), encoding="utf-8")
    return dst


def full_outcomes(name: str) -> Path:
    """The full outcome file ``name``; skips the calling test, saying where to get it, when it is absent."""
    path = data_dir() / "outcomes" / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"needs the full {name}.jsonl, not found at {path}: set {DATA_DIR_ENV} to a "
                    "directory holding outcomes/ (tests/fixtures/README.md says where the files come from)")
    return path
