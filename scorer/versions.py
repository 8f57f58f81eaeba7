"""Model versions off the wire: pick the newest from the models topic and open its ONNX bytes.

A version carries its ONNX bytes inline (``onnx_b64``) or names them by ``artifact_uri``.
The scorer reads an ``artifact_uri`` only from a configured store (:class:`ArtifactStore`:
directories, off by default), only a regular file, within a size limit and a time limit: a
record on the models topic must not make the scorer read any local path (a FIFO would block it).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import numpy as np

from activestream.rankedqueue import RankedQueue
from activestream.schemas import DecodeError, ModelVersion, decode_model_version
from activestream.schemas.campaign import fired_rules, first_rule, read_record
from activestream.scorer.model import OnnxClassifier
from activestream.streams.bus import Message

#: Largest model artifact read by default (ACTIVESTREAM_MODEL_ARTIFACT_MAX_MB).
ARTIFACT_MAX_BYTES = 256 * 2**20
#: Longest an artifact read may take.
ARTIFACT_READ_SECONDS = 10.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactStore:
    """Where model artifacts may be read from.

    Parameters
    ----------
    dirs : directories an ``artifact_uri`` (``file://`` URI or absolute path) must lie under,
        after symlinks are resolved; empty: artifacts are refused (versions must carry their bytes).
    max_bytes : largest artifact read.
    timeout : seconds an artifact read may take.
    """

    dirs: tuple[str, ...] = ()
    max_bytes: int = ARTIFACT_MAX_BYTES
    timeout: float = ARTIFACT_READ_SECONDS

    @classmethod
    def from_setting(cls, dirs: str | None, max_mb: int | None = None) -> ArtifactStore:
        """From ``ACTIVESTREAM_MODEL_ARTIFACT_DIR`` (``os.pathsep``-separated) and ``..._MAX_MB``."""
        found = tuple(os.path.realpath(d) for d in (dirs or "").split(os.pathsep) if d.strip())
        return cls(found, max_bytes=max_mb * 2**20 if max_mb is not None else ARTIFACT_MAX_BYTES)

    def read(self, uri: str, vid: str) -> bytes:
        """The bytes of the regular file ``uri`` names; a :class:`DecodeError` (field ``artifact_uri``) says why not."""
        def refuse(reason: str) -> DecodeError:
            return DecodeError(vid, "artifact_uri", reason)

        if not self.dirs:
            raise refuse("reading model artifacts is off (set ACTIVESTREAM_MODEL_ARTIFACT_DIR, or publish versions with onnx_b64)")
        parts = urlsplit(uri)
        if parts.scheme not in ("", "file") or parts.netloc not in ("", "localhost"):
            raise refuse(f"scheme {parts.scheme!r} is not allowed (only file:// under ACTIVESTREAM_MODEL_ARTIFACT_DIR)")
        path = os.path.realpath(unquote(parts.path))
        if not os.path.isabs(unquote(parts.path)) or not any(os.path.commonpath([path, d]) == d for d in self.dirs):
            raise refuse("not under ACTIVESTREAM_MODEL_ARTIFACT_DIR")
        deadline = time.monotonic() + self.timeout
        try:
            # O_NONBLOCK: opening a FIFO with no writer returns at once instead of blocking the scorer.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise refuse(f"cannot open: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise refuse("not a regular file")
            if st.st_size > self.max_bytes:
                raise refuse(f"{st.st_size} bytes, over the {self.max_bytes}-byte limit (ACTIVESTREAM_MODEL_ARTIFACT_MAX_MB)")
            chunks: list[bytes] = []
            size = 0
            while chunk := os.read(fd, _CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise refuse(f"over the {self.max_bytes}-byte limit (ACTIVESTREAM_MODEL_ARTIFACT_MAX_MB)")
                if time.monotonic() > deadline:
                    raise refuse(f"reading took over {self.timeout:.0f} s")
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise refuse(f"cannot read: {exc.strerror}") from None
        finally:
            os.close(fd)


def load_model_version(mv: ModelVersion, store: ArtifactStore | None = None) -> OnnxClassifier:
    """Open a model version's ONNX bytes (inline, or from ``store``).

    Raises
    ------
    DecodeError
        The artifact may not or cannot be read (field ``artifact_uri``), or its sha256 differs.
    Exception
        Whatever onnxruntime raises on bytes that are no usable model.
    """
    data = mv.onnx
    if data is None:
        vid = f"model v{mv.version}"
        if mv.artifact_uri is None:
            raise DecodeError(vid, "onnx_b64", "missing (give 'onnx_b64' or 'artifact_uri')")
        data = (store or ArtifactStore()).read(mv.artifact_uri, vid)
        if ModelVersion.digest(data) != mv.sha256:
            raise DecodeError(vid, "sha256", "does not match the artifact's bytes")
    # The retrainer's graphs give probabilities; a user's (publish-model) may give logits instead.
    kind = "sigmoid" if mv.task == "multilabel" else ("auto" if mv.source == "user" else "probabilities")
    return OnnxClassifier(data, output_kind=kind)


def run_problem(model: OnnxClassifier, rows: np.ndarray | None, known: int | None) -> str | None:
    """Why ``model`` cannot score: running it on ``rows`` (pending items; else one row of zeros of the known width) raises,
    or gives no probability row per input row; ``None`` when it can (or there is nothing to run it on).

    A model version that loads but fails when run (a Reshape to a fixed shape, a bad operator attribute) would otherwise
    make the scorer's re-rank raise and the scorer exit, at every restart too: one record on the models topic stopping
    scoring for the campaign.
    """
    width = model.n_features or known
    if rows is None or (width is not None and rows.shape[1] != width):
        if width is None:
            return None
        rows = np.zeros((1, width), dtype=np.float32)
    try:
        probas = np.asarray(model.predict_proba_many(rows))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors share no base class
        return f"running it on {len(rows)} pending row(s) failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    if probas.ndim != 2 or probas.shape[0] != len(rows) or probas.shape[1] == 0:
        return f"it gave an output of shape {probas.shape} for {len(rows)} row(s): expected one probability row per row"
    return None  # (NaN for some rows is no verdict on the model: those items are ranked last, as before)


def feature_mismatch(model: OnnxClassifier, known: int | None) -> str | None:
    """Why ``model`` cannot score items of ``known`` features (its input length is another), or ``None``."""
    if model.n_features is not None and known is not None and model.n_features != known:
        return f"expects {model.n_features} features, items have {known}"
    return None


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
        except (ValueError, TypeError, RecursionError) as exc:  # (the decoder should raise DecodeError only; never stop on one record)
            bad.append((m, DecodeError(None, None, f"undecodable model version ({type(exc).__name__}: {exc})"[:500])))
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
    rules = fired_rules(metrics)
    fired = {rule: {k: float(v) for k, v in at.items()} for rule, at in rules.items()}  # (floats, as the page has read them)
    first = first_rule(rules)
    return {"version": version, "should_stop": bool(fired) or bool(metrics.get("stop")), "first": first, "fired": fired}


def campaign_record(mv: ModelVersion, earlier: str | None = None) -> dict[str, object]:
    """What ``GET /campaign`` reads of the live version: ``{"version", "n_labels", "created_at", "source", "metrics"}``.

    A version of ``publish-model`` carries no campaign figures of its own: it keeps those of ``earlier`` (the record it
    replaces, JSON: the retrainer's newest version's, or what an earlier user version kept), with ``figures_of``
    naming that version and ``n_labels`` its labels, as ``activestream report`` shows them.
    """
    record: dict[str, object] = {"version": mv.version, "n_labels": mv.n_labels, "created_at": mv.created_at, "source": mv.source,
                                 "metrics": dict(mv.metrics)}
    prev = read_record(earlier) if mv.source != "retrainer" else None
    if prev is None or not isinstance(prev.get("version"), int):
        return record
    return {**record, "metrics": prev["metrics"], "n_labels": prev.get("n_labels"), "figures_of": prev.get("figures_of", prev["version"])}


def check_width(queue: RankedQueue, n_features: int) -> None:
    """Record ``n_features`` for the queue's namespace; ``ValueError`` if it holds items of another width.

    A scorer without the setting enforces the recorded width too; a namespace already holding
    items of another width would mix widths in one queue. Items written with no width recorded
    (a scorer given n_features did not record it before, nor does RankedQueue.add) are judged
    by the rows they stored.
    """
    stored = queue.stored_widths() if queue.get_meta("n_features") is None else []
    held = " or ".join(map(str, stored)) if stored and n_features not in stored else queue.ensure_n_features(n_features)
    if held != n_features:
        raise ValueError(f"n_features={n_features}, but this queue namespace holds items of {held} features (fixed by its first items): "
                         "use another ACTIVESTREAM_NAMESPACE, or leave ACTIVESTREAM_N_FEATURES unset")


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
    classes: tuple[object, ...] = ()  # the probability columns' classes (multi-class) or labels (multi-label)
