"""The control log: how the live model did on each random-control label when it first arrived.

Auto-accept is calibrated on (confidence, correct) pairs of control labels scored by a
model that had not trained on them. A restarted retrainer replays the labels topic, but
the model live by then has trained on those labels (scoring them again would flatter it),
and the models topic is compacted, so the model live at the time is gone. So each pair is
published once, keyed by label id, to a compacted topic, and read back on start-up.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from activestream.retrainer.logs import read_log
from activestream.schemas import DecodeError, finite_number, integer, load_object, required_text
from activestream.streams.bus import Bus


@dataclass(frozen=True)
class ControlObservation:
    """One control label as the live model saw it before training on it.

    Parameters
    ----------
    label_id : the label's id (the record's key).
    confidence : the live model's top probability for the item.
    correct : whether its top class was the label.
    version : the live model version.
    predicted : the class it predicted (per-class auto-accept thresholds); ``None`` in records logged before it was.
    """

    label_id: str
    confidence: float
    correct: bool
    version: int
    predicted: int | str | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, payload: bytes | str) -> ControlObservation:
        """Read one record back; :class:`DecodeError` (a ``ValueError``) names the label, the field and the reason.

        It is the only exception raised, for any payload (a record this module did not write).
        """
        try:
            obj = load_object(payload)
            label_id = required_text(obj, None, "label_id")
            confidence = finite_number(obj, label_id, "confidence", None, minimum=0.0)
            correct = obj.get("correct")
            if not isinstance(correct, bool):
                raise DecodeError(label_id, "correct", "expected true or false")
            predicted = obj.get("predicted")
            if predicted is not None and (isinstance(predicted, bool) or not isinstance(predicted, int | str)):
                raise DecodeError(label_id, "predicted", "expected a class (an integer or a string)")
            return cls(label_id, confidence, correct, integer(obj, label_id, "version", None, minimum=0), predicted)
        except DecodeError:
            raise
        except Exception as exc:  # the safety net, as every decoder of activestream.schemas has
            raise DecodeError.from_unexpected(None, exc) from exc


def load_control_log(bus: Bus, topic: str, timeout: float = 60.0) -> dict[str, ControlObservation]:
    """Every first observation in the control log, by label id (a record that is not one is skipped, with a warning)."""
    out: dict[str, ControlObservation] = {}
    for m in read_log(bus, topic, timeout):
        try:
            obs = ControlObservation.decode(m.value)
        except ValueError as exc:
            logging.getLogger(__name__).warning("control log: skipped a record: %s", exc)
            continue
        out[obs.label_id] = obs
    return out
