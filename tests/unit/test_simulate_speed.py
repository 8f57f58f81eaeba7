"""The speed benchmark's own logic (benchmarks/simulate_speed.py): the pool-scaling set and the per-suite summary."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.simulate_speed import big_pool, peer_for, summarize


def test_big_pool_is_synthetic10_shaped() -> None:
    ds = big_pool(5000)
    assert ds.X.shape == (5000, 40) and ds.task == "multiclass" and len(ds.classes) == 10
    counts = np.bincount(ds.y)
    assert counts[0] > 4 * counts[-1]  # imbalanced like synthetic10 (shares falling by 0.8 a class)


def test_summary_takes_medians_of_the_pairs() -> None:
    pairs = [{"ours_s": o, "peer_s": p, "ratio": o / p, "load_before": 1.0} for o, p in ((2.0, 1.0), (3.0, 1.0), (10.0, 1.0))]
    s = summarize("x", 100, 70, "modal_margin", pairs)
    assert (s["ours_seconds"], s["peer_seconds"], s["ratio"], s["ratio_max"]) == (3.0, 1.0, 3.0, 10.0)
    assert s["load_average"] == pytest.approx(1.0)


def test_the_peer_is_modal_margin_or_its_multilabel_loop() -> None:
    assert peer_for("multiclass") == "modal_margin" and peer_for("multilabel") == "modal_ml_min_confidence"
