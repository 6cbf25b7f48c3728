"""Training's independent fits, run on worker processes.

Training time is mostly logistic regressions that do not depend on one another: every (weighting, C) of the
inner-CV search, on each of three inner folds, for every model. They run on processes, not threads: threads
would overlap (liblinear releases the GIL), but scikit-learn's liblinear draws its coordinate order from one
process-wide random generator, so fits on concurrent threads interleave their draws and no longer repeat
exactly. A process per worker keeps every fit identical to the in-process one. joblib (scikit-learn's own
dependency) memory-maps the large arrays of each task, so workers share the corpus instead of copying it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Below this many stored n-gram entries the fits are too short to pay for starting and feeding worker processes:
# GSM8K (1,307 prompts, 0.55 million entries) trains in 3.2 s in-process and 4.6 s on two workers, ARC train
# (1,019 prompts, 11 models, 0.66 million) in 9 s either way; MMLU (14,037, 10.3 million) in 37 s vs 28 s.
PARALLEL_MIN_ENTRIES = 3_000_000


def default_jobs() -> int:
    """One worker per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Workers:
    """Runs a function over argument tuples on ``jobs`` processes (1: one after another, in this process)."""

    jobs: int = 1

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {self.jobs}")

    @classmethod
    def for_corpus(cls, jobs: int | None, entries: int) -> Workers:
        """``jobs`` workers; None: one per CPU, or one for a corpus of fewer than ``PARALLEL_MIN_ENTRIES``."""
        if jobs is not None:
            return cls(jobs)
        return cls(default_jobs() if entries >= PARALLEL_MIN_ENTRIES else 1)

    def map(self, function: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> list[T]:
        """``[function(*args) for args in calls]``, in order, spread over the workers."""
        if self.jobs == 1 or len(calls) < 2:
            return [function(*args) for args in calls]
        from joblib import Parallel, delayed

        return list(Parallel(n_jobs=min(self.jobs, len(calls)))(delayed(function)(*args) for args in calls))
