"""Plots for ``tierroute eval --plot``. matplotlib is imported here only, lazily, with the Agg backend."""

from __future__ import annotations

from typing import Any

from .metrics import cost_quality_report, two_model_report
from .replay import Replay, router_points, router_score, strong_weak


def plot_report(replay: Replay, metrics: dict[str, Any], path: str) -> None:
    """Two models: PGR against strong share. With costs: cost-quality curves with zero router and oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = replay.data
    has_two = len(data.models) == 2
    fig, axes = plt.subplots(1, int(has_two) + int(data.has_costs) or 1, figsize=(6 * (int(has_two) + int(data.has_costs) or 1), 4.5),
                             squeeze=False)
    ax_iter = iter(axes[0])
    if has_two:
        ax = next(ax_iter)
        s, w = strong_weak(data)
        rep = two_model_report(router_score(replay.pred, data), data.scores[:, s], data.scores[:, w])
        xs, ys = zip(*rep.pgr_curve)
        interval = metrics.get("two_model", {}).get("intervals", {}).get("apgr")
        spread = f", 95% {interval[0]:.3f}..{interval[1]:.3f}" if interval else ""
        ax.plot(xs, ys, label=f"router (APGR {rep.apgr:.3f}{spread})")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="random (0.5)")
        ax.set_xlabel(f"share of calls to {data.models[s]}")
        ax.set_ylabel("performance gap recovered")
        ax.legend()
    if data.has_costs:
        ax = next(ax_iter)
        rep2 = cost_quality_report(router_points(replay), data.models, data.scores, data.costs)
        right = max(c for c, _ in rep2.singles.values())
        for label, hull, style in (("router", rep2.router_hull, "-"), ("zero router", rep2.zero_hull, "--"),
                                   ("oracle", rep2.oracle_hull, ":")):
            xs, ys = zip(*hull)
            if xs[-1] < right:  # flat to the right of a curve's last point, as AIQ counts it
                xs, ys = (*xs, right), (*ys, ys[-1])
            ax.plot(xs, ys, style, label=label)
        for m, (c, q) in rep2.singles.items():
            ax.scatter([c], [q], s=12)
            ax.annotate(m.split("/")[-1], (c, q), fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per request (USD)")
        ax.set_ylabel("mean quality")
        interval = metrics.get("cost_quality", {}).get("intervals", {}).get("gap_closed")
        spread = f" (95% {interval[0]:.1%}..{interval[1]:.1%})" if interval else ""
        ax.set_title(f"AIQ router {rep2.aiq_router:.3f} / zero {rep2.aiq_zero:.3f} / oracle {rep2.aiq_oracle:.3f}; "
                     f"gap closed {rep2.gap_closed:.1%}{spread}", fontsize=9)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
