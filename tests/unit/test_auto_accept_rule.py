"""Auto-accept's rule: per-class thresholds (pooled rest), the audit's pause/resume with hysteresis, and the wire fields."""

from __future__ import annotations

import numpy as np
import pytest

from activestream.retrainer.auto_accept_rule import audit_state, calibrate_classes, precision_upper_bound
from activestream.retrainer.calibration import calibrate, labels_needed
from activestream.retrainer.campaign import CampaignMonitor
from activestream.retrainer.control_log import ControlObservation
from activestream.schemas import Label, decode_label
from activestream.scorer.autoaccept import accepted, item_thresholds, thresholds


def test_a_class_with_enough_control_labels_gets_its_own_threshold_and_the_rest_are_pooled() -> None:
    n_a = labels_needed(0.95)  # 59 all-correct labels reach 0.95
    conf = np.r_[np.linspace(0.99, 0.6, n_a), np.linspace(0.99, 0.9, 30), np.linspace(0.99, 0.9, 40)]
    correct = np.ones(len(conf), dtype=bool)
    pred = ["a"] * n_a + ["b"] * 30 + ["c"] * 40
    cal = calibrate_classes(conf, correct, pred, target_precision=0.95)
    assert set(cal.thresholds()) == {"a"} and cal.thresholds()["a"] == pytest.approx(0.6)
    # b and c alone have too few; pooled (70 labels) they reach it, at the lowest of their confidences.
    assert cal.pooled.threshold == pytest.approx(0.9) and cal.pooled.n_labels == 70
    assert cal.metrics() == {"auto_accept_threshold_class_a": pytest.approx(0.6), "auto_accept_threshold": pytest.approx(0.9)}


def test_the_pooled_rest_does_not_hide_a_hard_class_behind_an_easy_one() -> None:
    # Class a: 400 right; class b: 40 labels of which 8 wrong, all at high confidence. The all-classes
    # threshold accepts b's items (its bound is carried by a's); the pooled rest (b alone) does not.
    conf = np.r_[np.full(400, 0.97), np.full(40, 0.98)]
    correct = np.r_[np.ones(400, dtype=bool), np.arange(40) >= 8]
    pred = ["a"] * 400 + ["b"] * 40
    assert calibrate(conf, correct, target_precision=0.95).threshold is not None  # the single threshold of before: b at 0.8
    cal = calibrate_classes(conf, correct, pred, target_precision=0.95)
    assert "a" in cal.thresholds() and cal.pooled.threshold is None and cal.pooled.more_labels_needed > 0
    t = thresholds(cal.metrics(), ["a", "b"])
    p = np.array([[0.97, 0.03], [0.02, 0.98]])
    assert accepted(p, t).tolist() == [True, False]


def test_unknown_predicted_classes_count_in_the_pool_only() -> None:
    cal = calibrate_classes(np.full(100, 0.9), np.ones(100, dtype=bool), [None] * 100, target_precision=0.95)
    assert cal.thresholds() == {} and cal.pooled.threshold == pytest.approx(0.9)


def test_scorer_thresholds_per_output_column_and_the_pause() -> None:
    m = {"auto_accept_threshold": 0.9, "auto_accept_threshold_class_1": 0.7}
    t = thresholds(m, [0, 1, 2])
    np.testing.assert_allclose(t, [0.9, 0.7, 0.9])  # type: ignore[arg-type]
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9]])
    assert accepted(p, t).tolist() == [False, True, True]
    np.testing.assert_allclose(item_thresholds(p, t), [0.9, 0.7, 0.9])
    assert thresholds({**m, "auto_accept_paused": 1.0}, [0, 1, 2]) is None
    assert thresholds({"auto_accept_threshold_class_b": 0.8}, ["a", "b"]).tolist() == [np.inf, 0.8]  # type: ignore[union-attr]
    assert thresholds({"auto_accept_threshold": 0.9}, ["a", "b"]) == 0.9  # no class of its own: one for all, as before


def test_audit_pauses_below_the_target_holds_in_the_band_and_resumes_at_the_bound() -> None:
    target = 0.99
    s = audit_state([True] * 50, False, target)
    assert (s.n, s.correct, s.paused) == (50, 50, False) and s.upper_bound == 1.0
    bad = [True] * 45 + [False] * 5  # 0.9: the upper bound is under 0.99
    s = audit_state(bad, False, target)
    assert s.paused and s.upper_bound < target
    # Good answers come in: the point estimate passes the target long before the lower bound does; it stays paused.
    s = audit_state(bad + [True] * 450, True, target)
    assert s.correct / s.n >= target and s.lower_bound is not None and s.lower_bound < target and s.paused
    # ... and the same evidence from a running state does not pause it either (no flapping inside the band).
    assert not audit_state(bad + [True] * 450, False, target).paused
    s = audit_state(bad + [True] * 1000, True, target)  # the window (1000) has aged the errors out
    assert (s.n, s.correct) == (1000, 1000) and not s.paused and s.lower_bound >= target  # type: ignore[operator]


def test_precision_upper_bound() -> None:
    assert precision_upper_bound(0, 0) == 1.0 and precision_upper_bound(10, 10) == 1.0
    assert precision_upper_bound(0, 59) == pytest.approx(1 - 0.05 ** (1 / 59))  # (the mirror of the lower bound)


def test_campaign_monitor_publishes_the_audit_and_a_restart_keeps_the_pause() -> None:
    mon = CampaignMonitor(target_precision=0.99)
    for ok in [True] * 20 + [False] * 3:
        mon.record_audit(ok)
    m = mon.auto_accept_metrics()
    assert (m["audit_n"], m["audit_correct"], m["auto_accept_paused"]) == (23.0, 20.0, 1.0) and "audit_precision_lower_bound" in m
    again = CampaignMonitor(target_precision=0.99)
    again.restore(m)  # a restart replays the labels (the audits) and starts from the published state
    for ok in [True] * 20 + [False] * 3 + [True] * 200:
        again.record_audit(ok)
    assert again.auto_accept_metrics()["auto_accept_paused"] == 1.0  # in the band: still paused


def test_control_observation_and_label_carry_the_new_fields() -> None:
    obs = ControlObservation("L1", 0.9, True, 3, "cat")
    assert ControlObservation.decode(obs.encode()) == obs
    assert ControlObservation.decode(b'{"label_id": "L1", "confidence": 0.9, "correct": true, "version": 3}').predicted is None
    with pytest.raises(ValueError, match="predicted"):
        ControlObservation.decode(b'{"label_id": "L1", "confidence": 0.9, "correct": true, "version": 3, "predicted": [1]}')
    lab = Label("i1", "L1", "ann", label="cat", audit=True, audited_label="dog")
    back = decode_label(lab.encode())
    assert (back.audit, back.audited_label) == (True, "dog")
    assert b"audit" not in Label("i1", "L1", "ann", label="cat").encode()
    with pytest.raises(ValueError, match="audit"):
        decode_label(b'{"item_id": "i", "label_id": "L", "labeler_id": "a", "label": 1, "audit": "yes"}')


def test_precision_lower_bound_is_the_clopper_pearson_beta_quantile() -> None:
    # Computed with the special function (speed, issue 23): the same numbers as scipy.stats' Beta quantile.
    from scipy.stats import beta

    from activestream.retrainer.calibration import precision_lower_bound

    k = np.arange(0, 600, dtype=np.float64)
    for errors in (0, 1, 7, 150):
        n = k + errors
        expected = np.where(k > 0, np.nan_to_num(beta.ppf(1.0 - 0.95, k, n - k + 1.0), nan=0.0), 0.0)
        assert np.array_equal(precision_lower_bound(k, n), expected)


def test_class_calibration_follows_each_new_control_label() -> None:
    # The monitor keeps its calibration between control labels (speed, issue 23): never a stale one.
    mon = CampaignMonitor(target_precision=0.95)
    for _ in range(58):
        mon.record_control(0.99, True, "a")
    assert mon.auto_accept_calibration().more_labels_needed == 1 and not mon.class_calibration().thresholds()
    mon.record_control(0.99, True, "a")  # the 59th: 0.05 ** (1 / 59) >= 0.95
    assert mon.class_calibration().thresholds() == {"a": 0.99}
    mon.target_precision = 0.99  # a new target is a new calibration too
    assert not mon.class_calibration().thresholds()
