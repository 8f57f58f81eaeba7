"""Which arm to deploy: the best learning-curve AUC, if its lead is beyond the noise of the seeds (pure).

An *arm* is anything ``simulate`` compares under the same splits and seed labels: a strategy,
an estimator, or a pair of both. Each seed's curves of two arms share the split and the first
labels, so the per-seed difference of their AUCs is much less noisy than either AUC: the lead
of the best arm counts when the mean of those differences exceeds ``z`` standard errors, or Student's t critical
value for the seeds' degrees of freedom when that is larger (few seeds: 12.7 for 2, 4.3 for 3, 2.1 for 20).
The benchmark (``benchmarks/run_strategies.py``) reports the same paired difference.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from activestream.simulation.curves import Curve, auc

log = logging.getLogger(__name__)

#: Standard errors the best arm's paired lead must exceed (about a 95% one-sided bound at 2).
Z_SIGNIFICANT = 2.0

NO_DIFFERENCE = "no significant difference: keep the default"


def _pairs(curve: Sequence[Sequence[float]]) -> Curve:
    return [(int(x), float(y)) for x, y in curve]


def per_seed_auc(entry: Mapping[str, Any]) -> np.ndarray:
    """(n_seeds,) AUC of each seed's curve of a report entry (``per_seed``: one ``[[labels, score], ...]`` per seed)."""
    return np.array([auc(_pairs(c)) for c in entry["per_seed"]], dtype=np.float64)


def paired_difference(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, float] | None:
    """Per-seed AUC of ``ours`` minus ``theirs``: mean and standard error.

    Parameters
    ----------
    ours, theirs : report entries with ``per_seed`` curves (and ``seeds``: the seed of each;
        older results without it ran seeds ``0..n-1`` in order).

    Returns
    -------
    ``{"mean": ..., "se": ..., "n": seeds}``, or ``None`` unless both ran the same seeds, at least two.
    """
    ours_seeds = list(ours.get("seeds", range(len(ours["per_seed"]))))
    theirs_seeds = list(theirs.get("seeds", range(len(theirs["per_seed"]))))
    if ours_seeds != theirs_seeds or len(ours_seeds) < 2:
        return None
    d = per_seed_auc(ours) - per_seed_auc(theirs)
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "n": len(d)}


def critical(n: int, z: float = 2.0) -> float:
    """Standard errors a paired mean over ``n`` seeds must exceed: ``z``, or the two-sided 95% t quantile when larger.

    On 2 seeds the standard error is estimated from one degree of freedom: 2 of them is no bound at all.

    >>> round(critical(2), 1), round(critical(3), 1), critical(100)
    (12.7, 4.3, 2.0)
    """
    from scipy.stats import t

    return max(z, float(t.ppf(0.975, n - 1)))


def recommend(arms: Mapping[str, Mapping[str, Any]], default: str, *, z: float = Z_SIGNIFICANT) -> dict[str, Any]:
    """The arm to deploy, or the default when no arm leads the runner-up beyond the seeds' noise.

    Parameters
    ----------
    arms : arm name -> report entry (``auc`` of the mean curve, ``per_seed`` curves, ``seeds``).
    default : the arm kept when the lead is not significant (the product's default).
    z : standard errors the paired lead must exceed.

    Returns
    -------
    ``deploy`` (the arm's name), ``significant``, ``best`` and ``runner_up`` (names),
    ``lead`` (the paired difference: mean and se, or ``None``) and ``line``, the sentence
    ``simulate`` prints.

    Examples
    --------
    >>> a = {"per_seed": [[[0, .5], [10, .9]], [[0, .5], [10, .8]]], "seeds": [0, 1], "auc": .675}
    >>> b = {"per_seed": [[[0, .5], [10, .6]], [[0, .5], [10, .55]]], "seeds": [0, 1], "auc": .5375}
    >>> recommend({"margin": a, "random": b}, default="margin")["deploy"]
    'margin'
    """
    if not arms:
        raise ValueError("no arm to recommend from")
    ranked = sorted(arms, key=lambda name: -float(arms[name]["auc"]))
    best = ranked[0]
    keep = default if default in arms else best
    if len(ranked) == 1:
        return {"deploy": best, "significant": False, "best": best, "runner_up": None, "lead": None,
                "line": f"recommendation: deploy {best} (the only arm compared)"}
    runner = ranked[1]
    lead = paired_difference(arms[best], arms[runner])
    bound = critical(int(lead["n"]), z) if lead is not None else z
    significant = lead is not None and lead["mean"] > bound * lead["se"] and lead["mean"] > 0
    if significant:
        assert lead is not None
        line = (f"recommendation: deploy {best}: AUC {float(arms[best]['auc']):.4f}, ahead of {runner} by "
                f"{lead['mean']:+.4f} ± {lead['se']:.4f} (paired over {len(arms[best]['per_seed'])} seeds)")
    else:
        why = ("fewer than 2 common seeds" if lead is None
               else f"{best} leads {runner} by {lead['mean']:+.4f} ± {lead['se']:.4f}, within {bound:.3g} standard errors"
               + (f" (the bound for {int(lead['n'])} seeds: more seeds tell more)" if bound > z else ""))
        keeping = f"{NO_DIFFERENCE} ({keep}" if keep == default else f"no significant difference: keep {keep}, the best of those run (the default, {default}, was not run"
        line = f"recommendation: {keeping}; {why})"
    return {"deploy": best if significant else keep, "significant": significant, "best": best, "runner_up": runner,
            "lead": lead, "line": line}


def estimator_name(spec: str, specs: Sequence[str]) -> str:
    """The short name of an ``--estimator`` spec (the callable's), or the whole spec when two specs share it."""
    short = spec.rpartition(":")[2]
    return short if sum(s.rpartition(":")[2] == short for s in specs) == 1 else spec


def arm_name(strategy: str, spec: str, specs: Sequence[str]) -> str:
    """An arm of several estimators: ``"margin+kcenter @ RandomForestClassifier"``."""
    return f"{strategy} @ {estimator_name(spec, specs)}"


def arms_across(by_estimator: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Every (strategy, estimator) pair of a several-estimator ``simulate`` report as one arm.

    Parameters
    ----------
    by_estimator : estimator spec -> that estimator's report (``strategies``: name -> entry).
        Each ran the same seeds, hence the same splits and first labels, so the arms pair per seed.

    Returns
    -------
    arm name (:func:`arm_name`) -> report entry, in the order estimator then strategy.
    """
    specs = list(by_estimator)
    return {arm_name(strategy, spec, specs): entry
            for spec, report in by_estimator.items() for strategy, entry in report["strategies"].items()}
