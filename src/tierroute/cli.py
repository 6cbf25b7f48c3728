"""The ``tierroute`` command: a thin shell that parses arguments, builds a Router, and prints."""

from __future__ import annotations

import ipaddress
import re
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import click
import orjson

from ._exceptions import ConfigError, TierrouteError
from .evaluation.commands import compare_command, eval_command, train_command

CONFIG_OPTION = click.option("--config", "-c", "config", type=click.Path(dir_okay=False), default=None,
                             help="YAML config file (default: $TIERROUTE_CONFIG, ./tierroute.yaml, else the environment).")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _echo_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _fail(exc: TierrouteError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(2 if isinstance(exc, ConfigError) else 1)


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn tierroute errors into one clear line on stderr and a non-zero exit, not a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TierrouteError as exc:
            _fail(exc)
    return wrapper


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ensure_file_descriptors(max_connections: int) -> None:
    """Raise the soft open-files limit so ``max_connections`` clients plus upstream pools and the ledger fit.

    At the limit the process can accept nothing, not even the connection that would be told 503."""
    import resource

    wanted = 2 * max_connections + 1024  # clients, as many upstream connections, and files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        if new_soft < wanted:
            click.echo(f"tierroute: warning: the open-files limit ({hard}) is low for server.max_connections "
                       f"{max_connections}; lower it or raise the limit (ulimit -n)", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tierroute")
def main() -> None:
    """tierroute: send each LLM request to the cheapest model that will answer it well."""


@main.command()
@CONFIG_OPTION
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 4000).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes; limits hold across them only with limits.state.backend: redis.")
@_guarded
def serve(config: str | None, host: str | None, port: int | None, log_level: str, workers: int) -> None:
    """Run the OpenAI-compatible gateway."""
    import os
    from pathlib import Path

    import uvicorn

    from .bootstrap import load, router_for
    from .server import create_app
    from .server.collector import tune_for_serving
    from .server.protocol import uvicorn_options

    loaded = load(config)
    settings = loaded.settings
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    if settings.keys.enabled and not settings.server.admin_key and not _is_loopback(host):
        raise ConfigError(f"refusing to listen on {host} with keys.enabled but no server.admin_key: set one "
                          "(usually ${ENV_VAR}) or bind to 127.0.0.1", param="server.admin_key")
    if not settings.server.api_keys and not settings.keys.enabled:
        if not _is_loopback(host):
            raise ConfigError(f"refusing to listen on {host} without API keys: set server.api_keys in the config "
                              "(or TIERROUTE_API_KEYS), or bind to 127.0.0.1")
        click.echo("tierroute: no API keys configured, so listening on loopback only", err=True)
    if not loaded.catalog.models:
        click.echo("tierroute: warning: no models available. Set a provider key (e.g. OPENAI_API_KEY), start a local "
                   "server (Ollama, vLLM, llama.cpp) or pass --config", err=True)
    experiment = settings.router.experiment
    policy = (f"experiment {experiment.name} (arms {', '.join(a.name for a in experiment.arms)})" if experiment
              else f"policy {settings.router.policy}")
    click.echo(f"tierroute: {len(loaded.catalog.models)} models from {', '.join(sorted(settings.providers)) or 'no providers'} "
               f"({loaded.source}); {policy}; ledger {settings.ledger.backend}"
               f"{' ' + settings.ledger.path if settings.ledger.backend == 'sqlite' else ''}", err=True)
    # proxy_headers=False: no X-Forwarded-* rewriting middleware (nothing reads client addresses);
    # server_header=False: no "server: uvicorn". The Date header stays (computed once a second).
    # http: httptools behind limits on header size, header time and connections (server/protocol.py);
    # ws="none": the gateway speaks no WebSocket, so an Upgrade request is never handed to another protocol.
    options: dict[str, Any] = dict(host=host, port=port, loop="uvloop", log_level=log_level, ws="none",
                                   access_log=False, lifespan="on", proxy_headers=False, server_header=False,
                                   **uvicorn_options(settings.server))
    _ensure_file_descriptors(settings.server.max_connections)
    if workers > 1:
        if settings.limits.state.backend == "memory" and (
                settings.limits.budgets or settings.limits.rate_limits):
            click.echo(f"tierroute: warning: limits use the in-memory store, so each of {workers} workers enforces "
                       "them on its own; set limits.state.backend: redis to share them", err=True)
        if loaded.source != "environment":
            os.environ["TIERROUTE_CONFIG"] = str(Path(loaded.source).resolve())
        click.echo(f"tierroute: listening on http://{host}:{port}/v1 with {workers} workers", err=True)
        uvicorn.run("tierroute.bootstrap:gateway_app", factory=True, workers=workers, **options)
        return
    router = router_for(loaded)
    click.echo(f"tierroute: listening on http://{host}:{port}/v1", err=True)
    app = create_app(router)
    tune_for_serving()
    uvicorn.run(app, **options)


def _router(config: str | None, *, with_ledger: bool = True) -> Any:
    from .bootstrap import build_router

    return build_router(config, with_ledger=with_ledger)


def prompt_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The PROMPT argument and the request options ``chat`` and ``route`` share."""
    for option in reversed((
        click.argument("prompt"),
        CONFIG_OPTION,
        click.option("--model", "-m", default="auto", show_default=True, help="'auto', a tier name, or a model id."),
        click.option("--system", default=None, help="System prompt."),
        click.option("--max-tokens", type=int, default=None, help="Upper bound on the answer's tokens."),
    )):
        fn = option(fn)
    return fn


def _body(prompt: str, model: str, system: str | None, max_tokens: int | None) -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


@main.command()
@prompt_options
@click.option("--stream/--no-stream", default=False, help="Print the answer as it arrives.")
@JSON_OPTION
@_guarded
def chat(prompt: str, config: str | None, model: str, system: str | None, max_tokens: int | None,
         stream: bool, as_json: bool) -> None:
    """Ask PROMPT through the router; print the answer and the routing decision."""
    with _router(config) as router:
        body = _body(prompt, model, system, max_tokens)
        if stream and not as_json:
            body["stream"] = True
            for chunk in router.stream(body):
                for choice in chunk.get("choices") or ():
                    click.echo((choice.get("delta") or {}).get("content") or "", nl=False)
            click.echo()
            return
        routed = router.completion(body)
        answer = routed.response["choices"][0]["message"].get("content") or ""
        if as_json:
            _echo_json({"answer": answer, "routing": routed.headers, "response": routed.response})
            return
        click.echo(answer)
        h = routed.headers
        click.echo(f"\n[{h['x-tierroute-model']} via {h['x-tierroute-deployment']}; {h['x-tierroute-reason']}; "
                   f"${float(h['x-tierroute-cost-usd']):.6f}; router overhead {h['x-tierroute-overhead-ms']} ms]", err=True)


def _plan_json(plan: Any) -> dict[str, Any]:
    decision = plan.decision
    out: dict[str, Any] = {
        "requested": plan.features.requested_model,
        "resolved_as": plan.resolved_as,
        "prompt_tokens_estimate": plan.features.prompt_tokens,
        "chosen": decision.chosen.model.id,
        "reason": decision.reason,
        "policy": decision.policy,
        "candidates": [{"model": r.model.id, "expected_cost_usd": r.expected_cost_usd,
                        "predicted_quality": r.predicted_quality, "score": r.score} for r in decision.ranked],
        "rejected": [{"model": m, "why": why} for m, why in plan.rejected],
        "details": dict(decision.details),
    }
    if plan.intent is not None:
        out["intent"] = plan.intent.as_dict()
    return out


@main.command()
@prompt_options
@JSON_OPTION
@_guarded
def route(prompt: str, config: str | None, model: str, system: str | None, max_tokens: int | None, as_json: bool) -> None:
    """Show the routing decision for PROMPT without calling any model."""
    with _router(config, with_ledger=False) as router:
        started = time.perf_counter()
        plan = router.route(_body(prompt, model, system, max_tokens))
        elapsed_ms = (time.perf_counter() - started) * 1000
    data = _plan_json(plan)
    data["decision_ms"] = round(elapsed_ms, 3)
    if as_json:
        _echo_json(data)
        return
    click.echo(f"chosen: {data['chosen']}   ({data['reason']})")
    click.echo(f"prompt tokens (estimate): {data['prompt_tokens_estimate']}   resolved as: {data['resolved_as']}"
               f"   policy: {data['policy']}")
    if "intent" in data:
        scores = ", ".join(f"{k} {v:.2f}" for k, v in sorted(data["intent"]["scores"].items(), key=lambda kv: -kv[1]))
        click.echo(f"intent: {data['intent']['match'] or 'no intent matched'} (threshold "
                   f"{data['intent']['threshold']:.2f})   scores: {scores}")
    click.echo(f"{'rank':>4}  {'model':<40} {'expected cost':>14} {'quality':>8}")
    for i, c in enumerate(data["candidates"], 1):
        q = "" if c["predicted_quality"] is None else f"{c['predicted_quality']:.3f}"
        if c["predicted_quality"] is not None and c["predicted_quality"] < 0:
            q = "kept off"  # an estimated prior on a prompt that does not look easy (docs/catalog.md)
        click.echo(f"{i:>4}  {c['model']:<40} {'$' + format(c['expected_cost_usd'], '.6f'):>14} {q:>8}")
    for r in data["rejected"]:
        click.echo(f"   -  {r['model']:<40} rejected: {r['why']}")
    details = {k: v for k, v in data["details"].items() if k != "top"}
    if details:
        click.echo("details: " + ", ".join(f"{k}={v}" for k, v in details.items()))


@main.command()
@CONFIG_OPTION
@JSON_OPTION
@_guarded
def models(config: str | None, as_json: bool) -> None:
    """List the models this gateway can route to, with tiers and prices (USD per million tokens)."""
    from .bootstrap import load

    catalog = load(config).catalog
    rows = [{"id": m.id, "provider": m.provider, "upstream": m.upstream, "tier": m.tier,
             "context_window": m.context_window, "max_output_tokens": m.max_output_tokens,
             "input_price": m.input_price, "output_price": m.output_price,
             "capabilities": sorted(m.capabilities), "source": m.source, "as_of": m.as_of,
             "cached_input_price": m.cached_input_price, "cache_write_price": m.cache_write_price,
             "quality": m.quality, "quality_source": m.quality_source, "quality_as_of": m.quality_as_of,
             "quality_estimated": m.quality_estimated}
            for m in catalog.models.values()]
    if as_json:
        _echo_json({"models": rows, "tiers": {k: [m.id for m in v] for k, v in catalog.tiers.items()}})
        return
    if not rows:
        click.echo("no models available: set a provider key (e.g. OPENAI_API_KEY) or pass --config")
        return
    # Columns as wide as their longest entry, so long ids (discovered local models) keep the table aligned.
    wid = max(40, *(len(r["id"]) for r in rows))
    wprov = max(10, *(len(r["provider"]) for r in rows))
    wtier = max(11, *(len(r["tier"] or "-") for r in rows))
    click.echo(f"{'model':<{wid}} {'provider':<{wprov}} {'tier':<{wtier}} {'context':>9} {'in $/M':>8} {'out $/M':>8} "
               f"{'prior':>6}  capabilities")
    for r in rows:
        # "~" marks an estimated prior (no published standing: kept to easy prompts by the default router).
        prior = "-" if r["quality"] is None else f"{'~' if r['quality_estimated'] else ''}{r['quality']:.2f}"
        click.echo(f"{r['id']:<{wid}} {r['provider']:<{wprov}} {r['tier'] or '-':<{wtier}} {r['context_window']:>9} "
                   f"{r['input_price']:>8.2f} {r['output_price']:>8.2f} {prior:>6}  {','.join(r['capabilities'])}")


@main.group()
def catalog() -> None:
    """Keep the model catalog fresh: import prices from LiteLLM's price list, check their age."""


@catalog.command("import")
@click.option("--from", "source", type=click.Path(dir_okay=False), default=None,
              help="A LiteLLM model_prices_and_context_window_backup.json (default: the installed litellm's).")
@click.option("--as-of", default=None, help="Date the list's prices were published, YYYY-MM-DD (default: today).")
@click.option("--version", "list_version", default=None, help="LiteLLM version the file comes from (provenance).")
@click.option("--all", "everything", is_flag=True,
              help="Every chat and embedding model of a known provider, not only the built-in catalog's.")
@click.option("--provider", "providers", multiple=True, help="Only this provider (repeatable).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the YAML here (default: stdout).")
@_guarded
def catalog_import(source: str | None, as_of: str | None, list_version: str | None, everything: bool,
                   providers: tuple[str, ...], output: str | None) -> None:
    """Print `models:` entries with current prices, limits and capabilities, each with its source and date.

    Paste them under `models:` in your config (they override only those fields of built-in models), or keep
    the file and merge it by hand. Models LiteLLM marks deprecated are left out."""
    from datetime import date, datetime, timezone

    import yaml

    from .catalog import builtin_models
    from .catalog_import import import_entries, read_price_list

    today = datetime.now(timezone.utc).date().isoformat()
    if as_of is not None:
        try:
            date.fromisoformat(as_of)
        except ValueError:
            raise ConfigError(f"--as-of: expected YYYY-MM-DD, got {as_of!r}") from None
    prices = read_price_list(source, version=list_version)
    only = None if everything else [m.id for m in builtin_models()]
    entries = import_entries(prices, as_of=as_of or today, only=only, providers=providers or None, today=today)
    text = yaml.safe_dump({"models": entries}, sort_keys=False, width=200)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
    missing = sorted(set(only or ()) - {e["id"] for e in entries})
    click.echo(f"{len(entries)} model(s) from {prices.label} ({prices.path})"
               + (f"; not in the list or deprecated: {', '.join(missing)}" if missing else ""), err=True)


@catalog.command("check")
@CONFIG_OPTION
@click.option("--max-age-days", type=click.IntRange(min=1), default=None,
              help="Override catalog.max_price_age_days.")
@_guarded
def catalog_check(config: str | None, max_age_days: int | None) -> None:
    """Warn about prices older than catalog.max_price_age_days (or undated); exit 1 when there are any."""
    from datetime import datetime, timezone

    from .bootstrap import load
    from .catalog import stale_prices

    loaded = load(config, discover=False)
    limit = max_age_days or loaded.settings.catalog.max_price_age_days
    stale = stale_prices(loaded.catalog.models.values(), max_age_days=limit, today=datetime.now(timezone.utc).date())
    for model, why in stale:
        click.echo(f"warning: {model.id} ({model.provider}): {why}; source: {model.source or 'none'}", err=True)
    priced = sum(1 for m in loaded.catalog.models.values() if m.input_price or m.output_price)
    click.echo(f"{priced - len(stale)} of {priced} priced model(s) have prices at most {limit} days old")
    if stale:
        sys.exit(1)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if not match:
        raise click.BadParameter(f"expected a duration like 30m, 6h, 7d; got {value!r}", param_hint="--since")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return time.time() - seconds


@main.command()
@CONFIG_OPTION
@click.option("--since", default=None, help="Only requests newer than this (e.g. 1h, 7d).")
@JSON_OPTION
@_guarded
def stats(config: str | None, since: str | None, as_json: bool) -> None:
    """Spend, savings against the strongest model, and latency percentiles per model."""
    import dataclasses

    from .bootstrap import load
    from .ledger import open_ledger
    from .ledger.stats import summarize

    settings = load(config, discover=False).settings
    ledger = open_ledger(settings.ledger)
    if ledger is None:
        raise ConfigError("ledger.backend is 'none': there is nothing to report")
    try:
        summary = summarize(ledger.stats_rows(_since(since)))
    finally:
        ledger.close()
    if as_json:
        data = dataclasses.asdict(summary)
        data["savings_usd"] = summary.savings_usd
        data["savings_share"] = summary.savings_share
        _echo_json(data)
        return
    click.echo(f"requests: {summary.requests}  errors: {summary.errors} (refused before any upstream call: "
               f"{summary.refused})  upstream attempts: {summary.attempts}")
    share = "" if summary.savings_share is None else f" ({summary.savings_share:.1%})"
    click.echo(f"spend: ${summary.cost_usd:.6f}   all-strongest-model baseline: ${summary.baseline_cost_usd:.6f}   "
               f"saved: ${summary.savings_usd:.6f}{share}")
    if summary.overhead_p50_ms is not None:
        click.echo(f"router overhead: p50 {summary.overhead_p50_ms:.3f} ms, p99 {summary.overhead_p99_ms:.3f} ms")
    if summary.estimated:
        click.echo(f"token counts estimated by tierroute (the server sent no usage): {summary.estimated} of "
                   f"{summary.attempts} attempts (column 'est')")
    if summary.models:
        # requests/errors: requests that ended at this model; attempts/failed: every upstream attempt sent to it;
        # est: attempts whose token counts tierroute estimated because the server sent no usage
        click.echo(f"\n{'model':<40} {'requests':>8} {'errors':>6} {'attempts':>8} {'failed':>6} {'tokens in':>10} "
                   f"{'tokens out':>10} {'est':>5} {'cost $':>11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
        for m in summary.models:
            def f(v: float | None) -> str:
                return "-" if v is None else f"{v:.0f}"
            click.echo(f"{m.model:<40} {m.requests:>8} {m.errors:>6} {m.attempts:>8} {m.failed_attempts:>6} "
                       f"{m.prompt_tokens:>10} {m.completion_tokens:>10} {m.estimated:>5} "
                       f"{m.cost_usd:>11.6f} {f(m.latency_p50_ms):>8} {f(m.latency_p95_ms):>8} {f(m.latency_p99_ms):>8}")


@main.command()
@CONFIG_OPTION
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False, writable=True), required=True,
              help="JSONL file to write (outcome format, as read by `tierroute train`).")
@click.option("--since", default=None, help="Only requests newer than this (e.g. 1h, 7d).")
@click.option("--judged", is_flag=True, help="Export continuous evaluation's judged pairs (both arms scored) "
                                             "instead of feedback-labelled requests.")
@_guarded
def export(config: str | None, out: str, since: str | None, judged: bool) -> None:
    """Export labelled traffic (requests with POST /v1/feedback scores) as outcome data for training."""
    from .bootstrap import load
    from .ledger import open_ledger
    from .ledger.export import export_outcomes

    settings = load(config, discover=False).settings
    ledger = open_ledger(settings.ledger)
    if ledger is None:
        raise ConfigError("ledger.backend is 'none': there is nothing to export")
    if judged:
        from .evals.export import export_judged

        try:
            with open(out, "wb") as handle:
                pairs = export_judged(ledger, handle, since_ts=_since(since))
        finally:
            ledger.close()
        click.echo(f"wrote {pairs.written} judged pairs to {out}")
        if pairs.without_prompt:
            click.echo(f"skipped {pairs.without_prompt} judgments recorded without their prompt (set "
                       "evals.store_prompts: true to keep prompts for training)", err=True)
        return
    try:
        with open(out, "wb") as handle:
            counts = export_outcomes(ledger, handle, since_ts=_since(since))
    finally:
        ledger.close()
    click.echo(f"wrote {counts.written} labelled requests to {out}")
    if counts.without_prompt:
        click.echo(f"skipped {counts.without_prompt} labelled requests recorded without their prompt "
                   "(set ledger.store_prompts: true to keep prompts for training)", err=True)


@main.command("evals")
@CONFIG_OPTION
@click.option("--since", default=None, help="Only judgments newer than this (e.g. 1h, 7d).")
@JSON_OPTION
@_guarded
def evals(config: str | None, since: str | None, as_json: bool) -> None:
    """Continuous evaluation per route: samples, win/tie/loss against the reference, interval, guard state."""
    import asyncio

    from .bootstrap import load
    from .evals.report import as_dict, render_table, route_quality, shared_states
    from .ledger import open_ledger

    settings = load(config, discover=False).settings
    ledger = open_ledger(settings.ledger)
    if ledger is None:
        raise ConfigError("ledger.backend is 'none': there are no judgments to report")
    try:
        judgments = ledger.judgments(_since(since))
    finally:
        ledger.close()
    guard = settings.evals.guard
    rows = route_quality(judgments, asyncio.run(shared_states(settings)), margin=guard.margin,
                         confidence=guard.confidence)
    if as_json:
        _echo_json({"margin": guard.margin, "confidence": guard.confidence, "routes": [as_dict(q) for q in rows]})
        return
    click.echo(render_table(rows, margin=guard.margin, confidence=guard.confidence))


@main.group("experiment")
def experiment() -> None:
    """A/B between router versions (router.experiment)."""


@experiment.command("report")
@CONFIG_OPTION
@click.option("--since", default=None, help="Only requests newer than this (e.g. 1h, 7d).")
@JSON_OPTION
@_guarded
def experiment_report_command(config: str | None, since: str | None, as_json: bool) -> None:
    """Per arm: requests, cost per request and quality (judged, feedback) with 95% intervals, and what
    promoting the cheapest arm would save."""
    from .bootstrap import load
    from .evals.experiment import as_dict, experiment_report, render_table
    from .ledger import open_ledger

    settings = load(config, discover=False).settings
    ledger = open_ledger(settings.ledger)
    if ledger is None:
        raise ConfigError("ledger.backend is 'none': there are no requests to report")
    start = _since(since)
    try:
        report = experiment_report(ledger.entries(start), ledger.judgments(start), ledger.labelled(start))
    finally:
        ledger.close()
    if as_json:
        _echo_json(as_dict(report))
        return
    click.echo(render_table(report))


main.add_command(train_command, "train")
main.add_command(eval_command, "eval")
main.add_command(compare_command, "compare")


def _keys_group() -> click.Group:
    from .keys.cli import keys

    return keys


main.add_command(_keys_group())


@main.command("config-reference")
def config_reference() -> None:
    """Print the configuration reference (docs/configuration.md), generated from the settings models."""
    from .config_reference import render

    click.echo(render(), nl=False)


def _batch_command() -> click.Command:
    from .batch.cli import batch

    return batch


main.add_command(_batch_command())
