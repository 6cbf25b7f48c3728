"""The A/B report between router versions (``tierroute experiment report``): per arm, cost per request and
quality, each with a 95% bootstrap interval, and what promoting the cheapest arm would save.

Arms come from the ledger's ``arm`` column (``router.experiment``), quality from the ``judgments`` table
(pairwise or checks verdicts against the reference: +1 win, 0 tie, -1 loss for the routed answer) and from
``/v1/feedback`` scores. Arms are different requests, so differences are two-sample: each arm is resampled on
its own (seeded: the same ledger gives the same intervals). Percentile bootstrap intervals are too narrow on
small samples; the report says when an arm has too few requests or judgments to trust them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..ledger.base import Judgment, Labelled, LedgerEntry

LEVEL = 0.95
RESAMPLES = 2000
# Below these the report still prints figures but says they are rough.
MIN_REQUESTS = 30
MIN_JUDGED = 20
_MAX_DRAWS = 4_000_000  # indices drawn at once (32 MB)
_VERDICT = {"win": 1, "tie": 0, "loss": -1}

Interval = tuple[float, float] | None


@dataclass(slots=True)
class ArmFigures:
    arm: str
    requests: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    cost_per_request: float = 0.0
    cost_interval: Interval = None
    judged: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    net_win: float | None = None  # mean(win - loss) against the reference
    net_win_interval: Interval = None
    feedback: int = 0
    feedback_mean: float | None = None
    feedback_interval: Interval = None
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Promotion:
    """What sending every request to ``winner`` (the cheapest arm per request) would have saved."""

    winner: str
    savings_usd: float
    savings_interval: Interval
    # per other arm: the difference winner minus that arm, with its interval and whether it excludes 0
    net_win_difference: dict[str, tuple[float, Interval, str]] = field(default_factory=dict)
    feedback_difference: dict[str, tuple[float, Interval, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ExperimentReport:
    arms: list[ArmFigures]
    promotion: Promotion | None


def _interval(values: np.ndarray) -> Interval:
    tail = 100 * (1 - LEVEL) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _boot_means(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``RESAMPLES`` means of ``values`` resampled with replacement, in chunks so memory stays bounded."""
    n = len(values)
    chunk = max(1, min(RESAMPLES, _MAX_DRAWS // max(n, 1)))
    return np.concatenate([values[rng.integers(0, n, (min(chunk, RESAMPLES - i), n))].mean(axis=1)
                           for i in range(0, RESAMPLES, chunk)])


def _difference(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, Interval, str]:
    """mean(a) - mean(b), its two-sample bootstrap interval, and a verdict."""
    if len(a) < 2 or len(b) < 2:
        return (float(a.mean() - b.mean()) if len(a) and len(b) else 0.0), None, "too few to compare"
    interval = _interval(_boot_means(a, rng) - _boot_means(b, rng))
    verdict = "higher" if interval[0] > 0 else "lower" if interval[1] < 0 else "no significant difference"
    if min(len(a), len(b)) < MIN_JUDGED:
        verdict += " (few samples: rough)"
    return float(a.mean() - b.mean()), interval, verdict


def experiment_report(entries: Sequence[LedgerEntry], judgments: Sequence[Judgment], labelled: Sequence[Labelled],
                      *, seed: int = 0) -> ExperimentReport:
    """Figures per arm from a ledger's ``entries()``, ``judgments()`` and ``labelled()`` (any backend)."""
    arm_of: dict[str, str] = {}
    errors: dict[str, int] = {}
    for e in entries:
        if e.final and e.arm is not None:
            arm_of[e.request_id] = e.arm
            if e.status != "ok":
                errors[e.arm] = errors.get(e.arm, 0) + 1
    cost: dict[str, float] = dict.fromkeys(arm_of, 0.0)
    for e in entries:  # every attempt of a request counts: a retry's cost is the arm's too
        if e.request_id in cost:
            cost[e.request_id] += e.cost_usd
    costs: dict[str, list[float]] = {}
    for request_id, arm in arm_of.items():
        costs.setdefault(arm, []).append(cost[request_id])
    scores: dict[str, list[int]] = {}
    for j in judgments:
        arm = arm_of.get(j.request_id)
        if arm is not None and j.verdict in _VERDICT and j.judge not in ("feedback", "guard"):
            scores.setdefault(arm, []).append(_VERDICT[j.verdict])
    feedback: dict[str, list[float]] = {}
    for label in labelled:
        arm = arm_of.get(label.request_id)
        if arm is not None:
            feedback.setdefault(arm, []).append(label.score)

    rng = np.random.default_rng(seed)
    figures = []
    for arm in sorted(costs):
        c = np.asarray(costs[arm])
        f = ArmFigures(arm=arm, requests=len(c), errors=errors.get(arm, 0), cost_usd=float(c.sum()),
                       cost_per_request=float(c.mean()), cost_interval=_interval(_boot_means(c, rng)))
        if len(c) < MIN_REQUESTS:
            f.notes.append(f"only {len(c)} requests: the cost interval is rough")
        s = np.asarray(scores.get(arm, []), dtype=np.float64)
        f.judged, f.wins, f.ties, f.losses = len(s), int((s > 0).sum()), int((s == 0).sum()), int((s < 0).sum())
        if len(s):
            f.net_win = float(s.mean())
            f.net_win_interval = _interval(_boot_means(s, rng)) if len(s) > 1 else None
        if len(s) < MIN_JUDGED:
            f.notes.append(f"only {len(s)} judged: too few to say much about quality")
        fb = np.asarray(feedback.get(arm, []), dtype=np.float64)
        f.feedback = len(fb)
        if len(fb):
            f.feedback_mean = float(fb.mean())
            f.feedback_interval = _interval(_boot_means(fb, rng)) if len(fb) > 1 else None
        figures.append(f)
    return ExperimentReport(arms=figures, promotion=_promotion(figures, costs, scores, feedback, rng))


def _promotion(figures: list[ArmFigures], costs: dict[str, list[float]], scores: dict[str, list[int]],
               feedback: dict[str, list[float]], rng: np.random.Generator) -> Promotion | None:
    if len(figures) < 2:
        return None
    winner = min(figures, key=lambda f: f.cost_per_request).arm
    others = [f.arm for f in figures if f.arm != winner]
    w = np.asarray(costs[winner])
    # sum over the other arms of (their mean cost - the winner's) x their requests, on the same resamples
    boot_w = _boot_means(w, rng)
    savings = sum((float(np.mean(costs[o])) - float(w.mean())) * len(costs[o]) for o in others)
    boot = sum((_boot_means(np.asarray(costs[o]), rng) - boot_w) * len(costs[o]) for o in others)
    promo = Promotion(winner=winner, savings_usd=savings, savings_interval=_interval(np.asarray(boot)))
    if promo.savings_interval is not None and promo.savings_interval[0] <= 0:
        promo.notes.append("the saving is not significant: its interval includes 0")
    for o in others:
        promo.net_win_difference[o] = _difference(np.asarray(scores.get(winner, []), dtype=np.float64),
                                                  np.asarray(scores.get(o, []), dtype=np.float64), rng)
        promo.feedback_difference[o] = _difference(np.asarray(feedback.get(winner, []), dtype=np.float64),
                                                   np.asarray(feedback.get(o, []), dtype=np.float64), rng)
        lower = [v for _, _, v in (promo.net_win_difference[o], promo.feedback_difference[o]) if v.startswith("lower")]
        if lower:
            rough = " (on few samples: check again with more)" if all("rough" in v for v in lower) else ""
            promo.notes.append(f"{winner} is cheaper but its quality is significantly lower than {o}'s{rough}")
    return promo


def as_dict(report: ExperimentReport) -> dict[str, object]:
    return {"level": LEVEL, "arms": [asdict(f) for f in report.arms],
            "promotion": asdict(report.promotion) if report.promotion is not None else None}


def _fmt(interval: Interval, digits: int = 6, sign: str = "") -> str:
    if interval is None:
        return "-"
    return f"[{interval[0]:{sign}.{digits}f}, {interval[1]:{sign}.{digits}f}]"


def render_table(report: ExperimentReport) -> str:
    if not report.arms:
        return "no requests with an experiment arm in the ledger (is router.experiment set?)"
    lines = ["intervals: 95% bootstrap; net win = mean(win - loss) against the reference, from judged samples",
             f"{'arm':<20} {'requests':>8} {'errors':>6} {'$/request':>11} {'95% interval':>26} {'judged':>6} "
             f"{'win':>5} {'tie':>5} {'loss':>5} {'net win':>8} {'interval':>18} {'feedback':>8} {'mean':>6}"]
    for f in report.arms:
        net = f"{f.net_win:+.3f}" if f.net_win is not None else "-"
        fb = f"{f.feedback_mean:.3f}" if f.feedback_mean is not None else "-"
        lines.append(f"{f.arm:<20} {f.requests:>8} {f.errors:>6} {f.cost_per_request:>11.6f} "
                     f"{_fmt(f.cost_interval):>26} {f.judged:>6} {f.wins:>5} {f.ties:>5} {f.losses:>5} {net:>8} "
                     f"{_fmt(f.net_win_interval, 2, '+'):>18} {f.feedback:>8} {fb:>6}")
        lines.extend(f"  {f.arm}: {note}" for note in f.notes)
    p = report.promotion
    if p is not None:
        lines.append(f"promoting {p.winner} (cheapest per request) would have saved ${p.savings_usd:.6f} on the "
                     f"other arms' requests, 95% interval {_fmt(p.savings_interval)}")
        for other, (diff, interval, verdict) in p.net_win_difference.items():
            lines.append(f"  net win, {p.winner} - {other}: {diff:+.3f} {_fmt(interval, 3, '+')}: {verdict}")
        for other, (diff, interval, verdict) in p.feedback_difference.items():
            lines.append(f"  feedback, {p.winner} - {other}: {diff:+.3f} {_fmt(interval, 3, '+')}: {verdict}")
        lines.extend(f"  note: {note}" for note in p.notes)
    return "\n".join(lines)
