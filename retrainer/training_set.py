"""The labeled set, folded from the labels topic: one entry per item, each label id once."""

from __future__ import annotations

import bisect
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
    # Seconds of every label folded in, superseded ones too (a corrected answer, another labeler's): the hours spent.
    answer_seconds: list[float] = field(default_factory=list)
    # Kept as labels come, so a version does not redo them for every item (a campaign publishes one per ten labels):
    _train_ids: list[str] = field(init=False, repr=False, compare=False)  # item ids outside the holdout, sorted
    _hold_ids: list[str] = field(init=False, repr=False, compare=False)  # item ids in it, sorted
    _by_source: dict[str, int] = field(init=False, repr=False, compare=False)
    _split_fraction: float = field(init=False, repr=False, compare=False)  # the holdout fraction they were split by

    def __post_init__(self) -> None:
        self._index()

    def _index(self) -> None:
        """Build the kept lists and counts from ``items`` (at creation, and when ``holdout_fraction`` changed)."""
        self._split_fraction = self.holdout_fraction
        self._train_ids, self._hold_ids, self._by_source = [], [], {}
        for item_id in sorted(self.items):
            (self._hold_ids if in_holdout(item_id, self.holdout_fraction) else self._train_ids).append(item_id)
            source = self.items[item_id].source
            self._by_source[source] = self._by_source.get(source, 0) + 1

    def add(self, label: Label) -> str:
        """Fold one label in. Returns ``"new"``, ``"updated"`` or ``"duplicate"``."""
        if label.label_id in self.label_ids:
            return "duplicate"
        self.label_ids.add(label.label_id)
        self.answer_seconds.append(label.seconds)
        old = self.items.get(label.item_id)
        if old is None:
            bisect.insort(self._hold_ids if in_holdout(label.item_id, self._split_fraction) else self._train_ids, label.item_id)
        else:
            self._by_source[old.source] -= 1
        self._by_source[label.source] = self._by_source.get(label.source, 0) + 1
        self.items[label.item_id] = label
        return "new" if old is None else "updated"

    def count_by_source(self) -> dict[str, int]:
        """Items by the source of their label in use (``human``, ``baseline``, ...): imported labels cost nothing now."""
        return {source: n for source, n in self._by_source.items() if n}

    def __len__(self) -> int:
        return len(self.items)

    def split(self) -> tuple[list[Label], list[Label]]:
        """``(train, holdout)`` label lists, in a stable (item id) order."""
        if self._split_fraction != self.holdout_fraction:
            self._index()
        return [self.items[i] for i in self._train_ids], [self.items[i] for i in self._hold_ids]

    def digest(self) -> str:
        """sha256 over the sorted label ids in use: two sets with equal digests hold the same labels."""
        ids = sorted(x.label_id for x in self.items.values())
        # (one update of the joined ids: the same bytes, so the same digest, as one update per id)
        return hashlib.sha256("".join(f"{lab}\n" for lab in ids).encode()).hexdigest()


def arrays(labels: list[Label], task: str) -> tuple[np.ndarray, list[object]]:
    """``(X : (n, n_features) float32, y)`` from labels; ``y`` holds classes or label sets."""
    if not labels:
        return np.zeros((0, 0), dtype=np.float32), []
    rows = [lab.features for lab in labels]
    width = len(rows[0])  # type: ignore[arg-type]
    if (np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)) == width).all():  # type: ignore[arg-type]
        # (one concatenate: vstack wraps each row first, a cost per label at every version)
        X = np.concatenate(rows).astype(np.float32, copy=False).reshape(len(rows), width)  # type: ignore[arg-type]
    else:
        X = np.vstack(rows).astype(np.float32)  # type: ignore[arg-type]  # (raises, naming the shapes)
    if task == "multilabel":
        return X, [tuple(lab.labels or ()) for lab in labels]
    return X, [lab.label for lab in labels]
