"""Paired per-seed AUC differences of every strategy in a ``run_strategies.py`` output against chosen baselines.

    python benchmarks/paired_table.py benchmarks/results/strategies_digits784_i23div.json \\
        --against margin+kcenter,margin --out benchmarks/results/strategies_digits784_i23div_paired.md

Prints (and with ``--out`` writes) one markdown table per suite: labels to 95% / 99% of the
full-data score (mean curve), AUC, and per baseline the mean ± standard error of the per-seed
AUC difference (same seeds, same splits, same seed labels).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activestream.simulation.recommend import paired_difference  # noqa: E402 - the product's maths


def table(name: str, res: dict[str, Any], against: list[str]) -> list[str]:
    """The markdown lines of one suite's table."""
    st = res["strategies"]
    n_seeds = sorted({len(e["per_seed"]) for e in st.values()})
    lines = [f"## {name} (budget {res['budget']}, {res['metric']}, full-data {res['full_data_score']:.4f}, seeds: {'/'.join(map(str, n_seeds))})", "",
             "| strategy | labels to 95% | labels to 99% | AUC | final | " + " | ".join(f"AUC − {b} (± s.e.)" for b in against) + " |",
             "|---|---|---|---|---|" + "---|" * len(against)]
    for s, e in sorted(st.items(), key=lambda kv: -kv[1]["auc"]):
        cells = []
        for b in against:
            d = paired_difference(e, st[b]) if b in st and b != s else None
            cells.append("—" if d is None else f"{d['mean']:+.4f} ± {d['se']:.4f}")
        fmt = lambda v: "—" if v is None else str(v)  # noqa: E731
        lines.append(f"| {s} | {fmt(e['labels_to_95'])} | {fmt(e['labels_to_99'])} | {e['auc']:.4f} | {e['final_score']:.4f} | "
                     + " | ".join(cells) + " |")
    return [*lines, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="outputs of run_strategies.py")
    ap.add_argument("--against", default="margin+kcenter,margin", help="baselines, comma-separated")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    against = args.against.split(",")
    lines = ["# Paired per-seed AUC differences", ""]
    for path in args.results:
        for name, res in json.loads(Path(path).read_text())["results"].items():
            lines += table(name, res, against)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
