"""simulate's recommendation: the best AUC when its paired lead over the runner-up is beyond the seeds' noise."""

from __future__ import annotations

import numpy as np
import pytest

from activestream.simulation.recommend import NO_DIFFERENCE, arm_name, arms_across, paired_difference, per_seed_auc, recommend


def _entry(finals: list[float], seeds: list[int] | None = None) -> dict[str, object]:
    """An arm whose seed i runs from 0.5 at 0 labels to finals[i] at 10 (AUC = (0.5 + final) / 2)."""
    per_seed = [[[0, 0.5], [10, f]] for f in finals]
    return {"per_seed": per_seed, "seeds": seeds if seeds is not None else list(range(len(finals))),
            "auc": float(np.mean([(0.5 + f) / 2 for f in finals]))}


def test_per_seed_auc_is_the_trapezoid_mean_score() -> None:
    assert per_seed_auc(_entry([0.9, 0.7])) == pytest.approx([0.7, 0.6])


def test_paired_difference_by_hand() -> None:
    # per-seed AUC differences: (0.9-0.6)/2 = 0.15, (0.8-0.6)/2 = 0.10 -> mean 0.125, sd 0.03536, se 0.025
    d = paired_difference(_entry([0.9, 0.8]), _entry([0.6, 0.6]))
    assert d is not None
    assert d["mean"] == pytest.approx(0.125) and d["se"] == pytest.approx(0.025)


def test_paired_difference_needs_the_same_seeds_at_least_two() -> None:
    assert paired_difference(_entry([0.9, 0.8]), _entry([0.6, 0.6], seeds=[0, 2])) is None
    assert paired_difference(_entry([0.9]), _entry([0.6])) is None


def test_a_lead_beyond_the_noise_is_recommended() -> None:
    # The lead 0.131 is 11 standard errors over 4 seeds (the bound: t = 3.18 for 3 degrees of freedom): deploy it.
    rec = recommend({"random": _entry([0.6] * 4), "margin": _entry([0.9, 0.8, 0.85, 0.9]), "entropy": _entry([0.55, 0.5, 0.5, 0.5])}, default="random")
    assert rec["deploy"] == "margin" and rec["significant"] and rec["runner_up"] == "random"
    assert rec["line"].startswith("recommendation: deploy margin")


def test_two_seeds_cannot_show_a_lead_their_one_degree_of_freedom_cannot_bound() -> None:
    # (0.125 was 5 standard errors on 2 seeds, and deployed on a "2 se" rule; on one degree of freedom the bound is 12.7)
    rec = recommend({"random": _entry([0.6, 0.6]), "margin": _entry([0.9, 0.8])}, default="random")
    assert rec["deploy"] == "random" and not rec["significant"] and rec["lead"]["n"] == 2
    assert "within 12.7 standard errors (the bound for 2 seeds: more seeds tell more)" in rec["line"]


def test_a_lead_within_the_noise_keeps_the_default() -> None:
    # Seeds disagree: +0.15 then -0.10 (mean +0.025, se 0.125): not significant.
    rec = recommend({"margin": _entry([0.9, 0.4]), "random": _entry([0.6, 0.6])}, default="random")
    assert rec["best"] == "margin" and not rec["significant"] and rec["deploy"] == "random"
    assert NO_DIFFERENCE in rec["line"]


def test_one_seed_cannot_show_a_significant_lead() -> None:
    rec = recommend({"margin": _entry([0.9]), "random": _entry([0.6])}, default="random")
    assert rec["deploy"] == "random" and rec["lead"] is None and NO_DIFFERENCE in rec["line"]


def test_the_default_absent_falls_back_to_the_best() -> None:
    rec = recommend({"a": _entry([0.9, 0.4]), "b": _entry([0.6, 0.6])}, default="margin+kcenter")
    assert rec["deploy"] == "a" and not rec["significant"]


def test_arms_across_estimators_pair_each_strategy_with_each_estimator() -> None:
    # The forest's margin leads the logistic margin by 0.131 ± 0.012 over 4 seeds: deployed, named with both.
    lr, rf = "sklearn.linear_model:LogisticRegression", "sklearn.ensemble:RandomForestClassifier"
    by_estimator = {lr: {"strategies": {"margin": _entry([0.6] * 4), "random": _entry([0.5, 0.55, 0.5, 0.55])}},
                    rf: {"strategies": {"margin": _entry([0.9, 0.8, 0.85, 0.9]), "random": _entry([0.55, 0.5, 0.55, 0.5])}}}
    arms = arms_across(by_estimator)
    assert list(arms) == ["margin @ LogisticRegression", "random @ LogisticRegression", "margin @ RandomForestClassifier",
                          "random @ RandomForestClassifier"]
    rec = recommend(arms, default=arm_name("margin", lr, list(by_estimator)))
    assert rec["deploy"] == "margin @ RandomForestClassifier" and rec["significant"] and rec["runner_up"] == "margin @ LogisticRegression"
    assert rec["line"].startswith("recommendation: deploy margin @ RandomForestClassifier: AUC")
    # The same strategies within the noise across estimators: the default arm is kept.
    by_estimator[rf]["strategies"]["margin"] = _entry([0.9, 0.4, 0.9, 0.4])
    rec = recommend(arms_across(by_estimator), default=arm_name("margin", lr, list(by_estimator)))
    assert rec["deploy"] == "margin @ LogisticRegression" and not rec["significant"] and NO_DIFFERENCE in rec["line"]


def test_an_estimator_name_shared_by_two_specs_stays_whole() -> None:
    specs = ["a.mod:Forest", "b.mod:Forest", "sklearn.svm:SVC"]
    assert [arm_name("margin", s, specs) for s in specs] == ["margin @ a.mod:Forest", "margin @ b.mod:Forest", "margin @ SVC"]


def test_without_the_default_among_the_arms_the_one_kept_is_not_called_the_default() -> None:
    arms = {"margin": _entry([0.80, 0.81]), "entropy": _entry([0.805, 0.80])}
    rec = recommend(arms, default="margin+kcenter")
    assert rec["deploy"] == "margin" and not rec["significant"]
    assert "keep margin, the best of those run (the default, margin+kcenter, was not run" in rec["line"] and NO_DIFFERENCE not in rec["line"]
    assert f"{NO_DIFFERENCE} (margin;" in recommend(arms, default="margin")["line"]
