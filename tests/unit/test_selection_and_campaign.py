"""Batch diversity, stop rules, stream budgets and campaign monitoring (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from activestream.labeling.selection import k_center_greedy, top_k, weighted_kmeans
from activestream.retrainer.campaign import CampaignMonitor
from activestream.retrainer.stopping import StopRules, VersionRecord, cohen_kappa, evaluate
from activestream.schemas import Item, Label
from activestream.scorer.budget import VariableUncertainty, admission_rate
from activestream.scorer.uncertainty import label_cardinality_inconsistency


def two_blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, size=(50, 2)), rng.normal(10, 0.1, size=(50, 2))])
    scores = np.r_[np.full(50, 0.9), np.full(50, 0.8)] + rng.uniform(0, 0.01, 100)  # blob A scores higher
    return X, scores


@pytest.mark.parametrize("fn", [weighted_kmeans, k_center_greedy])
def test_diverse_batches_cover_both_blobs(fn) -> None:
    X, s = two_blobs()
    assert set(np.array(top_k(s, X, 4)) // 50) == {0}  # plain top-k: four near-copies from blob A
    picked = fn(s, X, 4, prefilter=25)
    assert len(set(picked)) == 4
    assert set(np.array(picked) // 50) == {0, 1}


def test_selection_handles_small_pools() -> None:
    X, s = two_blobs()
    assert weighted_kmeans(s[:3], X[:3], 5) == [0, 1, 2]
    assert k_center_greedy(s[:3], X[:3], 5) == [0, 1, 2]


@pytest.mark.parametrize("fn", [weighted_kmeans, k_center_greedy])
def test_copies_give_distinct_picks_best_scored_first(fn) -> None:
    X = np.repeat(np.eye(3), 10, axis=0)  # 30 candidates, only 3 distinct rows
    s = np.linspace(1.0, 0.5, 30)
    picked = fn(s, X, 5, prefilter=6)
    assert len(set(picked)) == 5
    if fn is k_center_greedy:  # the three rows, then the best-scored copies
        assert picked == [0, 10, 20, 1, 2]


def test_cohen_kappa_hand_computed() -> None:
    # po = 3/4; pe = (2/4*3/4 + 2/4*1/4) = 0.5 -> kappa = 0.5
    assert cohen_kappa(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])) == pytest.approx(0.5)
    assert cohen_kappa(np.array([2, 2]), np.array([2, 2])) == 1.0
    with pytest.raises(ValueError):
        cohen_kappa(np.array([1]), np.array([1, 2]))


def test_cohen_kappa_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    for _ in range(50):
        k = int(rng.integers(2, 6))
        a = rng.integers(0, k, int(rng.integers(2, 60)))
        b = np.where(rng.random(len(a)) < 0.7, a, rng.integers(0, k, len(a)))
        if len(np.union1d(a, b)) > 1:
            assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
        assert cohen_kappa(a.astype(str), b.astype(str)) == pytest.approx(cohen_kappa(a, b), abs=1e-12)  # any sortable values


def test_stop_rules_reuse_known_kappas_as_if_recomputed() -> None:
    # The campaign monitor passes the kappas of its last replay: the same status as a full replay.
    rng = np.random.default_rng(0)
    hist = [VersionRecord(v, 10 * v, rng.integers(0, 3, 40) if v % 3 else np.ones(40, dtype=int), None) for v in range(1, 12)]
    rules = StopRules(kappa=0.5, window=2)
    earlier = evaluate(hist[:7], rules, 70)
    full, reused = evaluate(hist, rules, 110), evaluate(hist, rules, 110, known_kappas=earlier.kappas)
    assert reused.kappas == full.kappas and reused.fired == full.fired and len(full.kappas) == 10


def test_stop_rules_fire_in_order() -> None:
    same = np.array([0, 1, 2, 1, 0])
    hist = [
        VersionRecord(1, 20, np.array([0, 0, 0, 0, 0]), 0.50),
        VersionRecord(2, 30, same, 0.80),
        VersionRecord(3, 40, same, 0.85),
        VersionRecord(4, 50, same, 0.851),
        VersionRecord(5, 60, same, 0.852),
    ]
    st = evaluate(hist, StopRules(kappa=0.99, window=3, min_gain=0.01, plateau_window=2, target_score=0.84, budget=100), 60)
    assert st.fired["target_score"]["n_labels"] == 40
    assert st.fired["stable_predictions"]["n_labels"] == 60  # kappa 1 for versions 3, 4, 5
    assert st.fired["plateau"]["n_labels"] == 60  # 0.85 -> 0.852 over the last 2 versions
    assert "budget" not in st.fired and st.should_stop
    assert evaluate(hist, StopRules(budget=60), 60).fired["budget"]["n_labels"] == 60


def test_score_rules_ignore_scores_estimated_on_a_handful_of_items() -> None:
    # 6 control labels all answered right read as a flat 1.0: no plateau and no target from that.
    preds = np.array([0, 1])
    few = [VersionRecord(v, 10 * v, preds, 1.0, score_items=6) for v in range(1, 9)]
    rules = StopRules(kappa=None, min_gain=0.002, plateau_window=5, target_score=0.95)
    assert not evaluate(few, rules, 80).fired
    enough = [VersionRecord(v, 10 * v, preds, 1.0, score_items=150) for v in range(1, 9)]
    fired = evaluate(enough, rules, 80).fired
    assert fired["plateau"]["n_labels"] == 60 and fired["target_score"]["n_labels"] == 10


def test_variable_uncertainty_holds_the_budget() -> None:
    rng = np.random.default_rng(1)
    vu = VariableUncertainty(budget=0.1, step=0.05)
    admitted = 0
    total = 0
    for batch in range(50):
        conf = rng.uniform(0.3, 1.0, 200)
        adm = vu.query(conf)
        assert np.array_equal(adm, vu.query(conf))  # query has no side effects
        vu.update(conf, adm)
        admitted += int(adm.sum())
        total += len(conf)
        if batch >= 5 and adm.any() and (~adm).any():  # after the threshold has settled
            assert conf[adm].mean() < conf[~adm].mean()  # prefers the least confident
    assert 0.07 < admitted / total < 0.13
    assert admission_rate(60, 600) == pytest.approx(0.1) and admission_rate(10, 0) == 1.0


def test_label_cardinality_inconsistency() -> None:
    p = np.array([[0.9, 0.8, 0.1], [0.1, 0.1, 0.1]])
    np.testing.assert_allclose(label_cardinality_inconsistency(p, 2.0), [0.0, 2.0])


def test_campaign_monitor_calibrates_on_control_labels() -> None:
    mon = CampaignMonitor(rules=StopRules(kappa=0.99, window=1), target_precision=0.9, stop_set_size=3)
    mon.add_stop_items([Item(str(i), np.array([float(i), 0.0])).encode() for i in range(5)] + [b"junk"])
    assert len(mon.stop_set) == 3

    def predict(X: np.ndarray) -> np.ndarray:
        conf = np.clip(0.5 + X[:, :1] / 400, 0.5, 0.99)
        return np.hstack([conf, 1 - conf])

    for i in range(200):
        x = np.array([float(i), 0.0], dtype=np.float32)
        mon.observe_control(Label(str(i), f"L{i}", "a", label="a" if i >= 20 else "b", features=x, control=True), predict, ("a", "b"))
    assert mon.control_accuracy == pytest.approx(0.9)
    # Every prediction is "a": its control labels give it a threshold of its own; no other class is left to pool.
    t = mon.class_calibration().thresholds()["a"]
    assert t <= predict(np.array([[20.0, 0.0]]))[0, 0] + 1e-9
    assert mon.auto_accept_threshold() is None and mon.auto_accept_metrics()["auto_accept_threshold_class_a"] == t
    facts = mon.on_version(1, 200, predict, 0.9)
    assert facts["n_control"] == 200 and facts["kappa_previous"] is None
    facts = mon.on_version(2, 210, predict, 0.9)
    assert facts["kappa_previous"] == 1.0 and facts["stop"]["fired"]["stable_predictions"]["n_labels"] == 210


def test_stable_predictions_compare_classes_not_output_positions() -> None:
    mon = CampaignMonitor(rules=StopRules(kappa=0.99, window=1, min_gain=None), stop_set_size=4)
    mon.add_stop_items([Item(str(i), np.array([float(i), 0.0])).encode() for i in range(4)])

    def onehot(cols: list[int], k: int):
        return lambda X: np.eye(k)[cols]

    mon.on_version(1, 20, onehot([0, 0, 1, 1], 2), None, classes=("a", "c"))  # a a c c
    facts = mon.on_version(2, 30, onehot([0, 0, 1, 1], 3), None, classes=("a", "b", "c"))  # a a b b: same positions
    assert facts["kappa_previous"] < 0.99 and "stable_predictions" not in facts["stop"]["fired"]
    facts = mon.on_version(3, 40, onehot([0, 0, 1, 1], 3), None, classes=("a", "b", "c"))
    assert facts["kappa_previous"] == 1.0


def test_multilabel_budget_prefers_unsure_heads_to_sure_negatives() -> None:
    from activestream.scorer.budget import VariableUncertainty
    from activestream.scorer.routing import Router, confidence

    sure_none, unsure, sure_all = np.full((1, 4), 0.01), np.full((1, 4), 0.5), np.full((1, 4), 0.99)
    conf = confidence(np.vstack([sure_none, unsure, sure_all]), "multilabel")
    assert conf[1] == pytest.approx(0.0) and conf[0] == pytest.approx(conf[2]) and conf[0] > 0.9
    router = Router(budget=VariableUncertainty(budget=0.3))
    admitted = {"none": 0, "unsure": 0}
    for _ in range(300):
        for name, p in (("none", sure_none), ("unsure", unsure)):
            routes = router.route(p, "multilabel")
            router.update(p, routes, "multilabel")
            admitted[name] += int(routes.queue[0])
    assert admitted["unsure"] > 5 * max(1, admitted["none"])


def test_router_auto_accepts_and_holds_the_budget() -> None:
    from activestream.scorer.routing import Router

    p = np.array([[0.995, 0.005], [0.6, 0.4], [0.55, 0.45], [0.9, 0.1]])
    r = Router(auto_threshold=0.99).route(p)
    assert r.auto.tolist() == [True, False, False, False] and r.queue.tolist() == [False, True, True, True]
    assert not Router(auto_threshold=0.99).route(p, task="multilabel").auto.any()
    assert Router().route(None).queue.tolist() == []
    budgeted = Router(budget=VariableUncertainty(budget=0.5, theta=0.7, step=0.0))
    routes = budgeted.route(p)
    assert routes.queue.tolist() == [False, True, True, False] and routes.refused.tolist() == [True, False, False, True]
    budgeted.update(p, routes)
    assert budgeted.budget is not None and budgeted.budget.spent > 0
    assert (routes.queue ^ routes.auto ^ routes.refused).all()


def test_density_weighting_prefers_uncertain_items_in_dense_regions() -> None:
    from activestream.labeling.selection import density_weighted

    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 1.0, size=(300, 2))  # the queue: one blob around the origin
    # Candidates 0-2 are outliers, 3-5 sit in the blob; the outliers score slightly higher.
    X = np.array([[8.0, 8.0], [-8.0, 7.0], [9.0, -8.0], [0.1, 0.0], [-0.2, 0.1], [0.0, -0.3]])
    scores = np.array([0.90, 0.89, 0.88, 0.80, 0.79, 0.78])
    assert sorted(density_weighted(scores, X, 3, reference=reference)) == [3, 4, 5]
    assert density_weighted(scores, X, 3, reference=reference, beta=0.0) == [0, 1, 2]  # beta 0: the scores alone
    assert density_weighted(scores, X, 3, reference=reference[:1]) == [0, 1, 2]  # no sample to weigh by
    assert density_weighted(scores[:2], X[:2], 3, reference=reference) == [0, 1]


def test_falcun_spreads_a_batch_over_probability_space() -> None:
    from activestream.labeling.selection import falcun

    # 40 near-identical ambiguous items between classes 0 and 1, and 10 between classes 1 and 2
    # that are a little less uncertain: sampled uncertainty plus distance covers both groups.
    P = np.vstack([np.tile([0.5, 0.5, 0.0], (40, 1)), np.tile([0.0, 0.55, 0.45], (10, 1))])
    u = np.r_[np.full(40, 1.0), np.full(10, 0.9)]
    picks = [falcun(u, P, 4, seed=s) for s in range(20)]
    assert all(len(set(p)) == 4 for p in picks)
    assert sum(any(i >= 40 for i in p) for p in picks) >= 18  # almost every batch reaches the second group
    assert falcun(u, P, 4, seed=3) == falcun(u, P, 4, seed=3)  # seeded
    assert falcun(u[:3], P[:3], 5) == [0, 1, 2]
    assert falcun(u * 5, P, 4, seed=1) == falcun(np.ones(50), P, 4, seed=1)  # clipped to [0, 1]


def test_falcun_is_greedy_on_uncertainty_plus_normalized_distance_for_a_large_gamma() -> None:
    from activestream.labeling.selection import falcun

    rng = np.random.default_rng(4)
    P = rng.dirichlet(np.ones(4), size=60)
    u = 1.0 - np.abs(np.diff(np.sort(P, axis=1)[:, -2:], axis=1))[:, 0]  # 1 - margin
    # The reference procedure by hand: d starts as u; after each pick, d = min(d, L1 to it), min-max scaled.
    d, chosen = u.copy(), []
    for _ in range(6):
        if chosen:
            d = np.minimum(d, np.abs(P - P[chosen[-1]]).sum(axis=1))
            d = (d - d.min()) / (d.max() - d.min())
        rel = u + d
        rel[chosen] = -1.0
        chosen.append(int(np.argmax(rel)))
    assert falcun(u, P, 6, gamma=1e5, seed=0) == chosen
    assert len(set(falcun(np.zeros(60), np.zeros((60, 4)), 6, seed=0))) == 6  # nothing relevant: uniform, still distinct


def test_a_falling_score_is_no_plateau() -> None:
    # (a drifting stream: control accuracy fell from 0.95 to 0.66 and the plateau fired, "more labels may add little")
    from activestream.retrainer.stopping import fell

    preds = np.array([0, 1])
    rules = StopRules(kappa=None, min_gain=0.002, plateau_window=5)
    drift = [VersionRecord(v, 100 * v, preds, s, score_items=150) for v, s in enumerate([0.95, 0.95, 0.75, 0.71, 0.69, 0.69, 0.66], 1)]
    assert "plateau" not in evaluate(drift, rules, 700).fired
    # A score that wavers within its noise on a flat curve is still a plateau (150 labels each: 2 SE of the difference 0.069).
    flat = [VersionRecord(v, 100 * v, preds, s, score_items=150) for v, s in enumerate([0.90, 0.90, 0.89, 0.90, 0.88, 0.87, 0.89], 1)]
    assert evaluate(flat, rules, 700).fired["plateau"]["n_labels"] == 600
    assert fell(0.95, 0.66, 150, 0.002, 150) and not fell(0.90, 0.87, 150, 0.002, 150) and fell(0.90, 0.89, None, 0.002)
    # The fall since the best score is said (a drifted stream; the rules fired before it may no longer hold), not a wave.
    assert evaluate(drift, rules, 700).score_fell == {"best": 0.95, "best_version": 1.0, "now": 0.66, "version": 7.0}
    assert evaluate(flat, rules, 700).score_fell is None
    # A perfect score on a few labels, then a little less on many, is no fall (a review: 1.0 on 100 labels is not certain).
    few_then_many = [VersionRecord(1, 200, preds, 1.0, score_items=100), VersionRecord(2, 2000, preds, 0.975, score_items=1000),
                     VersionRecord(3, 2100, preds, 0.975, score_items=1000)]
    assert evaluate(few_then_many, StopRules(kappa=None, min_gain=0.002, min_score_items=100), 2100).score_fell is None


def test_the_campaign_monitor_keeps_only_the_newest_versions_predictions() -> None:
    # The retrainer publishes a version every few labels for as long as the campaign runs: each version's predictions on the
    # stop set (1,000 items: 8 kB) kept in the history grew its memory with the campaign's age. The kappas stay the same.
    rng = np.random.default_rng(3)
    mon = CampaignMonitor(rules=StopRules(kappa=0.9, window=3, min_gain=None), stop_set_size=1000)
    mon.add_stop_items([Item(str(i), rng.normal(size=2).astype(np.float32)).encode() for i in range(1000)])
    flips = [rng.random(1000) < p for p in np.linspace(0.5, 0.0, 60)]  # the predictions settle down

    def predict(flip: np.ndarray):
        return lambda X: np.eye(2)[((X[:, 0] > 0) ^ flip).astype(int)]

    for v, flip in enumerate(flips, start=1):
        mon.on_version(v, 10 * v, predict(flip), None, classes=(0, 1))
    kept = sum((rec.predictions if rec.predictions.base is None else rec.predictions.base).nbytes for rec in mon.history)  # (a view holds its base)
    assert len(mon.history) == 60 and kept <= 2 * mon.history[-1].predictions.nbytes
    full = [VersionRecord(v, 10 * v, ((np.vstack(mon.stop_set)[:, 0] > 0) ^ f).astype(int)) for v, f in enumerate(flips, start=1)]
    again = evaluate(full, mon.rules, 600)
    assert mon.status.kappas == pytest.approx(again.kappas) and mon.status.fired == again.fired
