"""A batch job over files: JSONL in, OpenAI batch output out, resumable after any stop.

The output file is the journal (:mod:`.journal`): run the same command again and lines already in it are
skipped; lines that were in flight when the process died are sent again (at most the concurrency limit of
them, each tagged with its custom_id as tierroute's request id so the ledger shows the repeat).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from .._exceptions import TierrouteError
from ..policies import expected_cost_usd
from ..state.memory import MemoryStore
from .budget import BatchBudget
from .concurrency import DEFAULT_INITIAL, DEFAULT_MAXIMUM, AdaptiveLimit
from .engine import DEFAULT_MAX_TRIES, BatchEngine
from .journal import OutputJournal, Prior, check_writable, read_prior
from .lines import BatchItem, check_jsonl, count_lines, parse_item, read_lines
from .progress import Progress, report

if TYPE_CHECKING:
    from ..router import Router


@dataclass(frozen=True, slots=True)
class JobOptions:
    input: str
    output: str
    max_cost_usd: float | None = None
    concurrency: int = DEFAULT_MAXIMUM  # the most lines in flight; the adaptive limit stays at or below it
    initial_concurrency: int = DEFAULT_INITIAL
    max_tries: int = DEFAULT_MAX_TRIES
    retry_failed: bool = False
    job: str | None = None  # tags requests "batch:<job>"; defaults to the output file's name
    progress_seconds: float = 2.0
    fsync: bool = True

    @property
    def job_name(self) -> str:
        return self.job or os.path.splitext(os.path.basename(self.output))[0]


def prepare(options: JobOptions) -> None:
    """Refuse bad input and an unwritable output before anything is sent."""
    check_jsonl(options.input)
    check_writable(options.output)
    if options.max_cost_usd is not None and not options.max_cost_usd > 0:
        raise TierrouteError(f"--max-cost: expected a positive amount in USD, got {options.max_cost_usd}")


def pending_items(path: str, prior: Prior) -> Iterator[BatchItem]:
    for number, _, raw in read_lines(path):
        if number not in prior.done:
            yield parse_item(number, raw)


async def run_file(router: Router, options: JobOptions, *, progress_out: TextIO | None = None,
                   live: bool = False, limit: AdaptiveLimit | None = None) -> dict[str, Any]:
    """Run (or resume) the job; returns the summary. Progress goes to ``progress_out`` when given."""
    prepare(options)
    prior = read_prior(options.output, retry_failed=options.retry_failed)
    limit = limit or AdaptiveLimit(initial=min(options.initial_concurrency, options.concurrency),
                                   maximum=options.concurrency)
    budget = None
    if options.max_cost_usd is not None:
        budget = BatchBudget(MemoryStore(), key=f"batch:{options.job_name}:usd", max_cost_usd=options.max_cost_usd,
                             catalog=router.catalog)
        await budget.precharge(prior.cost_usd)
    engine = BatchEngine(router, job=options.job_name, limit=limit, budget=budget, max_tries=options.max_tries)
    progress = Progress(total=count_lines(options.input), already_done=prior.lines, prior_cost_usd=prior.cost_usd,
                        prior_baseline_cost_usd=prior.baseline_cost_usd, prior_failed=prior.failed,
                        reasons=Counter(prior.reasons), stats=engine.stats, limit=limit)
    journal = OutputJournal(options.output, fsync=options.fsync, max_pending=options.concurrency)
    return await drive(engine, pending_items(options.input, prior), journal, progress, progress_out=progress_out,
                       live=live, interval=options.progress_seconds)


async def drive(engine: BatchEngine, items: Any, journal: OutputJournal, progress: Progress, *,
                progress_out: TextIO | None, live: bool, interval: float,
                on_durable: Any = None) -> dict[str, Any]:
    """Feed ``items`` through ``engine`` into ``journal``, counting; ``on_durable(result)`` after each fsync."""
    reporter = None
    if progress_out is not None:
        reporter = asyncio.create_task(report(progress, progress_out, interval_seconds=interval, live=live))
    durable: set[asyncio.Future[None]] = set()
    try:
        async for result in engine.run(items):
            future = await journal.append(result.output_line())
            progress.add(result)
            if on_durable is not None:
                durable.add(future)
                future.add_done_callback(lambda f, r=result: _after(f, r, on_durable, durable))
    finally:
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            if live and progress_out is not None:
                progress_out.write("\r\x1b[2K" + progress.line() + "\n")
        await journal.aclose()
        if durable:
            await asyncio.gather(*durable, return_exceptions=True)
    return progress.summary()


def _after(future: asyncio.Future[None], result: Any, on_durable: Any, durable: set[Any]) -> None:
    durable.discard(future)
    if not future.cancelled() and future.exception() is None:
        on_durable(result)


async def dry_run(router: Router, path: str) -> dict[str, Any]:
    """Route every line without calling a model: expected cost per model and in total, and the most the
    batch could cost (what ``--max-cost`` reserves)."""
    check_jsonl(path)
    budget = BatchBudget(MemoryStore(), key="dry-run", max_cost_usd=1.0, catalog=router.catalog)
    strongest = router.catalog.strongest()
    per_model: Counter[str] = Counter()
    cost: Counter[str] = Counter()
    invalid: list[str] = []
    total = baseline = ceiling = 0.0
    lines = 0
    for number, _, raw in read_lines(path):
        item = parse_item(number, raw)
        lines += 1
        if item.body is None:
            invalid.append(item.error or f"line {number}")
            continue
        try:
            plan = await router.plan(item.body)
            ceiling += budget.ceiling_usd(item.body)
        except TierrouteError as exc:
            invalid.append(f"line {number}: {exc.message}")
            continue
        chosen = plan.decision.chosen
        per_model[chosen.model.id] += 1
        cost[chosen.model.id] += chosen.expected_cost_usd
        total += chosen.expected_cost_usd
        if strongest is not None:
            baseline += expected_cost_usd(plan.features, strongest)
    return {
        "lines": lines, "invalid": len(invalid), "invalid_examples": invalid[:10],
        "models": {m: {"lines": n, "expected_usd": round(cost[m], 8)} for m, n in per_model.most_common()},
        "expected_usd": round(total, 8), "strongest_model_expected_usd": round(baseline, 8),
        "worst_case_usd": round(ceiling, 8),
    }


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
