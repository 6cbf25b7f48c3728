"""``tierroute train``, ``eval`` and ``compare``: thin shells over ``train.py``, ``replay.py`` and ``comparison.py``.

They parse options, call the library, and print; nothing here decides anything a test cannot reach directly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .._exceptions import TierrouteError
from ..policies.artifact import ArtifactError, load_artifact, save_artifact
from ..policies.calibration import Goal
from ..cascade.answers import ANSWER_KINDS
from .cascade import cross_validate_cascade, train_test_cascade
from .comparison import compare, load_side
from .data import OutcomeSet, load_outcomes
from .encoder_options import Encoder, encoder_options
from .replay import (Replay, by_split, cross_validate, cv_folds, decisions, only_split, replay_artifact, report,
                     router_points, router_score, strong_weak, train_test)
from .metrics import quality_by_strong_share
from .train import DEFAULT_BITS, file_digest, train_router
from .uncertainty import DEFAULT_RESAMPLES


def _require_train_extra(*, plot: bool = False) -> None:
    """Training needs the ``train`` extra; say so in one line instead of an ImportError traceback."""
    import importlib.util

    needed = ["numpy", "scipy", "sklearn"] + (["matplotlib"] if plot else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(f"this needs the train extra ({', '.join(missing)} not installed): "
                                   "pip install 'tierroute[train]'")


def _goal(ctx: click.Context, param: click.Parameter, value: str) -> Goal:
    try:
        return Goal.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


FAST_HELP = ("Skip the inner-CV search: tf weighting, C=1, no auxiliary targets, no second stage (a quick look, "
             "not the shipped pipeline).")
NO_AUXILIARY_HELP = ("Do not try the data's categories and recorded answer lengths as training-only targets "
                     "(docs/routing-quality.md, \"How the router is built\").")


JOBS_HELP = ("Worker processes for the independent fits [default: one per CPU when the data is large enough to "
             "gain; 1 runs everything in this process]. The router is the same whatever the number.")


NO_FAMILIARITY_HELP = ("Trust the n-grams of every prompt, however unlike the training prompts (by default they are "
                       "trusted less the further a prompt is from them; docs/routing-quality.md, \"Transfer\").")


def _search(fast: bool, no_auxiliary: bool, jobs: int | None, no_familiarity: bool = False) -> dict[str, Any]:
    search: dict[str, Any] = {"c_grid": (1.0,), "weightings": ("tf",), "second_stage": False} if fast else {}
    search["jobs"] = jobs
    search["familiarity"] = not no_familiarity
    if fast or no_auxiliary:
        search["auxiliary"] = False
    return search


def _notes(data: OutcomeSet, quiet: bool = False) -> None:
    """What loading the data changed (missing costs priced at a model's mean), on stderr."""
    if not quiet:
        for note in data.notes:
            click.echo(f"note: {note}", err=True)


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    return lambda msg: click.echo(f"... {msg}", err=True)


@click.command("train")
@click.option("--data", "data_files", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Outcome JSONL file(s) to train on (repeatable).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Router file to write (.npz).")
@click.option("--goal", default="quality=0.95", callback=_goal, show_default=True,
              help="Operating point to calibrate out of fold: quality=<share of best model>, cost=<USD/request>, "
                   "strong_share=<0-1>, or lambda=<quality points per dearest model's cost>. A routed setting is "
                   "deployed only where it beats the zero router (the best mix of single models) out of fold.")
@click.option("--bits", default=DEFAULT_BITS, show_default=True, help="Hashed feature space is 2**bits buckets.")
@click.option("--focus", type=click.Choice(["last", "all"]), default="last", show_default=True,
              help="Featurise the final question block only, or the whole routing text.")
@click.option("--fast", is_flag=True, help=FAST_HELP)
@click.option("--no-auxiliary", is_flag=True, help=NO_AUXILIARY_HELP)
@click.option("--no-familiarity", is_flag=True, help=NO_FAMILIARITY_HELP)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help=JOBS_HELP)
@click.option("--split", "split", default=None, metavar="NAME",
              help="Train only on the items whose 'split' field is NAME (e.g. train, in a file that carries a fixed "
                   "split; `tierroute eval --split` judges the test items).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("--quiet", is_flag=True, help="No progress messages on stderr.")
@encoder_options
def train_command(data_files: tuple[str, ...], out_path: str, goal: Goal, bits: int, focus: str, fast: bool,
                  no_auxiliary: bool, no_familiarity: bool, jobs: int | None, split: str | None, as_json: bool, quiet: bool,
                  encoder: Encoder | None) -> None:
    """Train a router from outcome data and write it as a safe (non-pickle) .npz file."""
    _require_train_extra()
    try:
        data = load_outcomes(list(data_files), partial=True)
        _notes(data, quiet)
        if split is not None:
            data = only_split(data, split)
        if not data.complete and not quiet and not as_json:
            click.echo(f"note: {data.incomplete_items} of {len(data)} items lack some model's "
                       "score (logged traffic): each model is trained on the items it answered; no trees, auxiliary "
                       "targets or shrinkage (docs/training.md)", err=True)
        provenance = {"data": [{"file": Path(f).name, "sha256": file_digest(f)} for f in data_files],
                      "command": "tierroute train " + " ".join(f"--data {f}" for f in data_files)
                      + (f" --split {split}" if split is not None else "")
                      + f" --goal {goal} --bits {bits} --focus {focus}" + (" --fast" if fast else "")
                      + (" --no-auxiliary" if no_auxiliary else "")
                      + (" --no-familiarity" if no_familiarity else "")
                      + (f" --encoder {encoder.kind} ({encoder.model})" if encoder else "")}
        artifact, rep = train_router(data, goal=goal, bits=bits, focus=focus,  # type: ignore[arg-type]
                                     provenance=provenance, progress=_progress(not quiet and not as_json),
                                     encoder=encoder, **_search(fast, no_auxiliary, jobs, no_familiarity))
        size = save_artifact(artifact, out_path)
    except TierrouteError as exc:
        raise click.ClickException(exc.message) from None
    if not quiet and not as_json:  # --json carries them under "notes"
        for note in rep.notes:
            click.echo(f"note: {note}", err=True)
    summary = {"out": out_path, "bytes": size, "items": len(data), "models": list(data.models), "c": rep.c, "weighting": rep.weighting,
               "second_stage": rep.second_stage, "shrink": rep.shrink, "auxiliary_targets": list(rep.auxiliary),
               "seconds": round(rep.seconds, 2), "goal": str(goal),
               "objective": {"mode": artifact.objective.mode, "value": artifact.objective.value,
                             "models": list(artifact.objective.models)},
               "heldout_operating_point": rep.operating_point, "heldout_routing": rep.routing,
               "calibration": rep.calibration, "familiarity": artifact.heldout.get("familiarity"),
               "notes": list(rep.notes)}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"wrote {out_path} ({size / 1024:.0f} KiB) from {len(data)} items x {len(data.models)} models "
               f"in {rep.seconds:.1f}s ({rep.weighting}, C={rep.c}"
               f"{', + auxiliary targets' if rep.auxiliary else ''}"
               f"{', + second stage' if rep.second_stage else ''}"
               f"{f', shrink {rep.shrink:g}' if rep.shrink != 1.0 else ''})")
    op = rep.operating_point
    click.echo(f"operating point for {goal}: {artifact.objective.describe()} -> out-of-fold "
               f"quality {op['quality']:.3f} ({op['quality_vs_best']:.1%} of best), strongest-model share "
               f"{op['strong_share']:.1%}, cost {op['cost']:.4g}"
               + (f", {op['margin_over_zero']:+.4f} over the zero router at that cost (SE {op['margin_se']:.4f})"
                  if op["routed"] else "")
               + f"; {op['settings_beating_zero']} of {op['settings']} routed settings beat the zero router")
    _print_heldout_routing(rep.routing)
    if rep.auxiliary:
        click.echo(f"  auxiliary targets (training only, folded into the linear stage): {_targets(rep.auxiliary)}")
    for m, c in rep.calibration.items():
        click.echo(f"  {m:45s} brier {c['brier']:.4f}  ece {c['ece']:.4f}")


def _print_heldout_routing(routing: dict[str, float]) -> None:
    """Whether routing pays on this data, out of fold, and a note when it does not. The same predictions chose
    the configuration, so the figure leans optimistic, the more so the fewer the items (60 items: +20% of the
    gap closed here against -6% under `eval --cv`); the note is reliable the other way: no gain even here."""
    where = "held out, inner CV (optimistic: it also chose the settings; `tierroute eval --cv 5` is not)"
    if "apgr" in routing:
        click.echo(f"{where}:\n  APGR {routing['apgr']:.3f} (random 0.5), CPT(50%) {routing['cpt50']:.1%}")
        if routing["apgr"] <= 0.5:
            click.echo("note: the router ranks held-out prompts no better than chance; routing these prompts will "
                       "not beat a random split between the two models", err=True)
    elif "gap_closed" in routing:
        click.echo(f"{where}:\n  AIQ {routing['aiq_router']:.4f} vs zero router {routing['aiq_zero']:.4f} and oracle "
                   f"{routing['aiq_oracle']:.4f}: gap closed {routing['gap_closed']:.1%}, worst margin over zero "
                   f"{routing['min_margin_over_zero']:+.4f}")
        if routing["gap_closed"] <= 0:
            click.echo("note: on held-out items the router does not beat the best fixed mix of models (the zero "
                       "router): sending every request to one model at the price you want would do as well", err=True)


def _targets(names: tuple[str, ...]) -> str:
    """'category rate: a', 'category rate: b', ... as 'category rate (a, b)', or '(11 models)' past three."""
    kinds: dict[str, list[str]] = {}
    for name in names:
        kind, _, model = name.partition(": ")
        kinds.setdefault(kind, []).append(model)
    return "; ".join(f"{kind} ({', '.join(models) if len(models) <= 3 else f'{len(models)} models'})"
                     for kind, models in kinds.items())


@click.command("eval")
@click.option("--router", "router_path", type=click.Path(exists=True, dir_okay=False),
              help="Trained router file; omit with --cv or --train to train inside the evaluation.")
@click.option("--data", "data_files", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Outcome JSONL file(s) to evaluate on.")
@click.option("--train", "train_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Train on these files, then test on --data (e.g. RouterBench train/test splits).")
@click.option("--cv", "cv", type=int, default=None, help="k-fold cross-validation over the items' 'fold' field.")
@click.option("--split", "by_split_field", is_flag=True,
              help="Train on the items whose 'split' is \"train\", evaluate on those whose split is \"test\" (one "
                   "file that carries a fixed split, as RouterBench's do).")
@click.option("--goal", default="quality=0.95", callback=_goal, show_default=True,
              help="Operating point calibrated on training data when training inside the evaluation (as for train).")
@click.option("--focus", type=click.Choice(["last", "all"]), default="last", show_default=True)
@click.option("--bits", default=DEFAULT_BITS, show_default=True, help="Hashed feature space when training inside the evaluation.")
@click.option("--fast", is_flag=True, help=FAST_HELP)
@click.option("--no-auxiliary", is_flag=True, help=NO_AUXILIARY_HELP)
@click.option("--no-familiarity", is_flag=True, help=NO_FAMILIARITY_HELP)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help=JOBS_HELP)
@click.option("--decisions", "decisions_path", type=click.Path(dir_okay=False), help="Write per-item decisions (JSONL).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a cost-quality / PGR plot (PNG).")
@click.option("--resamples", type=click.IntRange(min=0), default=DEFAULT_RESAMPLES, show_default=True,
              help="Bootstrap resamples of the evaluated items for 95% intervals on APGR/CPT or AIQ/gap closed "
                   "(the routers are not retrained); 0 skips them.")
@click.option("--cascade", is_flag=True,
              help="Also evaluate cascades from the recorded replies (cheap models first, the strongest when they "
                   "disagree), the chain chosen on the training items; needs --train, --split or --cv.")
@click.option("--cascade-answer", type=click.Choice(ANSWER_KINDS), default="auto", show_default=True,
              help="How --cascade extracts the final answer it compares: the option letter, the final number, "
                   "normalised text, or auto.")
@click.option("--project", "projection", multiple=True, metavar="NAME[=AS]",
              help="Judge only these models of --data (repeatable, in this order), renaming NAME to AS: how a router "
                   "trained on two models is judged on a file that scores more, e.g. RouterBench ARC's GPT-4 and "
                   "Mixtral for a router trained on RouteLLM's (docs/routing-quality.md, \"Transfer\").")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@encoder_options
def eval_command(router_path: str | None, data_files: tuple[str, ...], train_files: tuple[str, ...], cv: int | None,
                 by_split_field: bool, goal: Goal, focus: str, bits: int, fast: bool, no_auxiliary: bool,
                 no_familiarity: bool, jobs: int | None,
                 decisions_path: str | None, plot_path: str | None, resamples: int, cascade: bool,
                 cascade_answer: str, projection: tuple[str, ...], as_json: bool, encoder: Encoder | None) -> None:
    """Evaluate a router on outcome data: APGR/CPT for two models, AIQ vs zero router and oracle with costs."""
    modes = sum([router_path is not None, bool(train_files), cv is not None, by_split_field])
    if modes != 1:
        raise click.UsageError("give exactly one of --router, --train FILE, --cv K, or --split")
    if router_path is not None and encoder is not None:
        raise click.UsageError("--encoder is for training; a --router file brings its own encoder")
    if cascade and router_path is not None:
        raise click.UsageError("--cascade chooses its chain on training items: give --train, --split or --cv")
    if cascade and projection:
        raise click.UsageError("--cascade reads every recorded reply of --data: it does not combine with --project")
    _require_train_extra(plot=bool(plot_path))  # replaying a corpus featurizes it in bulk (scipy)
    progress = _progress(not as_json)
    try:
        data = load_outcomes(list(data_files))
        _notes(data)
        if projection:
            data = data.project([_projected(spec) for spec in projection])
        replay: Replay
        if router_path is not None:
            replay = replay_artifact(load_artifact(router_path), data)
        elif train_files:
            train = load_outcomes(list(train_files), partial=True)  # logged traffic may train; --data is judged
            _notes(train)
            shared = {it.id for it in train.items} & {it.id for it in data.items}
            if shared:
                click.echo(f"note: {len(shared)} of the {len(data)} evaluated items are also in the training data "
                           f"(same id, e.g. {min(shared)!r}): their figures are not held out", err=True)
            replay = train_test(train, data, goal=goal, focus=focus, bits=bits, progress=progress, encoder=encoder,
                                **_search(fast, no_auxiliary, jobs, no_familiarity))
        elif by_split_field:
            train, test = by_split(data)
            replay = train_test(train, test, goal=goal, focus=focus, bits=bits, progress=progress, encoder=encoder,
                                **_search(fast, no_auxiliary, jobs, no_familiarity))
        else:
            replay = cross_validate(data, k=cv, goal=goal, focus=focus, bits=bits, progress=progress, encoder=encoder,
                                    **_search(fast, no_auxiliary, jobs, no_familiarity))
            for note in replay.notes:
                click.echo(f"note: {note}", err=True)
    except (TierrouteError, ArtifactError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from None
    metrics = report(replay, resamples)
    if cascade:
        points = _router_curve(replay)
        if train_files:
            metrics["cascade"] = train_test_cascade(train, list(train_files), data, list(data_files), cascade_answer,
                                                    points, resamples)
        elif by_split_field:
            metrics["cascade"] = train_test_cascade(train, list(data_files), test, list(data_files), cascade_answer,
                                                    points, resamples)
        else:
            metrics["cascade"] = cross_validate_cascade(data, list(data_files), cv_folds(data, cv)[0],
                                                        cascade_answer, points, resamples)
    if decisions_path:
        with open(decisions_path, "w", encoding="utf-8") as f:
            for row in decisions(replay):
                f.write(json.dumps(row) + "\n")
    if plot_path:
        from .plots import plot_report

        plot_report(replay, metrics, plot_path)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    _print_report(metrics)
    if "cascade" in metrics:
        print_cascade(metrics["cascade"])


def _projected(spec: str) -> tuple[str, str]:
    """``--project NAME=AS`` as (NAME, AS); a bare NAME keeps its name."""
    name, _, new = spec.partition("=")
    return name.strip(), (new or name).strip()


def _print_cost_quality_points(rows: dict[str, dict[str, float | None]]) -> None:
    """The curves at each model's cost: what the router buys for the money each single model costs."""
    def q(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    title = "quality at each model's cost"
    width = max([len(title)] + [len(m) for m in rows])
    click.echo(f"  {title:{width}s} {'cost':>9s} {'alone':>6s} {'zero':>6s} {'router':>6s} {'oracle':>6s}")
    for m, r in rows.items():
        click.echo(f"  {m:{width}s} {r['cost']:9.2e} {q(r['quality']):>6s} {q(r['zero']):>6s} "
                   f"{q(r['router']):>6s} {q(r['oracle']):>6s}")


def _print_intervals(m: dict[str, Any], figures: list[tuple[str, Any, str]]) -> None:
    """One line of bootstrap intervals; an interval whose upper end is undefined prints as 'never'."""
    def show(interval: Any, fmt: str) -> str:
        if interval is None:
            return "never (on more than 2.5% of resamples)"
        return f"{interval[0]:{fmt}}..{interval[1]:{fmt}}"

    b = m["bootstrap"]
    click.echo(f"  {b['level']:.0%} intervals ({b['resamples']} resamples of the items): "
               + ", ".join(f"{name} {show(interval, fmt)}" for name, interval, fmt in figures))


def _print_settings(settings: dict[str, Any]) -> None:
    """Every lambda setting's point against the zero router at its cost (distinct points only)."""
    click.echo(f"  every setting ({settings['distinct']} distinct points of {len(settings['points'])} lambdas): "
               f"{settings['below_zero']} more than {settings['below_zero_by']:g} below the zero router at their "
               f"cost, worst {settings['worst_margin']:+.4f}")
    click.echo(f"  {'lambda':>9s} {'cost':>9s} {'quality':>7s} {'zero':>7s} {'margin':>8s}")
    seen = set()
    for p in settings["points"]:
        key = (round(p["cost"], 12), round(p["quality"], 12))
        if key not in seen:
            seen.add(key)
            click.echo(f"  {p['lambda']:9.3g} {p['cost']:9.2e} {p['quality']:7.4f} {p['zero']:7.4f} {p['margin']:+8.4f}")


def _print_operating_point(m: dict[str, Any]) -> None:
    op = m["operating_point"]
    top = sorted(op["share"].items(), key=lambda kv: -kv[1])[:3]
    click.echo(f"deployed operating point ({op['objective']['text']}): quality {op['quality']:.4f}"
               + (f", cost {op['cost']:.5f}; zero router at that cost {op['zero_at_cost']:.4f}, margin "
                  f"{op['margin_over_zero']:+.4f}" if "cost" in op else "")
               + "; " + ", ".join(f"{k} {v:.0%}" for k, v in top))
    if "intervals" in op:
        _print_intervals(m, [("quality", op["intervals"]["quality"], ".4f"),
                             ("margin over zero", op["intervals"]["margin_over_zero"], "+.4f")])


def _print_report(m: dict[str, Any]) -> None:
    click.echo(f"{m['items']} items, {len(m['models'])} models")
    if "two_model" in m:
        t = m["two_model"]
        click.echo(f"strong {t['strong']} ({t['q_strong']:.3f}) vs weak {t['weak']} ({t['q_weak']:.3f})")
        click.echo(f"APGR {t['apgr']:.3f}   CPT(50%) {t['cpt50']:.1%}   CPT(80%) {t['cpt80']:.1%}   "
                   f"strong share for 95% of strong quality {t['strong_share_for_95pct_quality']:.1%}")
        if "intervals" in t:
            i = t["intervals"]
            _print_intervals(m, [("APGR", i["apgr"], ".3f"), ("CPT(50%)", i["cpt50"], ".1%"),
                                 ("CPT(80%)", i["cpt80"], ".1%"),
                                 ("strong share", i["strong_share_for_95pct_quality"], ".1%")])
    if "cost_quality" in m:
        c = m["cost_quality"]
        click.echo(f"AIQ router {c['aiq_router']:.4f}   zero router {c['aiq_zero']:.4f}   oracle {c['aiq_oracle']:.4f}   "
                   f"gap closed {c['gap_closed']:.1%}   worst margin over zero {c['min_margin_over_zero']:+.4f}")
        share = c["cost_share_for_best_single_quality"]
        click.echo(f"{c['best_single']}'s quality reached at "
                   + ("never" if share is None else f"{share:.1%} of its cost"))
        if "intervals" in c:
            i = c["intervals"]
            _print_intervals(m, [("AIQ", i["aiq_router"], ".4f"), ("gap closed", i["gap_closed"], ".1%"),
                                 ("worst margin", i["min_margin_over_zero"], "+.4f"),
                                 ("best single's quality at", i["cost_share_for_best_single_quality"], ".1%")])
        _print_cost_quality_points(c["at_model_costs"])
        _print_settings(c["settings"])
    _print_operating_point(m)
    for t in m.get("training", []):
        targets = tuple(t["auxiliary_targets"])
        click.echo(f"trained ({t['router']}): {t['weighting']}, C={t['c']:g}"
                   + (f", auxiliary targets {_targets(targets)}" if targets else "")
                   + (", second stage" if t["second_stage"] else "")
                   + (f", shrink {t['shrink']:g}" if t["shrink"] != 1.0 else "") + f" ({t['seconds']:.1f} s)")
    if "familiarity" in m:
        f = m["familiarity"]
        click.echo(f"familiarity: {f['unfamiliar_share']:.1%} of items less familiar than 90% of held-out training "
                   f"prompts (n-grams trusted less), {f['ignored_share']:.1%} so unlike them that only their "
                   f"structure features were used; mean trust {f['mean_trust']:.2f}")
    worst = max(m["calibration"].items(), key=lambda kv: kv[1]["ece"])
    click.echo(f"calibration: worst ECE {worst[1]['ece']:.3f} ({worst[0]}), mean Brier "
               f"{sum(v['brier'] for v in m['calibration'].values()) / len(m['calibration']):.4f}")


FIGURE_LABELS = {"apgr": ("APGR", ".4f"), "cpt50": ("CPT(50%)", ".1%"), "cpt80": ("CPT(80%)", ".1%"),
                 "strong_share_for_95pct_quality": ("strong share for 95%", ".1%"),
                 "aiq_router": ("AIQ", ".4f"), "gap_closed": ("gap closed", ".1%"),
                 "min_margin_over_zero": ("worst margin over zero", "+.4f"),
                 "cost_share_for_best_single_quality": ("best single's quality at", ".1%"),
                 "brier": ("mean Brier", ".4f")}


@click.command("compare")
@click.option("--data", "data_files", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Outcome JSONL file(s) both routers are scored on.")
@click.argument("first", type=click.Path(exists=True, dir_okay=False))
@click.argument("second", type=click.Path(exists=True, dir_okay=False))
@click.option("--resamples", type=click.IntRange(min=1), default=DEFAULT_RESAMPLES, show_default=True,
              help="Paired bootstrap resamples of the items.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_command(data_files: tuple[str, ...], first: str, second: str, resamples: int, as_json: bool) -> None:
    """Compare two routers on the same items: each figure for both, and second - first with a paired 95% interval.

    FIRST and SECOND are router files (replayed on --data) or decisions files from `tierroute eval --decisions`
    (how two training pipelines are compared under --cv).
    """
    _require_train_extra()
    try:
        data = load_outcomes(list(data_files))
        _notes(data)
        result = compare(load_side(first, data), load_side(second, data), data, resamples)
    except (TierrouteError, ArtifactError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    _print_comparison(result)


def _print_comparison(result: dict[str, Any]) -> None:
    click.echo(f"{result['items']} items, {len(result['models'])} models; first {result['first']}, second "
               f"{result['second']}; {result['bootstrap']['resamples']} paired resamples of the items")
    click.echo(f"{'figure':24s} {'first':>9s} {'second':>9s}   second - first (95%)")
    for row in result["figures"]:
        label, fmt = FIGURE_LABELS[row["figure"]]
        diff, interval = row["difference"], row["interval"]
        first, second = (_figure(row[side], fmt) for side in ("first", "second"))
        spread = ("undefined on too many resamples" if interval is None
                  else f"{_delta(interval[0], fmt)} .. {_delta(interval[1], fmt)}")
        click.echo(f"{label:24s} {first:>9s} {second:>9s}   "
                   + ("n/a" if diff is None else f"{_delta(diff, fmt)} ({spread})"))


def _figure(value: float | None, fmt: str) -> str:
    return "never" if value is None else f"{value:{fmt}}"


def _delta(value: float, fmt: str) -> str:
    """A difference: in percentage points for figures that are shares, else signed in the figure's format."""
    return f"{100 * value:+.1f} pt" if fmt.endswith("%") else f"{value:+{fmt.lstrip('+')}}"


if __name__ == "__main__":  # pragma: no cover - convenience for running without the main CLI group
    group = click.Group(commands={"train": train_command, "eval": eval_command, "compare": compare_command})
    sys.exit(group())


def _router_curve(replay: Replay) -> list[tuple[float, float]] | None:
    """The router's curve in the cascade's cost unit: mean cost, or without costs the share of strong calls."""
    data = replay.data
    if data.has_costs:
        return router_points(replay)
    if len(data.models) != 2:
        return None
    s, w = strong_weak(data)
    curve = quality_by_strong_share(router_score(replay.pred, data), data.scores[:, s], data.scores[:, w])
    return [(k / len(data), float(q)) for k, q in enumerate(curve)]


def print_cascade(c: dict[str, Any]) -> None:
    """The cascade chosen on training items, scored on the evaluated ones, beside the strongest model, the zero
    router and the router at the same cost; then the front of every chain on the evaluated items."""
    unit = "share of strong calls" if not c["priced"] else "share of the strongest model's cost"
    ch = c["chosen"]
    click.echo(f"\ncascade (chain chosen on training items; cost = {unit})")
    for part in ch["chains"]:
        click.echo(f"  chain: {part['chain']}  ({part['items']} items; on training: quality "
                   f"{part['train']['quality']:.3f} vs strongest {part['train']['strong_quality']:.3f})")
    iv = ch.get("intervals", {})

    def band(name: str, fmt: str) -> str:
        v = iv.get(name)
        return f" [{v[0]:{fmt}}, {v[1]:{fmt}}]" if v else ""

    click.echo(f"  quality {ch['quality']:.3f}{band('quality', '.3f')} vs {c['strong']} {c['strong_quality']:.3f} "
               f"(difference {ch['minus_strong']:+.3f}{band('minus_strong', '+.3f')})")
    whose = "of the strongest model's cost" if c["priced"] else "strong calls"
    click.echo(f"  cost {ch['cost_share']:.1%}{band('cost_share', '.1%')} {whose}, "
               f"escalated on {ch['escalated']:.1%} of items")
    others = []
    if ch.get("zero_at_cost") is not None:
        others.append(f"zero router {ch['zero_at_cost']:.3f}")
    if ch.get("router_at_cost") is not None:
        others.append(f"router {ch['router_at_cost']:.3f}")
    if others:
        click.echo("  at the same cost: " + ", ".join(others))
    reach = c.get("front_reaching_strong")
    if reach:
        click.echo(f"  cheapest chain reaching the strongest model's accuracy on these items (picked on them, "
                   f"optimistic): {reach['chain']} at {reach['cost_share']:.1%} of its cost")
    else:
        click.echo("  no chain reaches the strongest model's accuracy on these items")
    click.echo("  front of all chains on these items (cost share, quality, zero router, router):")
    for row in c["front"]:
        zero = "" if row["zero"] is None else f"  zero {row['zero']:.3f}"
        router = "" if row["router"] is None or row["router"] != row["router"] else f"  router {row['router']:.3f}"
        click.echo(f"    {row['cost_share']:6.1%}  {row['quality']:.3f}{zero}{router}  {row['chain']}")
