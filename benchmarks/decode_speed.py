"""Decoding speed of :func:`activestream.schemas.decode_items`, the scorer's hot path, per item layout.

Decodes ``--items`` items (default 200,000) of 16 features in micro-batches of 1,000, in each
layout the scorer reads, and prints items/s (best of ``--repeat`` runs); ``--json`` also writes
them. Run before and after a change to the decoders::

    python -m benchmarks.decode_speed --json /tmp/decode.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from activestream.schemas import Item, decode_items

BATCH = 1000


def layouts(n: int, d: int) -> dict[str, list[bytes]]:
    """``n`` items of ``d`` features in each layout, as message values."""
    X = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    ids = [f"item-{i:08d}" for i in range(n)]
    short = [f"i{i}" for i in range(n)]  # ids of varying length: raw items not of one size
    return {
        "json": [Item(ids[i], X[i]).encode() for i in range(n)],
        "json_metadata": [Item(ids[i], X[i], {"source": "bench", "n": i}).encode() for i in range(n)],
        "b64": [Item(ids[i], X[i]).encode(binary=True) for i in range(n)],
        "raw_uniform": [Item(ids[i], X[i]).encode(raw=True) for i in range(n)],
        "raw_mixed": [Item(short[i], X[i]).encode(raw=True) for i in range(n)],
    }


def rate(payloads: list[bytes], d: int, repeat: int) -> float:
    """Best items/s over ``repeat`` passes of ``decode_items`` in batches of ``BATCH``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for lo in range(0, len(payloads), BATCH):
            batch = decode_items(payloads[lo : lo + BATCH], n_features=d)
            assert len(batch.ids) == len(payloads[lo : lo + BATCH]), batch.errors[:1]
        best = min(best, time.perf_counter() - t0)
    return len(payloads) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    out: dict[str, float] = {}
    for name, payloads in layouts(args.items, args.features).items():
        out[name] = round(rate(payloads, args.features, args.repeat))
        print(f"{name:14s} {out[name]:>12,.0f} items/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"items": args.items, "features": args.features, "batch": BATCH, "items_per_second": out}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
