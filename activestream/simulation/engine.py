"""Run many simulated campaigns (strategies x seeds) and build the JSON report from them."""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import redis

from activestream.scorer.strategies import RANDOM
from activestream.simulation.campaign import CampaignResult, SimConfig, run_campaign
from activestream.simulation.curves import auc, hours_saved, labels_to_target, mean_curve, savings
from activestream.simulation.datasets import Dataset
from activestream.simulation.estimates import beside_truth, validation_summary

log = logging.getLogger(__name__)

def _worker(args: tuple[Dataset, str, int, SimConfig, str]) -> CampaignResult:
    ds, strategy, seed, cfg, url = args
    logging.getLogger("activestream").setLevel(logging.WARNING)
    return run_campaign(ds, strategy, seed, cfg, redis.Redis.from_url(url))


def simulate(ds: Dataset, cfg: SimConfig, redis_url: str, *, progress: bool = True) -> dict[str, Any]:
    """Run every (strategy, seed) campaign and build the report.

    Returns
    -------
    ``{"dataset", "metric", "full_data_score", "target", "config", "strategies": {NAME: {...}}, "comparison"}``.
    """
    jobs = [(ds, s, seed, cfg, redis_url) for s in cfg.strategies for seed in cfg.seeds]
    results: list[CampaignResult] = []
    bar = _bar(len(jobs) * _rounds(cfg), progress)
    if cfg.workers > 1:
        with mp.get_context("spawn").Pool(min(cfg.workers, len(jobs))) as pool:
            for res in pool.imap_unordered(_worker, jobs):
                results.append(res)
                bar.update(_rounds(cfg))
    else:
        client = redis.Redis.from_url(redis_url)
        for _, s, seed, _, _ in jobs:
            results.append(run_campaign(ds, s, seed, cfg, client, on_round=lambda: bar.update(1)))
    bar.close()
    return build_report(ds, cfg, results)


def _rounds(cfg: SimConfig) -> int:
    return 1 + int(np.ceil((cfg.budget - cfg.init) / cfg.batch))


def _bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="round", desc="simulating", leave=False)


def build_report(ds: Dataset, cfg: SimConfig, results: Sequence[CampaignResult]) -> dict[str, Any]:
    """The JSON report: curves averaged over seeds, labels to target, AUC, savings vs random."""
    by_seed_full = {r.seed: r.full_data_score for r in results}
    full = float(np.mean(list(by_seed_full.values())))
    target = cfg.target_fraction * full
    strategies: dict[str, Any] = {}
    for name in cfg.strategies:
        runs = sorted((r for r in results if r.strategy == name), key=lambda r: r.seed)
        curve = mean_curve([r.curve for r in runs])
        per_seed_targets = [labels_to_target(r.curve, cfg.target_fraction * r.full_data_score) for r in runs]
        entry: dict[str, Any] = {
            "curve": [[x, round(y, 6)] for x, y in curve],
            "per_seed": [[[x, round(y, 6)] for x, y in r.curve] for r in runs],
            "seeds": [r.seed for r in runs],
            "labels_to_target": labels_to_target(curve, target),
            "per_seed_labels_to_target": per_seed_targets,
            "auc": auc(curve),
            "final_score": curve[-1][1] if curve else None,
            "score_at_budget": curve[-1][1] if curve else None,
            "wall_seconds": float(sum(r.seconds for r in runs)),
        }
        entry["stop_rules"] = [r.stop for r in runs]
        if any(r.bandit for r in runs):  # the strategy bandit (albl): each campaign's final arm weights, picks and rewards
            entry["bandit"] = [r.bandit for r in runs]
        random_curve = mean_curve([r.curve for r in results if r.strategy == RANDOM])
        if any(k.startswith("est_") for r in runs for v in r.versions for k in v):  # (multi-class campaigns)
            # The retrainer's live estimates at each version beside the truth (test split, measured random curve).
            per_seed = [beside_truth(r.versions, random_curve, r.n_test) for r in runs]
            entry["estimates"] = {"per_seed": per_seed, "validation": validation_summary([v for s in per_seed for v in s], min_control=100)}
        aa = [r.auto_accept for r in runs if r.auto_accept]
        if aa:
            dep = [a["deployed"] for a in aa]
            entry["auto_accept"] = {
                "target_precision": cfg.auto_accept_precision,
                # An estimate: a threshold calibrated (the lowest confidence whose precision's one-sided
                # 95% Clopper-Pearson lower bound reaches the target) on 5-fold out-of-fold predictions
                # over all the labeled items (not only the random-control ones), applied to the live model.
                # The mean counts a seed without a threshold as 0 (see "shares").
                "method": "5-fold out-of-fold predictions over all labeled items",
                **_over_seeds(aa),
                # As deployed: the retrainer's own threshold, from random-control labels only (the
                # same rule; a 0.99 target needs at least 299 of them, so short campaigns have none).
                "deployed": {**_over_seeds(dep), "n_control": [d["n_control"] for d in dep], "labels_needed": [d["labels_needed"] for d in dep]},
                # Live, as the scorer does it: each version's re-rank moved the pending items it was sure of to the
                # auto-labels ({"version", "n", "correct"} per version, against the ground truth), per seed.
                "at_rerank": [r.auto_by_version for r in runs],
            }
        strategies[name] = entry
    comparison: dict[str, Any] = {}
    if RANDOM in strategies:
        base = strategies[RANDOM]["labels_to_target"]
        for name, entry in strategies.items():
            if name == RANDOM:
                continue
            comparison[name] = {
                "labels_to_target": entry["labels_to_target"],
                "random_labels_to_target": base,
                "label_savings": savings(entry["labels_to_target"], base),
                "annotation_hours_saved": hours_saved(entry["labels_to_target"], base, cfg.seconds_per_label),
                "score_at_budget": entry["score_at_budget"],
                "random_score_at_budget": strategies[RANDOM]["score_at_budget"],
            }
            spent = strategies[RANDOM]["curve"][-1][0] if strategies[RANDOM]["curve"] else None
            if base is None and entry["labels_to_target"] is not None and spent:
                # Random did not reach the target within the labels it was given: it needs more
                # than those, so the savings are at least what that many would give.
                comparison[name]["label_savings_at_least"] = savings(entry["labels_to_target"], spent)
                comparison[name]["annotation_hours_saved_at_least"] = hours_saved(entry["labels_to_target"], spent, cfg.seconds_per_label)
                comparison[name]["random_labels_spent"] = spent
    return {
        "dataset": ds.name,
        "task": ds.task,
        "n_items": len(ds.X),
        "n_features": int(ds.X.shape[1]),
        "metric": cfg.metric,
        "full_data_score": full,
        "target": target,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "strategies": strategies,
        "comparison": comparison,
    }


def _over_seeds(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One auto-accept figure's seeds (``threshold``, ``share``, ``realized_precision`` each) side by side, and their means."""
    return {
        "share": _mean_or_none([r["share"] for r in per_seed]),
        "shares": [r["share"] for r in per_seed],
        "thresholds": [r["threshold"] for r in per_seed],
        "class_thresholds": [r.get("class_thresholds") or {} for r in per_seed],
        "realized_precision": _mean_or_none([r["realized_precision"] for r in per_seed]),
    }


def _mean_or_none(vals: Sequence[float | None]) -> float | None:
    keep = [v for v in vals if v is not None]
    return float(np.mean(keep)) if keep else None
