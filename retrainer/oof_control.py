"""Control labels no model could score when they came (a ``--random-sample`` import before any model), scored out of fold.

A control label calibrates auto-accept only as scored by a model that had not trained on it. Labels
imported with ``import-labels --random-sample`` before any model exists have no such model, so at the
first retrain they are scored by k-fold: each fold's control labels by the campaign's estimator fitted
on every other label of the training set (the labels the first version trains on, less the fold). These
are the first observations of those labels, logged like any other (``retrainer.control_log``): a
restart reads them back instead of scoring the labels again with a model that has trained on them.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import KFold

from activestream.retrainer.control_log import ControlObservation
from activestream.retrainer.estimator import EstimatorFactory, make_trainer
from activestream.retrainer.trainer import NotEnoughClasses
from activestream.retrainer.training_set import arrays
from activestream.schemas import Label

log = logging.getLogger(__name__)

#: Folds of the out-of-fold scoring (fewer when there are fewer control labels).
FOLDS = 5


def score_out_of_fold(control: list[Label], training: list[Label], factory: EstimatorFactory | None, *, folds: int = FOLDS,
                      seed: int = 0) -> list[ControlObservation]:
    """Observations of ``control`` labels, each by a model fitted on ``training`` less its fold (version 0: no published model).

    Parameters
    ----------
    control : (m,) multi-class control labels no model has scored.
    training : every label the version trains on (``control`` among them or not).
    factory : the campaign's estimator (``None``: the default heads).

    A fold whose other labels hold fewer than two classes is not scored (its labels stay unobserved).
    """
    if len(control) < 2:
        return []
    held_ids = {lab.label_id for lab in control}
    rest = [lab for lab in training if lab.label_id not in held_ids]
    out: list[ControlObservation] = []
    for _, fold in KFold(min(folds, len(control)), shuffle=True, random_state=seed).split(np.zeros(len(control))):
        fold_labels = [control[j] for j in fold]
        fold_ids = {lab.label_id for lab in fold_labels}
        X, y = arrays(rest + [lab for lab in control if lab.label_id not in fold_ids], "multiclass")
        try:
            heads = make_trainer("multiclass", factory, full_refit_every=1).fit(X, y)
        except NotEnoughClasses as exc:
            log.info("control labels of no live model: a fold not scored (%s)", exc)
            continue
        Xf, _ = arrays(fold_labels, "multiclass")
        p = heads.predict_proba(Xf)
        for lab, row in zip(fold_labels, p, strict=True):
            predicted = heads.classes[int(row.argmax())]
            out.append(ControlObservation(lab.label_id, float(row.max()), bool(predicted == lab.label), 0, predicted))  # type: ignore[arg-type]
    log.info("scored %d control label(s) that came before any model out of fold (%d folds)", len(out), min(folds, len(control)))
    return out
