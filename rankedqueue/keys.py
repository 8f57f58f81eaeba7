"""Keys and constants of the ranked queue, in one place (like arq's ``constants.py``).

Every Redis key lives under ``{prefix}:{namespace}:`` (:class:`QueueKeys`); the tuning
constants below bound how much one script call or one round trip carries. The Lua scripts
(``lua/*.lua``) get their keys from these names through ``KEYS``/``ARGV``; the ``meta`` hash
field names they spell out themselves are the ``META_*`` ones here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_PREFIX = "activestream"
NAMESPACE_FORBIDDEN = ":*?[]\\"  # the key separator and glob characters

# --------------------------------------------------------------------------- stored features

FEATURE_DTYPES = ("float32", "float16")
DEFAULT_FEATURE_DTYPE = "float32"  # what a namespace stores when no writer chose (also the scripts' default)
FLOAT16_MAX = float(np.finfo(np.float16).max)  # float16 rows are clipped to +-this before the cast
MAX_ID_BYTES = 0xFFFF  # a segment's ids blob stores each id's length as a uint16

# --------------------------------------------------------------------------- fields of the ``meta`` hash

META_FEATURE_DTYPE = "feature_dtype"  # fixed by the first writer of a namespace
META_SEGSEQ = "segseq"  # the last segment number handed out
META_N_FEATURES = "n_features"  # the feature width every scorer enforces (first one wins)
META_RANKED_VERSION = "ranked_version"  # model version of the last bulk re-rank
META_COLD_START_LABELS = "cold_start_labels"  # labels there were at the first re-rank
META_LABEL_FIELD = "label_field"  # "label" or "labels": fixed by the campaign's first accepted label
#: The label field (META_LABEL_FIELD) a task's answers come in.
ANSWER_FIELDS = {"multiclass": "label", "multilabel": "labels"}


def task_of_field(field: str | None) -> str | None:
    """The task whose answers come in label field ``field`` (:data:`ANSWER_FIELDS`); ``None`` when none is recorded."""
    return {f: task for task, f in ANSWER_FIELDS.items()}.get(field or "")
META_TOPIC_PREFIX = "topic_prefix"  # the campaign's topics (ACTIVESTREAM_TOPIC_PREFIX), as its first process used them
META_LABEL_KIND = "label_kind"  # "integers" or "strings": fixed by the first accepted label with a value
META_STARTED_AT = "started_at"  # when a service first worked on the namespace (UNIX s): it holds a campaign from then on
META_DECLARED_CLASSES = "declared_classes"  # JSON list: ACTIVESTREAM_CLASSES of the last service started with it (every labeling path checks it)
META_FEATURE_NAMES = "feature_names"  # JSON list: the features' names (a CSV header, ACTIVESTREAM_FEATURE_NAMES), for the labeling page
META_STOP = "stop"  # JSON: the live model version's stop signal (which rules fired, when), for the labeling page
META_CAMPAIGN = "campaign"  # JSON: the live model version's record (version, n_labels, metrics) for GET /campaign
META_BANDIT = "bandit_state"  # JSON: the strategy bandit's arm weights, picks and rewards (strategy albl), for /status and simulate

# --------------------------------------------------------------------------- batch sizes

# Items per enqueue script call: bounds how long one call blocks Redis.
ADD_CHUNK = 5000
# A segment grows by appends (admitted rows of later calls) and merges (the live rows of sparse segments) up to this
# many rows: fewer, fuller segments, whatever the micro-batches' size (lua/fn_segment_write.lua).
SEGMENT_ROWS = 2048
# ... and this many bytes of rows: an append copies the segment's rows (an APPEND would leave up to as much again allocated).
SEGMENT_BYTES = 256 * 1024
# The newest segment takes appends for this long after its first write (an appended item's age counts from there);
# with a pool max age, for at most a tenth of it.
SEGMENT_OPEN_SECONDS = 5.0
# Segments looked at for merging per enqueue script call (a cursor over them all); none with a pool max age, as a merged
# segment's time is its oldest row's and the max age would evict its younger rows early.
SEGMENT_MERGE_LOOK = 16
# Leases returned per expire script call: keeps each call short.
EXPIRE_BATCH = 5000
# The longest a label being published holds its item (QueueKeys.submitting): a process killed meanwhile frees it then.
SUBMIT_HOLD_MS = 60_000
# Members per ZADD of a client-side bulk write (rescore, the re-rank's fallback without RESTORE).
ZADD_CHUNK = 10_000
# A bulk re-rank scores segments one by one, small ones gathered up to this many rows
# (~8k rows per model call was fastest here: 1k-row calls cost 35% more, 16k-row ones 45%).
RERANK_MIN_ROWS = 8192
# Segments fetched per pipelined round trip.
SEGMENTS_PER_FETCH = 64
# Below this many scores a re-rank sorts them on one thread.
PARALLEL_SORT_MIN = 100_000
# Candidates read per page when looking past what a labeler skipped (top_for).
TOP_FOR_PAGE = 64
# Keys per SCAN page and per UNLINK when clearing a namespace.
CLEAR_BATCH = 1000
# Old segments evicted per age-eviction script call (bounds how long one call blocks Redis).
AGE_EVICT_SEGMENTS = 64

# --------------------------------------------------------------------------- fields of the ``pool_stats`` hash

POOL_EVICTED = "evicted"  # pending items evicted by a better one (the pool was full)
POOL_REJECTED = "rejected"  # new items that did not outrank the lowest pending one of a full pool
POOL_AGE_EVICTED = "age_evicted"  # pending items evicted for being older than the max age
POOL_RESERVOIR_REPLACED = "reservoir_replaced"  # reservoir members replaced by a newcomer
POOL_STREAMED = "streamed"  # items offered to the pool (counted by the scorers before their offsets commit: see pool_offsets)
POOL_READ = "read"  # item records the scorers read, whatever became of them (dead letters, auto-accepted ... too), each once
POOL_STATS = (POOL_READ, POOL_STREAMED, POOL_EVICTED, POOL_REJECTED, POOL_AGE_EVICTED, POOL_RESERVOIR_REPLACED)


@dataclass(frozen=True)
class QueueKeys:
    """Key names for one queue namespace (one labeling campaign)."""

    namespace: str = "default"
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        # ':' separates the parts of a key: with it, one namespace's keys would sit inside
        # another's ("camp" would own "camp:eu"'s) and clearing one would wipe the other.
        bad = sorted(set(self.namespace) & set(NAMESPACE_FORBIDDEN))
        if not self.namespace or bad:
            raise ValueError(f"namespace {self.namespace!r}: must be non-empty and hold none of {NAMESPACE_FORBIDDEN!r} (has {''.join(bad)!r})")

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

    def submitting(self, item_id: str) -> str:
        """STRING: the token of the request publishing a label of ``item_id`` right now (a hold of a minute at most): two
        labels for one item sent at once (a retry on another API replica) go out one at a time."""
        return self._k(f"submitting:{item_id}")

    @property
    def control(self) -> str:
        """HASH item id -> labeler id it was leased to as a random-control pick (their label is control).

        Set or cleared by every claim (a control pick or not), cleared by the holder's skip, a
        drop and the item's label.
        """
        return self._k("control")

    @property
    def last_score(self) -> str:
        """HASH item id -> score it had when leased (restored when the lease expires)."""
        return self._k("last_score")

    @property
    def featloc(self) -> str:
        """HASH item id -> ``"<segment>:<row>"`` where its features are stored.

        Set when the item is enqueued, rewritten when a compaction moves its row; deleted
        when a full pool evicts it (the id is forgotten); an empty string (a tombstone) once
        it is labeled or dropped: an id with a tombstone is never enqueued again.
        """
        return self._k("featloc")

    @property
    def segment_prefix(self) -> str:
        """Prefix of the segment keys, for scripts that build them at run time."""
        return self._k("seg:")

    def segment_features(self, seq: int | str) -> str:
        """STRING: the feature rows of one enqueue batch, row after row (dtype in :attr:`meta`)."""
        return f"{self.segment_prefix}{seq}:f"

    def segment_ids(self, seq: int | str) -> str:
        """STRING: the ids of a segment's rows: uint32 count, uint16 lengths, then the UTF-8 ids."""
        return f"{self.segment_prefix}{seq}:i"

    def segment_token(self, seq: int | str) -> str:
        """STRING: the server time the segment was written or last compacted at, what a re-rank's
        segment cache checks its copy against (after a Redis rollback or a clear() a segment
        number can name other rows). Freed with the segment."""
        return f"{self.segment_prefix}{seq}:t"

    def segment_dead(self, seq: int | str) -> str:
        """STRING bitmap: bit ``row`` set once that row's item is labeled, dropped, auto-accepted or evicted (a
        compaction cuts the dead rows out and their bits with them)."""
        return f"{self.segment_prefix}{seq}:d"

    @property
    def segment_width(self) -> str:
        """HASH segment -> bytes per row (only for segments that still hold a live row)."""
        return self._k("seg_width")

    @property
    def segment_live(self) -> str:
        """HASH segment -> rows whose item is pending or leased; the segment is freed at 0."""
        return self._k("seg_live")

    @property
    def segment_time(self) -> str:
        """ZSET segment -> enqueue time of its items (the oldest live one gives the queue's age)."""
        return self._k("seg_time")

    @property
    def metadata(self) -> str:
        """HASH item id -> JSON metadata (only for items that have some)."""
        return self._k("metadata")

    @property
    def labeled(self) -> str:
        """SET of labeled item ids (never queued again)."""
        return self._k("labeled")

    @property
    def label_ids(self) -> str:
        """SET of accepted label ids (idempotent submit)."""
        return self._k("label_ids")

    @property
    def last_label(self) -> str:
        """HASH labeler id -> the encoded label.v1 of their last accepted label (what a correction of it reuses)."""
        return self._k("last_label")

    @property
    def skips(self) -> str:
        """HASH item id -> times skipped."""
        return self._k("skips")

    def skipped_by(self, labeler_id: str) -> str:
        """SET of items ``labeler_id`` skipped (not offered to them again) that are still in the queue."""
        return self.skipped_by_prefix + labeler_id

    @property
    def skipped_by_prefix(self) -> str:
        """Prefix of the ``skipped_by`` sets, for scripts that find the labeler at run time."""
        return self._k("skipped_by:")

    @property
    def skippers_prefix(self) -> str:
        """Prefix of the per-item SETs of the labelers who skipped it (``skippers:<item id>``)."""
        return self._k("skippers:")

    def passed(self, holder: str) -> str:
        """ZSET item id -> when a labeler of the group ``holder`` (a dispatcher's lease) passed on it."""
        return self._k(f"passed:{holder}")

    def owned(self, owner: str) -> str:
        """SET of items currently leased to ``owner`` (a labeler or a dispatcher group)."""
        return self._k(f"owned:{owner}")

    @property
    def owned_prefix(self) -> str:
        """Prefix of the ``owned`` sets, for scripts that find the owner at run time."""
        return self._k("owned:")

    def connector(self, name: str) -> str:
        """Prefix of the keys a labeling-tool connector keeps its own state under (``labelstudio:<project>``)."""
        return self._k(f"connector:{name}")

    @property
    def audit(self) -> str:
        """HASH item id -> JSON ``{"label", "version"}``: auto-accepted items sent to labelers blind (the audit)."""
        return self._k("audit")

    @property
    def dropped(self) -> str:
        """SET of items that left the queue unlabeled (skipped too often)."""
        return self._k("dropped")

    @property
    def meta(self) -> str:
        """HASH of queue facts: model_version, ranked_version, n_features, feature_dtype, segseq, mergeseq and mergecursor (the merge segment and the merge sweep's place: lua/fn_segment_write.lua)."""
        return self._k("meta")

    @property
    def rerank_tmp(self) -> str:
        """Scratch ZSET used to build a re-ranked queue before an atomic swap."""
        return self._k("pending:rerank")

    @property
    def rerank_old(self) -> str:
        """Name the replaced queue takes for a moment during the swap, before it is UNLINKed."""
        return self._k("pending:old")

    @property
    def rerank_lock(self) -> str:
        """STRING: token of the one bulk re-rank running on this queue (with a TTL)."""
        return self._k("rerank:lock")

    @property
    def reservoir(self) -> str:
        """ZSET item id -> its sampling key in [0, 1): the random reservoir, the members with the smallest keys.

        A uniform sample of every item streamed (see :mod:`activestream.rankedqueue.pool`), kept
        apart from the pool (rows in :attr:`reservoir_rows`): the random-control picks are drawn from it.
        """
        return self._k("reservoir")

    @property
    def reservoir_rows(self) -> str:
        """HASH item id -> a reservoir member's score (<f8), row length (<u4), row and metadata JSON."""
        return self._k("reservoir_rows")

    @property
    def pool_stats(self) -> str:
        """HASH of the pool's counters (fields ``POOL_*``): streamed, evicted, rejected, age-evicted, reservoir replacements."""
        return self._k("pool_stats")

    @property
    def pool_offsets(self) -> str:
        """HASH ``topic:partition`` -> the highest offset of an items topic whose records :attr:`pool_stats` counts.

        The scorers count a batch here before its offsets commit to Kafka; a record read again (a crash between the
        two, a rolled-back commit) at or below its partition's mark is not counted again.
        """
        return self._k("pool_offsets")

    @property
    def rerank_removed(self) -> str:
        """SET: items labeled or dropped while a bulk re-rank runs (taken out at the swap)."""
        return self._k("rerank:removed")
