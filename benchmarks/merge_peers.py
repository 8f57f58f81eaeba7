"""Merge peer runs (``benchmarks/run_peers.py`` outputs) into one file, a suite from each.

Peers of different suites may come from different runs (other seeds, or a larger budget
truncated to the suite's: a campaign's curve up to a smaller budget is a prefix of it).

Usage::

    python -m benchmarks.merge_peers --out benchmarks/results/peers_90seeds.json \\
        --take digits=d90_peers.json --take synthetic10=s90_peers.json@1740 ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.run_strategies import _truncate_entry


def merge(takes: list[str]) -> dict[str, Any]:
    """``takes``: ``SUITE=FILE`` or ``SUITE=FILE@BUDGET``; returns one run_peers-shaped document."""
    out: dict[str, Any] = {"full_data_score": {}, "meta": {"protocol": {}, "seeds": {}, "sources": {}}}
    for take in takes:
        suite, _, spec = take.partition("=")
        path, _, budget_text = spec.partition("@")
        doc = json.loads(Path(path).read_text())
        if suite not in doc:
            raise SystemExit(f"{path}: no suite {suite!r}")
        full = doc["full_data_score"][suite]
        protocol = dict(doc["meta"]["protocol"][suite])
        peers = doc[suite]
        if budget_text:
            budget = int(budget_text)
            if budget > protocol["budget"]:
                raise SystemExit(f"{path}: {suite} ran to {protocol['budget']} labels, fewer than {budget}")
            peers = {p: _truncate_entry(e, budget, full) for p, e in peers.items()}
            protocol["budget"] = budget
        out[suite] = peers
        out["full_data_score"][suite] = full
        out["meta"]["protocol"][suite] = protocol
        out["meta"]["seeds"][suite] = doc["meta"]["seeds"][suite]
        out["meta"]["sources"][suite] = take
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--take", action="append", required=True, metavar="SUITE=FILE[@BUDGET]")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.write_text(json.dumps(merge(args.take), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
