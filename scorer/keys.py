"""Every Redis key of the ranked queue, under ``{prefix}:{namespace}:``."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "activestream"


@dataclass(frozen=True)
class QueueKeys:
    """Key names for one queue namespace (one labeling campaign)."""

    namespace: str = "default"
    prefix: str = DEFAULT_PREFIX

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{self.namespace}:{name}"

    @property
    def pending(self) -> str:
        """ZSET item id -> score: waiting for a labeler, highest first."""
        return self._k("pending")

    @property
    def leased(self) -> str:
        """ZSET item id -> lease expiry (UNIX s)."""
        return self._k("leased")

    @property
    def lease_owner(self) -> str:
        """HASH item id -> labeler id holding the lease."""
        return self._k("lease_owner")

    @property
    def last_score(self) -> str:
        """HASH item id -> score it had when leased (restored when the lease expires)."""
        return self._k("last_score")

    @property
    def features(self) -> str:
        """HASH item id -> little-endian float32 bytes."""
        return self._k("features")

    @property
    def metadata(self) -> str:
        """HASH item id -> JSON metadata (only for items that have some)."""
        return self._k("metadata")

    @property
    def enqueued(self) -> str:
        """ZSET item id -> first enqueue time, for every item not yet labeled."""
        return self._k("enqueued")

    @property
    def labeled(self) -> str:
        """SET of labeled item ids (never queued again)."""
        return self._k("labeled")

    @property
    def label_ids(self) -> str:
        """SET of accepted label ids (idempotent submit)."""
        return self._k("label_ids")

    @property
    def skips(self) -> str:
        """HASH item id -> times skipped."""
        return self._k("skips")

    def skipped_by(self, labeler_id: str) -> str:
        """SET of items ``labeler_id`` skipped (not offered to them again)."""
        return self._k(f"skipped_by:{labeler_id}")

    def owned(self, owner: str) -> str:
        """SET of items currently leased to ``owner`` (a labeler or a dispatcher group)."""
        return self._k(f"owned:{owner}")

    @property
    def owned_prefix(self) -> str:
        """Prefix of the ``owned`` sets, for scripts that find the owner at run time."""
        return self._k("owned:")

    @property
    def dropped(self) -> str:
        """SET of items that left the queue unlabeled (skipped too often)."""
        return self._k("dropped")

    @property
    def meta(self) -> str:
        """HASH of queue facts: model_version, n_features."""
        return self._k("meta")

    @property
    def rerank_tmp(self) -> str:
        """Scratch ZSET used to build a re-ranked queue before an atomic swap."""
        return self._k("pending:rerank")
