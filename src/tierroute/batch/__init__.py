"""Batch pipelines: a JSONL file (or any iterable of requests) through the router, fast, within a budget,
resumable. ``tierroute batch IN.jsonl --out OUT.jsonl`` and :meth:`tierroute.Router.batch` both run here.

Modules: ``lines`` (input), ``engine`` (concurrency, retries, budget per line), ``concurrency`` (AIMD),
``budget`` (hard cap over a state store), ``journal`` (the output file as the resume journal), ``progress``,
``job`` (file jobs and dry runs), ``distributed`` (workers on several machines sharing a job through Redis).
"""

from __future__ import annotations

from .budget import BatchBudget
from .concurrency import AdaptiveLimit
from .engine import BatchEngine
from .job import JobOptions, dry_run, run_file
from .lines import BatchItem
from .result import BatchResult

__all__ = ["AdaptiveLimit", "BatchBudget", "BatchEngine", "BatchItem", "BatchResult", "JobOptions", "dry_run", "run_file"]
