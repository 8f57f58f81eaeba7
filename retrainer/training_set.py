"""The labeled set, folded from the labels topic: one entry per item, each label id once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from activestream.schemas import Label


def in_holdout(item_id: str, fraction: float) -> bool:
    """Deterministically put ``fraction`` of items aside for validation (hash of the id)."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "little")
    return h / 2.0**64 < fraction


@dataclass
class TrainingSet:
    """Labels by item id. A repeated label id is ignored; a new label for an item replaces the old one.

    Parameters
    ----------
    holdout_fraction : share of items kept out of training to validate new versions.
    """

    holdout_fraction: float = 0.0
    items: dict[str, Label] = field(default_factory=dict)
    label_ids: set[str] = field(default_factory=set)

    def add(self, label: Label) -> str:
        """Fold one label in. Returns ``"new"``, ``"updated"`` or ``"duplicate"``."""
        if label.label_id in self.label_ids:
            return "duplicate"
        self.label_ids.add(label.label_id)
        status = "updated" if label.item_id in self.items else "new"
        self.items[label.item_id] = label
        return status

    def count_by_source(self) -> dict[str, int]:
        """Items by the source of their label in use (``human``, ``baseline``, ...): imported labels cost nothing now."""
        out: dict[str, int] = {}
        for lab in self.items.values():
            out[lab.source] = out.get(lab.source, 0) + 1
        return out

    def __len__(self) -> int:
        return len(self.items)

    def split(self) -> tuple[list[Label], list[Label]]:
        """``(train, holdout)`` label lists, in a stable (item id) order."""
        train: list[Label] = []
        hold: list[Label] = []
        for item_id in sorted(self.items):
            (hold if in_holdout(item_id, self.holdout_fraction) else train).append(self.items[item_id])
        return train, hold

    def digest(self) -> str:
        """sha256 over the sorted label ids in use: two sets with equal digests hold the same labels."""
        h = hashlib.sha256()
        for lab in sorted(x.label_id for x in self.items.values()):
            h.update(lab.encode() + b"\n")
        return h.hexdigest()


def arrays(labels: list[Label], task: str) -> tuple[np.ndarray, list[object]]:
    """``(X : (n, n_features) float32, y)`` from labels; ``y`` holds classes or label sets."""
    if not labels:
        return np.zeros((0, 0), dtype=np.float32), []
    X = np.vstack([lab.features for lab in labels]).astype(np.float32)  # type: ignore[misc]
    if task == "multilabel":
        return X, [tuple(lab.labels or ()) for lab in labels]
    return X, [lab.label for lab in labels]
