"""Pure pieces of the Label Studio connector: the labeling config, task data, scores and answers.

No I/O here: the connector (:mod:`activestream.labeling.label_studio`) calls these with what it
read from the queue and from Label Studio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from activestream.schemas.wire_json import as_written

log = logging.getLogger(__name__)

ITEM_ID_FIELD = "activestream_id"  # task data key holding the item id
FEATURES_FIELD = "features"  # task data key holding {feature name: value}
# Label Studio serves the LOWEST prediction score first (next_task.py orders by predictions__score
# ascending), so a task's score is minus activestream's; control picks go before every ranked item.
CONTROL_LS_SCORE = -1e9
DEFAULT_FROM_NAME = "label"


def model_version_name(version: int) -> str:
    """The ``model_version`` string of activestream's model ``version`` in Label Studio."""
    return f"activestream-v{version}"


def ls_score(score: float, *, control: bool = False) -> float:
    """Label Studio's prediction score for an item activestream scores ``score`` (higher: label it sooner).

    Label Studio's uncertainty sampling serves the lowest score first, so this is ``-score``:
    its next task is activestream's best. Random-control picks get :data:`CONTROL_LS_SCORE`
    (served before the ranked items: their share of the labels is the point of them).

    >>> ls_score(0.9) < ls_score(0.1)
    True
    """
    if control:
        return CONTROL_LS_SCORE
    return -float(score) if math.isfinite(score) else 0.0


def feature_names(n: int, names: Sequence[str] | None) -> list[str]:
    """Names of ``n`` features: the configured ones (``ACTIVESTREAM_FEATURE_NAMES``) or ``f0``, ``f1``, ..."""
    if names and len(names) == n:
        return list(names)
    return [f"f{i}" for i in range(n)]


def task_data(item_id: str, metadata: dict[str, Any], features: np.ndarray | None, names: Sequence[str] | None,
              shown: Sequence[str] = ()) -> dict[str, Any]:
    """A Label Studio task's ``data``: the item's metadata (``text``, ``image``, ...) at the top level,
    its features under their names in ``features``, and its id in ``activestream_id``.

    Nothing says whether the item is a random-control pick or an audit (a labeler who could tell would label those
    differently, and the estimates they feed would lean).

    Parameters
    ----------
    item_id : the item.
    metadata : the item's metadata as the producer sent it.
    features : (n_features,) float32, or ``None``.
    names : feature names (see :func:`feature_names`).
    shown : the data fields the labeling config shows (:func:`shown_fields`): Label Studio refuses a whole import
        with a task that lacks one, so an item without it gets an empty one (and a warning).
    """
    data = {k: v for k, v in metadata.items() if k not in (ITEM_ID_FIELD, FEATURES_FIELD, "control")}
    data[ITEM_ID_FIELD] = item_id
    if features is not None:
        vec = np.asarray(features, dtype=np.float32)
        # (each value's shortest decimal: read back as float32 it is the same value, so the label carries the same vector)
        data[FEATURES_FIELD] = dict(zip(feature_names(len(vec), names), as_written(vec), strict=True))
    missing = [f for f in shown if f not in data]
    if missing:
        log.warning("item %s has no metadata field %s, which the labeling config shows: exported with an empty one",
                    item_id, ", ".join(map(repr, missing)))
        data.update(dict.fromkeys(missing, ""))
    return data


def shown_fields(config: str) -> list[str]:
    """The task data fields a labeling config shows (its ``value="$field"`` attributes), ``features`` aside."""
    try:
        root = ET.fromstring(config)  # noqa: S314 - the project's own config, read from Label Studio or the user
    except ET.ParseError:
        return []
    fields = (el.get("value", "") for el in root.iter())
    return list(dict.fromkeys(v[1:] for v in fields if v.startswith("$") and v[1:] and v[1:] != FEATURES_FIELD))


def choice_values(config: str, name: str) -> list[str]:
    """The values of the ``<Choice>`` options of control ``name`` in a labeling config."""
    root = ET.fromstring(config)  # noqa: S314 - the project's own config
    for el in root.iter("Choices"):
        if el.get("name") == name:
            return [str(c.get("value")) for c in el.iter("Choice") if c.get("value") is not None]
    return []


def choice_problems(choices: Sequence[str], classes: Sequence[Any]) -> list[str]:
    """What is wrong between a config's choices and the campaign's classes: one line each (``[]``: they agree).

    >>> choice_problems(["Barolo", "barbera"], ["barolo", "barbera"])
    ["choice 'Barolo' is not a class (its answers will be refused)", "class 'barolo' is not a choice (labelers cannot give it)"]
    """
    names = {str(c) for c in classes}
    return ([f"choice {c!r} is not a class (its answers will be refused)" for c in choices if c not in names]
            + [f"class {str(c)!r} is not a choice (labelers cannot give it)" for c in classes if str(c) not in set(choices)])


def features_from_data(data: dict[str, Any]) -> np.ndarray | None:
    """The (n_features,) float32 vector a task's data holds (in its stored order), or ``None``."""
    feats = data.get(FEATURES_FIELD)
    if not isinstance(feats, dict) or not feats:
        return None
    try:
        return np.array([float(v) for v in feats.values()], dtype=np.float32)
    except (TypeError, ValueError):
        return None


def labeling_config(classes: Sequence[Any], task: str, *, data_field: str | None = None, data_type: str = "text") -> str:
    """A Label Studio labeling config for activestream's classes.

    Parameters
    ----------
    classes : the live model's classes (or the ones given at project creation).
    task : ``"multiclass"`` (one choice) or ``"multilabel"`` (multiple choices).
    data_field : the task data key to show (``text``, ``image``, ...); ``None``: the features as a table.
    data_type : ``"text"`` or ``"image"``, how ``data_field`` is shown.

    Returns
    -------
    The config's XML, whose choices control is named ``label``.
    """
    if not classes:
        raise ValueError("a labeling config needs at least one class (give --classes, or wait for a first model)")
    if task not in ("multiclass", "multilabel"):
        raise ValueError(f"task must be 'multiclass' or 'multilabel', got {task!r}")
    if data_type not in ("text", "image"):
        raise ValueError(f"data_type must be 'text' or 'image', got {data_type!r}")
    if data_field is None:
        obj, name = f'<Table name="features" value="${FEATURES_FIELD}"/>', "features"
    else:
        tag = "Text" if data_type == "text" else "Image"
        obj, name = f"<{tag} name={quoteattr(data_field)} value={quoteattr('$' + data_field)}/>", data_field
    choice = "multiple" if task == "multilabel" else "single"
    opts = "".join(f"<Choice value={quoteattr(str(c))}/>" for c in classes)
    return (f'<View>{obj}<Choices name="{DEFAULT_FROM_NAME}" toName={quoteattr(name)} choice="{choice}" showInline="true">'
            f"{opts}</Choices></View>")


def choices_control(config: str) -> tuple[str, bool]:
    """The first ``<Choices>`` control of a labeling config: ``(name, multiple)``.

    Raises
    ------
    ValueError
        When the config is not XML or has no ``<Choices>`` control.
    """
    try:
        root = ET.fromstring(config)  # noqa: S314 - the project's own config, read from Label Studio or the user
    except ET.ParseError as exc:
        raise ValueError(f"labeling config: not XML ({exc})") from None
    for el in root.iter("Choices"):
        name = el.get("name")
        if name:
            return name, el.get("choice", "single") == "multiple"
    raise ValueError("labeling config: no <Choices name=...> control (the connector reads the answer from one)")


@dataclass(frozen=True)
class Answer:
    """An annotation turned into activestream's terms: a class (``label``) or a set (``labels``)."""

    label: str | int | None = None
    labels: tuple[str | int, ...] | None = None

    def digest(self) -> str:
        """A short fingerprint of the answer (an update that changes nothing keeps it)."""
        body = json.dumps({"label": self.label, "labels": list(self.labels) if self.labels is not None else None}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


class SeveralChoices(ValueError):
    """Several choices in a single-choice control: which one is the label is not known (refused, not the first taken)."""

    def __init__(self, picked: Sequence[str | int], from_name: str) -> None:
        super().__init__(f"several choices ({', '.join(map(repr, picked))}) in the single-choice control {from_name!r}: "
                         "one class per item")
        self.digest = Answer(labels=tuple(picked)).digest()


def answer_from_result(result: Sequence[dict[str, Any]], from_name: str, multiple: bool, classes: Sequence[Any] = ()) -> Answer | None:
    """The answer an annotation's ``result`` gives in control ``from_name`` (``None``: no choice made, one class asked).

    A choice that names one of ``classes`` becomes that class (``"3"`` -> ``3`` when classes are
    integers); any other stays a string (the labeling service then checks it against the campaign).

    Raises
    ------
    SeveralChoices
        Two different choices where one class is asked.
    """
    by_text = {str(c): c for c in classes}
    picked: list[str | int] = []
    for r in result:
        if r.get("from_name") != from_name:
            continue
        value = r.get("value") or {}
        for c in value.get("choices") or []:
            picked.append(by_text.get(str(c), str(c)))
    if multiple:  # (no choice in a multi-label project: no tag applies, an answer too)
        return Answer(labels=tuple(dict.fromkeys(picked)))
    if len(set(picked)) > 1:
        raise SeveralChoices(list(dict.fromkeys(picked)), from_name)
    return Answer(label=picked[0]) if picked else None


def label_id(project: int, annotation: int, revision: int) -> str:
    """The label id of revision ``revision`` (0: as first submitted) of a Label Studio annotation.

    Derived, never random: a redelivered webhook or a re-poll yields the same id, which the
    labeling service accepts once.
    """
    base = f"labelstudio:{project}:{annotation}"
    return base if revision == 0 else f"{base}:r{revision}"
