"""confluent-kafka essentials shared by the Kafka bus and its consumers: the lazy import,
error-code sets, watermarks with retries, and the per-topic settings topics are created with."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

# Commit failures that only mean "the group moved on": the records are redelivered to
# whoever owns the partitions now, which at-least-once already allows.
REBALANCE_ERRORS = ("REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "_ASSIGNMENT_LOST")
# Consumer errors that are reported but recovered from by librdkafka itself.
TRANSIENT_ERRORS = ("_MAX_POLL_EXCEEDED", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT")
# Commit errors of a group coordinator that is moving or loading (a broker restart): the same commit succeeds later.
COORDINATOR_ERRORS = ("COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR", "REQUEST_TIMED_OUT", "_TRANSPORT",
                      "_TIMED_OUT", "_WAIT_COORD")
# Errors that starting again does not mend (credentials or rights refused, a TLS setup the broker rejects): a service that
# meets one exits as refused (status 2), so `up` stops the stack saying why instead of restarting it forever.
PERMANENT_ERRORS = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "UNSUPPORTED_SASL_MECHANISM", "ILLEGAL_SASL_STATE",
                    "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
                    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "_SSL")


def confluent() -> Any:
    """Import confluent_kafka on first use, so the embedded mode never needs it."""
    try:
        import confluent_kafka
        import confluent_kafka.admin  # noqa: F401 - a submodule, not imported by the package
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("activestream.streams.kafka needs confluent-kafka: pip install confluent-kafka") from exc
    return confluent_kafka


def error_codes(names: Sequence[str]) -> frozenset[int]:
    """librdkafka error codes of ``names`` (those this client version knows)."""
    err = confluent().KafkaError
    return frozenset(getattr(err, n) for n in names if hasattr(err, n))



# Right after a topic is created, a partition's leader can still answer "not leader" for
# a moment even though the metadata already names it: retry those until the timeout.
# (_UNKNOWN_PARTITION: the client has no metadata for it yet, e.g. while the broker restarts)
_WATERMARK_RETRY = ("NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART", "_TIMED_OUT", "_TRANSPORT", "_UNKNOWN_PARTITION")


def watermarks(client: Any, tp: Any, timeout: float) -> tuple[int, int]:
    """``(low, high)`` offsets of ``tp`` from the broker, retrying transient errors until ``timeout``."""
    ck = confluent()
    retry = error_codes(_WATERMARK_RETRY)
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = client.get_watermark_offsets(tp, timeout=max(0.5, deadline - time.monotonic()), cached=False)
            return int(low), int(high)
        except ck.KafkaException as exc:
            err = exc.args[0]
            if (err.code() not in retry and not err.retriable()) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


#: Largest model version record (base64 ONNX bytes and all) the models topic and the producers take:
#: below librdkafka's consumer fetch.max.bytes (50 MiB), so a consumer fetches one whole.
MAX_MODEL_BYTES = 32 * 2**20


def default_topic_config(topic: str) -> dict[str, str]:
    """Per-topic settings ``ensure_topics`` creates a topic with.

    ``*.models`` is compacted: it is keyed by ``MODEL_KEY``, so compaction keeps the
    newest version forever, where time retention (7 days by default) would one day
    leave a newly started scorer without any model; ``*.control`` (one record per label
    id, read back by a restarted retrainer) is compacted for the same reason. ``*.labels`` keeps every record:
    the retrainer rebuilds its training set from that log, and labels are paid for.
    """
    if topic.endswith(".models"):
        # A tree ensemble's ONNX graph (a user's --estimator, publish-model) passes the broker's
        # 1 MB default record size: the models topic takes records up to MAX_MODEL_BYTES.
        return {"cleanup.policy": "compact", "max.message.bytes": str(MAX_MODEL_BYTES)}
    if topic.endswith(".control"):
        return {"cleanup.policy": "compact"}
    if topic.endswith(".labels"):
        return {"retention.ms": "-1"}
    return {}
