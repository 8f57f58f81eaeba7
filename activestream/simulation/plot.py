"""Learning-curve plot (PNG) for simulation reports."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def new_figure() -> tuple[Any, Any]:
    """A figure and its axes, drawn off screen (Agg): every report plot has this size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(8, 5), dpi=110)


def save_figure(fig: Any, ax: Any, path: str | Path, *, xlabel: str, ylabel: str, title: str) -> Path:
    """Label the axes, add the grid and legend, write the PNG to ``path`` (its folder made) and free the figure."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # (nothing to plot yet, e.g. a report before the first model: no empty legend box)
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "nothing to plot yet", transform=ax.transAxes, ha="center", va="center", color="gray")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Draw every strategy's mean curve with its per-seed spread, and the target line."""
    import numpy as np

    fig, ax = new_figure()
    for name, entry in report["strategies"].items():
        xs = [x for x, _ in entry["curve"]]
        ys = [y for _, y in entry["curve"]]
        (line,) = ax.plot(xs, ys, label=f"{name} (labels to target: {entry['labels_to_target']})")
        per = [dict(map(tuple, c)) for c in entry["per_seed"]]
        lo = [min(p.get(x, np.nan) for p in per) for x in xs]
        hi = [max(p.get(x, np.nan) for p in per) for x in xs]
        ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
    ax.axhline(report["target"], color="grey", linestyle="--", linewidth=1, label=f"target {report['target']:.3f}")
    ax.axhline(report["full_data_score"], color="black", linestyle=":", linewidth=1, label=f"full data {report['full_data_score']:.3f}")
    n_seeds = len(next(iter(report["strategies"].values()))["per_seed"])
    return save_figure(fig, ax, path, xlabel="labels", ylabel=report["metric"], title=f"{report['dataset']}: learning curves ({n_seeds} seeds)")
