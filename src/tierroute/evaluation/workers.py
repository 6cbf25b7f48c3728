"""Training's independent fits, run on worker processes.

Training time is mostly fits that do not depend on one another: the logistic regressions of every (weighting,
C) of the inner-CV search on each inner fold, the auxiliary ridge regressions, the second stage's trees, and the
final per-model fits. They run on processes, not threads: threads would overlap (liblinear releases the GIL),
but scikit-learn's liblinear draws its coordinate order from one process-wide random generator, so fits on
concurrent threads interleave their draws and no longer repeat exactly. A process per worker keeps every fit
identical to the in-process one. joblib (scikit-learn's own dependency) memory-maps the large arrays of each
task, so workers share the corpus instead of copying it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Below this much work (stored n-gram entries x models) the fits are too short to pay for starting and feeding
# worker processes. `tierroute train`, in-process vs two workers, this machine: GSM8K (1,307 prompts, 0.55
# million entries x 2 models) 3.3 s vs 4.5 s; ARC train (1,019 prompts, 0.66 million x 11) 9.0 s vs 7.7 s;
# MMLU (14,037 prompts, 10.3 million x 2) 23.8 s vs 17.6 s.
PARALLEL_MIN_WORK = 3_000_000


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
    def for_corpus(cls, jobs: int | None, entries: int, models: int) -> Workers:
        """``jobs`` workers; None: one per CPU, or one when ``entries`` x ``models`` is under
        ``PARALLEL_MIN_WORK``."""
        if jobs is not None:
            return cls(jobs)
        return cls(default_jobs() if entries * models >= PARALLEL_MIN_WORK else 1)

    def map(self, function: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> list[T]:
        """``[function(*args) for args in calls]``, in order, spread over the workers."""
        if self.jobs == 1 or len(calls) < 2:
            return [function(*args) for args in calls]
        from joblib import Parallel, delayed

        # loky by name: processes even inside a caller's joblib.parallel_config(backend="threading").
        parallel = Parallel(n_jobs=min(self.jobs, len(calls)), backend="loky")
        return list(parallel(delayed(function)(*args) for args in calls))
