"""``tierroute batch``: parses, builds the router and prints; the engine is the rest of this package."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..cli import CONFIG_OPTION, JSON_OPTION, _echo_json, _guarded, _router
from . import JobOptions
from . import job as batch_job
from .progress import render_summary


@click.command()
@click.argument("input_path", metavar="IN.jsonl", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "output", required=True, type=click.Path(dir_okay=False),
              help="Output JSONL (OpenAI batch output format); also the journal a re-run resumes from.")
@CONFIG_OPTION
@click.option("--max-cost", "max_cost", type=float, default=None, help="Hard spend cap in USD for the whole job.")
@click.option("--dry-run", is_flag=True, help="Route every line without calling a model; print the expected cost.")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=256, show_default=True,
              help="The most lines in flight; the adaptive limit rises to it unless providers push back.")
@click.option("--max-tries", type=click.IntRange(1, 100), default=6, show_default=True,
              help="Tries per line on passing failures (429, 5xx, timeouts).")
@click.option("--retry-failed", is_flag=True, help="Send again the lines a previous run recorded as failed.")
@click.option("--job", default=None, help="Job name (tags requests batch:<job>); default: the output file's name.")
@click.option("--redis", "redis_url", default=None,
              help="Share the job with workers on other machines through this Redis (same --job on each).")
@click.option("--worker", default=None, help="This worker's name in the shared job (default: host-pid).")
@click.option("--reclaim-after", "reclaim_seconds", type=float, default=60.0, show_default=True,
              help="With --redis: take over a silent worker's lines after this many seconds.")
@click.option("--progress", "progress_mode", type=click.Choice(["auto", "live", "plain", "none"]), default="auto",
              show_default=True, help="live: one updating line; plain: a line per interval (auto: live on a terminal).")
@click.option("--progress-seconds", type=float, default=2.0, show_default=True)
@JSON_OPTION
@_guarded
def batch(input_path: str, output: str, config: str | None, max_cost: float | None, dry_run: bool, concurrency: int,
          max_tries: int, retry_failed: bool, job: str | None, redis_url: str | None, worker: str | None,
          reclaim_seconds: float, progress_mode: str, progress_seconds: float, as_json: bool) -> None:
    """Send every line of IN.jsonl through the router; write one output line per input line to --out.

    Run the same command again after a stop to continue where it left off. Exit status: 0 when every line
    was answered, 3 when some lines failed (see --retry-failed), 130 when interrupted."""
    live = progress_mode == "live" or (progress_mode == "auto" and sys.stderr.isatty())
    out = None if progress_mode == "none" else sys.stderr
    options = JobOptions(input=input_path, output=output, max_cost_usd=max_cost, concurrency=concurrency,
                         max_tries=max_tries, retry_failed=retry_failed, job=job, progress_seconds=progress_seconds)
    router = _router(config)

    async def run() -> dict[str, Any]:
        try:
            if dry_run:
                return await batch_job.dry_run(router, input_path)
            if redis_url:
                from .distributed import run_worker

                return await run_worker(router, options, redis_url=redis_url, worker=worker,
                                        reclaim_seconds=reclaim_seconds, progress_out=out, live=live)
            return await batch_job.run_file(router, options, progress_out=out, live=live)
        finally:
            await router.aclose()

    try:
        summary = _run_fast(run())
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: run the same command to continue; answered lines are in {output}", err=True)
        sys.exit(130)
    if as_json:
        _echo_json(summary)
    elif dry_run:
        click.echo(f"dry run: {summary['lines']} lines, {summary['invalid']} invalid")
        for model, row in summary["models"].items():
            click.echo(f"  {model:32} {row['lines']:>9} lines  ${row['expected_usd']:.6f}")
        click.echo(f"expected total ${summary['expected_usd']:.6f} (all on the strongest model: "
                   f"${summary['strongest_model_expected_usd']:.6f}); worst case ${summary['worst_case_usd']:.6f}")
        for example in summary["invalid_examples"]:
            click.echo(f"  invalid: {example}", err=True)
    else:
        click.echo(render_summary(summary), err=True)
    if not dry_run and summary.get("failed"):
        sys.exit(3)


def _run_fast(coro: Any) -> Any:
    """asyncio.run on uvloop when it is installed (as the gateway runs): a third more lines per second."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
