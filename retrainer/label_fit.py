"""Whether a decoded label fits its campaign: feature width, task (one class or a label set), label type, declared classes (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from activestream.schemas import DecodeError, Label, coerce_label_value, label_kinds, not_a_class
from activestream.schemas.fields import LabelValue


def fit_to_campaign(
    label: Label, n_features: int | None, task: str, label_kind: str | None, classes: Sequence[LabelValue] | None = None
) -> tuple[Label | DecodeError, str, str | None]:
    """Check ``label`` against what the campaign has fixed so far.

    Parameters
    ----------
    label : a decoded label.
    n_features : the campaign's feature width (``None``: not fixed yet; the caller fixes it).
    task : ``auto`` (the first label fixes it), ``multiclass`` or ``multilabel``.
    label_kind : ``integers`` or ``strings`` (``None``: the first label with a value fixes it).
    classes : the campaign's declared classes (``ACTIVESTREAM_CLASSES``); ``None``: any label.

    Returns
    -------
    ``(label, task, label_kind)``: the label (its values converted to the campaign's type where they
    convert: a terminal labeler sends 1, a UI "1") or the :class:`DecodeError` that refuses it, and the
    task and label type after it (fixed by the first label that has them, even one refused later).
    """
    size = label.features.size if label.features is not None else 0
    if n_features is not None and size != n_features:
        return DecodeError(label.item_id, "features", f"expected {n_features} values, got {size}"), task, label_kind
    if task == "auto":
        task = "multilabel" if label.labels is not None else "multiclass"
    if (label.labels is not None) != (task == "multilabel"):
        want = "'labels' (a label set)" if task == "multilabel" else "'label' (one class)"
        return DecodeError(label.item_id, "labels" if task == "multilabel" else "label", f"this campaign is {task}: give {want}"), task, label_kind
    values = label.labels if label.labels is not None else (label.label,)
    kinds = label_kinds(values)  # type: ignore[arg-type]
    field = "labels" if label.labels is not None else "label"
    if len(kinds) > 1:
        return DecodeError(label.item_id, field, f"mixes integers and strings: {values!r}"), task, label_kind
    problem = not_a_class(values, classes) if classes is not None else None  # type: ignore[arg-type]
    if problem is not None:
        return DecodeError(label.item_id, field, problem), task, label_kind
    if label_kind is None and kinds:
        label_kind = kinds.pop()
    elif label_kind is not None and kinds and kinds != {label_kind}:
        # 1 and "1" would become two classes: take the campaign's type when the value converts, else refuse it.
        coerced = [coerce_label_value(v, label_kind) for v in values]  # type: ignore[arg-type]
        if any(c is None for c in coerced):
            return DecodeError(label.item_id, field, f"this campaign's labels are {label_kind}; got {values!r}"), task, label_kind
        done = [c for c in coerced if c is not None]
        label = dataclasses.replace(label, labels=tuple(done)) if label.labels is not None else dataclasses.replace(label, label=done[0])
    return label, task, label_kind
