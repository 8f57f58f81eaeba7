"""Learning-curve plot (PNG) for simulation reports."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Draw every strategy's mean curve with its per-seed spread, and the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
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
    ax.set_xlabel("labels")
    ax.set_ylabel(report["metric"])
    ax.set_title(f"{report['dataset']}: learning curves ({len(next(iter(report['strategies'].values()))['per_seed'])} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
