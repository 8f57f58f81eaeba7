"""Campaign monitoring in the retrainer: random-control accuracy, auto-accept calibration, stop rules.

- Labels flagged ``control`` (drawn uniformly at random by the labeling service) are
  scored by the live model *before* it trains on them: an unbiased, prequential
  estimate of its accuracy, and (confidence, correct) pairs to calibrate the
  auto-accept threshold on.
- Each new version predicts a fixed stop set (items sampled from the items topic), so
  the stable-predictions rule can compare consecutive versions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from activestream.retrainer.auto_accept_rule import ClassCalibration, audit_state, calibrate_classes
from activestream.retrainer.calibration import Calibration
from activestream.retrainer.estimate_runner import EstimateRunner
from activestream.retrainer.estimates import EstimateConfig, Labeled, cheap_figures, control_labels_needed, estimate
from activestream.retrainer.stopping import CampaignStatus, StopRules, VersionRecord, evaluate
from activestream.schemas import DecodeError, Label, decode_item
from activestream.schemas.campaign import fired_rules, score_fell_metrics

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]  # (n, d) -> (n, k) probabilities


@dataclass
class CampaignMonitor:
    """Tracks what a labeling campaign needs to decide when humans can stop.

    Parameters
    ----------
    rules : stop rules.
    target_precision : precision the auto-accept threshold is calibrated to.
    stop_set_size : items of the items topic kept to compare consecutive versions.
    budget : the campaign's label budget (``ACTIVESTREAM_BUDGET``), for the accuracy-at-budget estimate.
    estimates : how the live estimates are made (:mod:`retrainer.estimates`).
    estimate_runner : where they are computed (a background thread by default: :mod:`retrainer.estimate_runner`).
    """

    rules: StopRules = field(default_factory=StopRules)
    target_precision: float = 0.99
    stop_set_size: int = 1000
    budget: int | None = None
    estimates: EstimateConfig = field(default_factory=EstimateConfig)
    estimate_runner: EstimateRunner = field(default_factory=EstimateRunner)
    control_conf: list[float] = field(default_factory=list)
    control_correct: list[bool] = field(default_factory=list)
    control_pred: list[object | None] = field(default_factory=list)  # the class predicted (None: not logged)
    audit_outcomes: list[bool] = field(default_factory=list)  # per audit answer: was the auto-label right
    auto_accept_paused: bool = False
    stop_set: list[np.ndarray] = field(default_factory=list)
    history: list[VersionRecord] = field(default_factory=list)
    class_codes: dict[object, int] = field(default_factory=dict)  # class value -> code, fixed when first seen
    status: CampaignStatus = field(default_factory=CampaignStatus)
    earlier: dict[str, dict[str, float]] = field(default_factory=dict)  # rules fired before a restart (see restore)
    announced: set[str] = field(default_factory=set)  # rules whose firing was logged (once per rule)
    fall_announced: bool = False  # the score's current fall below its best was logged (once per fall)
    log_stops: bool = True  # (False in simulate: its summary reports each seed's first stop instead)
    _frozen: np.ndarray | None = None
    # The last class calibration and the (control count, target) it was made for: the control lists grow, or an entry
    # is overwritten (a corrected answer: record_control forgets the calibration then), and a version asks for it three times.
    _calibrated: tuple[tuple[int, float], ClassCalibration] | None = None
    _control_at: dict[str, int] = field(default_factory=dict)  # item id -> its place in the control lists

    def restore(self, metrics: Mapping[str, float]) -> None:
        """Take back the rules that had fired, from the newest published version's ``metrics``.

        A restarted retrainer starts a new history (the rules replay it), so without this a
        campaign that was told to stop would be told to go on.
        """
        self.auto_accept_paused = bool(metrics.get("auto_accept_paused", 0.0))
        for rule, at in fired_rules(metrics).items():
            self.earlier.setdefault(rule, {}).update({k: float(v) for k, v in at.items()})
        # The budget rule is judged on the budget set now: raised or taken off since it fired, it has not fired (it
        # fires anew once the paid labels reach the new one; lowered, at the next version).
        if "budget" in self.earlier and not self._same_budget(metrics.get("est_budget"), self.earlier["budget"].get("n_labels", 0.0)):
            del self.earlier["budget"]
        self.status.fired.update(self.earlier)
        self.announced |= set(self.earlier)  # (logged when they fired, before the restart)

    def _same_budget(self, judged: float | None, fired_at: float) -> bool:
        """Whether the budget set now is the one a fired budget rule was judged under: ``judged``, the budget the newest
        version was published under (older versions did not record it: then whether its labels, ``fired_at``, reach it)."""
        budget = self.rules.budget
        if budget is None:
            return False
        return float(judged) == budget if judged is not None else fired_at >= budget

    @staticmethod
    def fired_metrics(status: CampaignStatus) -> dict[str, float]:
        """The fired rules as model-version metrics (what :meth:`restore` reads back)."""
        return {f"stop_{name}_{k}": v for name, at in status.fired.items() for k, v in at.items()}

    def add_stop_items(self, payloads: Sequence[bytes], n_features: int | None = None) -> None:
        """Grow the stop set from raw items-topic payloads.

        Invalid ones, and ones of another length than ``n_features`` (the models'), are
        ignored here: the scorer dead-letters them.
        """
        for p in payloads:
            if len(self.stop_set) >= self.stop_set_size:
                return
            try:
                self.stop_set.append(decode_item(p, n_features=n_features).features)
            except DecodeError:
                continue

    def observe_control(self, label: Label, predict: Predict | None, classes: Sequence[object]) -> tuple[float, bool, object] | None:
        """Score a control label with the live model before training on it (multi-class only).

        Returns the ``(confidence, correct, predicted class)`` recorded, or ``None`` (no model yet).
        """
        if predict is None or label.features is None or label.label is None or not classes:
            return None
        p = predict(label.features[None, :])[0]
        predicted = classes[int(p.argmax())]
        seen = (float(p.max()), bool(predicted == label.label), predicted)
        self.record_control(*seen, item_id=label.item_id)
        return seen

    def record_control(self, confidence: float, correct: bool, predicted: object | None = None, item_id: str | None = None) -> None:
        """Add one control observation made earlier (e.g. read back from the control log); one of an ``item_id`` observed
        before (a corrected answer) takes that one's place: each control pick counts once, as its newest answer."""
        at = self._control_at.get(item_id) if item_id is not None else None
        if at is None:
            if item_id is not None:
                self._control_at[item_id] = len(self.control_conf)
            self.control_conf.append(confidence)
            self.control_correct.append(correct)
            self.control_pred.append(predicted)
            return
        self.control_conf[at], self.control_correct[at], self.control_pred[at] = confidence, correct, predicted
        self._calibrated = None  # (same count, other outcomes)

    def record_audit(self, correct: bool) -> None:
        """Add one audit answer: whether the auto-accepted label was what the labeler answered blind."""
        self.audit_outcomes.append(correct)

    @property
    def control_accuracy(self) -> float | None:
        return float(np.mean(self.control_correct)) if self.control_correct else None

    def class_calibration(self) -> ClassCalibration:
        """Per-class thresholds where a class's control labels reach the target, and the pooled one of the
        other classes (see :mod:`activestream.retrainer.auto_accept_rule`)."""
        key = (len(self.control_conf), self.target_precision)
        if self._calibrated is None or self._calibrated[0] != key:
            cal = calibrate_classes(np.array(self.control_conf, dtype=np.float64), np.array(self.control_correct, dtype=bool),
                                    self.control_pred, target_precision=self.target_precision)
            self._calibrated = (key, cal)
        return self._calibrated[1]

    def auto_accept_calibration(self) -> Calibration:
        """The auto-accept threshold of the classes without their own (all classes when none has one): the lowest
        confidence whose precision lower bound (Clopper-Pearson, 95%) reaches the target, or none and how many more
        control labels it needs."""
        return self.class_calibration().pooled

    def auto_accept_metrics(self) -> dict[str, float]:
        """The version's per-class thresholds (``auto_accept_threshold_class_<class>``) and the audit's state
        (``audit_n``, ``audit_correct``, ``audit_precision_lower_bound``, ``auto_accept_paused``)."""
        out = {k: v for k, v in self.class_calibration().metrics().items() if k != "auto_accept_threshold"}
        state = audit_state(self.audit_outcomes, self.auto_accept_paused, self.target_precision)
        if state.paused != self.auto_accept_paused:
            log.warning("auto-accept %s: audited precision %d of %d (95%% bounds %.4f-%.4f) against the target %.4f",
                        "paused" if state.paused else "resumed", state.correct, state.n, state.lower_bound or 0.0, state.upper_bound,
                        self.target_precision)
        self.auto_accept_paused = state.paused
        out.update({"audit_n": float(state.n), "audit_correct": float(state.correct), "auto_accept_paused": float(state.paused)})
        if state.lower_bound is not None:
            out["audit_precision_lower_bound"] = state.lower_bound
        return out

    def auto_accept_threshold(self) -> float | None:
        """:meth:`auto_accept_calibration`'s threshold (``None``: no auto-accept)."""
        return self.auto_accept_calibration().threshold

    def on_version(
        self, version: int, n_labels: int, predict: Predict, score: float | None, task: str = "multiclass", classes: Sequence[object] = (),
        score_items: int | None = None, labeled: Labeled | None = None, seconds: np.ndarray | None = None, spent: int | None = None,
    ) -> dict[str, Any]:
        """Record a published version; returns the facts to publish with it.

        The stop set is frozen at the first version, so every version predicts the same items.
        ``classes`` are the version's class values in output order: predictions are compared
        as classes, not output positions (a new class shifts the positions of the others).
        ``score_items`` is how many labeled items ``score`` was estimated on (see
        :class:`retrainer.stopping.StopRules` ``min_score_items``).
        ``spent`` is how many of the ``n_labels`` the campaign paid for (the budget rule's count; ``None``: all).
        ``labeled`` is the training set the live estimates (``est_*``) are made from (``None``: none; a multi-label
        campaign's version then carries its hours spent, from the labels' ``seconds``, and says it has no estimates).
        """
        if self._frozen is None and self.stop_set:
            self._frozen = np.vstack(self.stop_set)
        if self._frozen is None:
            preds = np.zeros(0, dtype=int)
        elif task == "multilabel":  # every (item, label) decision counts
            preds = (predict(self._frozen) >= 0.5).astype(int).ravel()
        else:
            preds = predict(self._frozen).argmax(axis=1)
            if classes:
                codes = np.array([self.class_codes.setdefault(c, len(self.class_codes)) for c in classes])
                preds = codes[preds]
        self.history.append(VersionRecord(version, n_labels, preds, score, score_items, spent))
        self.status = evaluate(self.history, self.rules, n_labels if spent is None else spent, known_kappas=self.status.kappas)  # (grows only)
        # Only the newest version's predictions are compared again (with the next one's): the kappas of the pairs before are
        # in status.kappas. Kept, the stop set's predictions of every version (8 kB a version for 1,000 items) would grow
        # the retrainer's memory by one such array every few labels, for as long as the campaign runs.
        if len(self.history) > 1:
            self.history[-2] = replace(self.history[-2], predictions=np.zeros(0, dtype=preds.dtype))  # (not a view: that holds it all)
        self.status.fired.update(self.earlier)  # a rule that fired before a restart fired then
        self.announce()
        calibration = self.auto_accept_calibration()
        multilabel = task == "multilabel"  # (no control scoring: no estimates, no auto-accept, nothing "needed" for them)
        if labeled is not None:
            estimates = self._estimates(version, n_labels, labeled)
        else:
            estimates = {"est_multiclass_only": 1.0, **cheap_figures(seconds, self.budget)} if multilabel and seconds is not None else {}
        facts: dict[str, Any] = {
            "control_accuracy": self.control_accuracy,
            "n_control": len(self.control_correct),
            "auto_accept_threshold": calibration.threshold,
            # The precision bound the threshold keeps, or how many more control labels one needs at least.
            "auto_accept_precision_lower_bound": calibration.lower_bound,
            "auto_accept_labels_needed": None if multilabel else calibration.more_labels_needed,
            "auto_accept_target": None if multilabel else self.target_precision,  # (the precision the rule keeps, shown with it)
            "kappa_previous": self.status.kappas[-1] if self.status.kappas else None,
            "stop": self.status.as_dict(),
            "estimates": estimates,
        }
        return facts

    def _estimates(self, version: int, n_labels: int, labeled: Labeled) -> dict[str, float]:
        """The version's ``est_*`` figures: its own cheap ones, the newest finished estimate (see :class:`EstimateRunner`)."""
        cheap = cheap_figures(labeled.seconds, self.budget)
        needed = control_labels_needed(labeled.y, labeled.control, self.estimates)
        if needed is not None:  # (too few: nothing to run, in the background or not)
            return {**cheap, "est_control_labels_needed": needed}
        return self.estimate_runner.on_version(version, n_labels, lambda: estimate(
            labeled.X, labeled.y, labeled.control, labeled.seconds, n_labels, labeled.fit, budget=self.budget, cfg=self.estimates), cheap)

    def announce(self) -> list[str]:
        """Log each stop rule the first time it fires (a signal, not a lock); returns the rules newly logged."""
        new = [rule for rule in self.status.fired if rule not in self.announced]
        for rule in new:
            at = self.status.fired[rule]
            if self.log_stops:
                log.warning("stop rule %s fired at model v%d with %d labels: %s (labeling may go on; it is a signal, not a lock)", rule,
                            int(at.get("version", 0)), int(at.get("n_labels", 0)),
                            "the label budget is spent" if rule == "budget" else "more labels may add little")
            self.announced.add(rule)
        fall = self.status.score_fell
        if fall is not None and not self.fall_announced and self.log_stops:
            log.warning("the estimated score fell from %.3f (model v%d) to %.3f (v%d), beyond its noise: has the stream drifted? "
                        "Stop rules that fired before it may no longer hold", fall["best"], int(fall["best_version"]), fall["now"],
                        int(fall["version"]))
        self.fall_announced = fall is not None
        return new

    def version_metrics(self, facts: Mapping[str, Any]) -> dict[str, float]:
        """What a version's record carries of the campaign: :meth:`on_version`'s ``facts`` that are known,
        the control count, the stop signal, and which stop rules fired when (a restart reads them back)."""
        names = ("control_accuracy", "auto_accept_threshold", "auto_accept_precision_lower_bound", "auto_accept_labels_needed",
                 "auto_accept_target", "kappa_previous")
        metrics = {name: float(facts[name]) for name in names if facts[name] is not None}
        metrics["n_control"] = float(facts["n_control"])
        metrics["stop"] = float(self.status.should_stop)
        metrics.update(self.fired_metrics(self.status))
        metrics.update(score_fell_metrics(self.status.score_fell))
        if self.budget is not None:  # (every version: a restart judges a budget rule that fired against the budget set then)
            metrics["est_budget"] = float(self.budget)
        metrics.update(facts.get("estimates", {}))
        return metrics
