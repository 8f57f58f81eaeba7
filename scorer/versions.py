"""Model versions off the wire: pick the newest from the models topic and open its ONNX bytes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from activestream.schemas import DecodeError, ModelVersion, decode_model_version
from activestream.scorer.model import OnnxClassifier
from activestream.streams.bus import Message


def load_model_version(mv: ModelVersion) -> OnnxClassifier:
    """Open a model version's ONNX bytes (inline or from its artifact path)."""
    data = mv.onnx
    if data is None:
        assert mv.artifact_uri is not None
        data = Path(mv.artifact_uri.removeprefix("file://")).read_bytes()
        if ModelVersion.digest(data) != mv.sha256:
            raise ValueError(f"model v{mv.version}: artifact sha256 does not match")
    # The retrainer's graphs give probabilities; a user's (publish-model) may give logits instead.
    kind = "sigmoid" if mv.task == "multilabel" else ("auto" if mv.source == "user" else "probabilities")
    return OnnxClassifier(data, output_kind=kind)


def newest_model_version(msgs: Sequence[Message], above: int) -> tuple[ModelVersion | None, list[tuple[Message, DecodeError]]]:
    """The newest model version among ``msgs`` that is newer than version ``above`` (else ``None``),
    and the messages that are not model versions, with why."""
    newest: ModelVersion | None = None
    bad: list[tuple[Message, DecodeError]] = []
    for m in msgs:
        try:
            mv = decode_model_version(m.value)
        except DecodeError as err:
            bad.append((m, err))
            continue
        if mv.version > above and (newest is None or mv.version > newest.version):
            newest = mv
    return newest, bad


def stop_signal(version: int, metrics: Mapping[str, float]) -> dict[str, object]:
    """A version's stop rules as the labeling page shows them (the retrainer publishes them as metrics).

    ``{"version", "should_stop", "first", "fired": {rule: {"version", "n_labels"}}}``; ``first`` is
    the rule that fired at the fewest labels (``None`` when none did).

    >>> stop_signal(7, {"stop": 1.0, "stop_budget_version": 7.0, "stop_budget_n_labels": 400.0})["first"]
    'budget'
    """
    fired: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        m = re.fullmatch(r"stop_(.+)_(version|n_labels)", key)
        if m:
            fired.setdefault(m.group(1), {})[m.group(2)] = float(value)
    first = min(fired, key=lambda r: (fired[r].get("n_labels", float("inf")), r)) if fired else None
    return {"version": version, "should_stop": bool(fired) or bool(metrics.get("stop")), "first": first, "fired": fired}


def label_cardinality(mv: ModelVersion) -> float | None:
    """Mean labels per labeled item a multi-label version was trained on (``None`` if it does not say)."""
    value = mv.metrics.get("label_cardinality")
    return None if value is None else float(value)


@dataclass(frozen=True)
class LiveVersion:
    """A loaded model version and what scoring with it needs."""

    model: OnnxClassifier
    version: int
    task: str
    label_cardinality: float | None
