"""The control log: how the live model did on each random-control label when it first arrived.

Auto-accept is calibrated on (confidence, correct) pairs of control labels scored by a
model that had not trained on them. A restarted retrainer replays the labels topic, but
the model live by then has trained on those labels (scoring them again would flatter it),
and the models topic is compacted, so the model live at the time is gone. So each pair is
published once, keyed by label id, to a compacted topic, and read back on start-up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ControlObservation:
    """One control label as the live model saw it before training on it.

    Parameters
    ----------
    label_id : the label's id (the record's key).
    confidence : the live model's top probability for the item.
    correct : whether its top class was the label.
    version : the live model version.
    """

    label_id: str
    confidence: float
    correct: bool
    version: int

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, payload: bytes) -> ControlObservation:
        """Raises ``ValueError`` (naming the field) for a record this module did not write."""
        try:
            obj = json.loads(payload)
            out = cls(str(obj["label_id"]), float(obj["confidence"]), bool(obj["correct"]), int(obj["version"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"control observation: {exc!r}") from None
        return out
