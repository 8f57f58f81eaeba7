"""``activestream publish-model MODEL.onnx``: check your own ONNX classifier against a namespace and publish it.

The checks, each refusing with one ``error:`` line naming the file and the field: the file
exists and onnxruntime opens it; its one input is a float matrix as wide as the namespace's
items (``activestream queue info``: ``n_features``); it has a probability (or logits) output
with one column per class; it gives no NaN on a sample of the queue's pending rows; and it
does no worse on the retrainer's held-out labels than the live version (unless ``--force``).
It is published as the next version with ``source: user``: every scorer serves it, and the
retrainer holds its own versions until it is restarted with ``--resume``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from activestream.commands import options
from activestream.retrainer.logs import newest_version, read_log

if TYPE_CHECKING:
    from activestream.rankedqueue import RankedQueue
    from activestream.schemas import Label, ModelVersion
    from activestream.scorer.model import OnnxClassifier
    from activestream.streams.bus import Message

log = logging.getLogger(__name__)

#: The no-regression gate needs this many held-out labels (as the retrainer's ``min_holdout``).
MIN_HOLDOUT = 20


class ModelRefused(ValueError):
    """The model fails a check: the message is the one line the command prints."""


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``publish-model`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("publish-model", help="check your ONNX classifier against the namespace and publish it as the live model")
    p.add_argument("model", metavar="MODEL.onnx", help="an ONNX classifier: one float input (N, n_features), a probability or logits output")
    p.add_argument("--classes", nargs="+", default=None,
                   help="class labels in the order of the output's columns (default: the newest published version's)")
    p.add_argument("--task", choices=("multiclass", "multilabel"), default=None,
                   help="multilabel: the output holds independent per-label probabilities (default: the newest version's, else multiclass)")
    p.add_argument("--force", action="store_true", help="publish even if it does worse than the live version on the held-out labels")
    p.add_argument("--sample", type=options.count, default=1000, help="pending rows of the queue it is run on (default %(default)s)")
    options.add_connection(p)
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Checked:
    """A model that passed the checks, and what they measured."""

    model: OnnxClassifier
    n_features: int | None
    n_checked: int
    metrics: dict[str, float]
    gate: str


def open_model(path: Path, task: str) -> tuple[bytes, OnnxClassifier]:
    """Read and open ``path`` (a missing file, a non-ONNX file, no usable input or output: :class:`ModelRefused`)."""
    import onnxruntime as ort

    from activestream.scorer.model import OnnxClassifier

    if not path.is_file():
        raise ModelRefused(f"{path}: no such file")
    data = path.read_bytes()
    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors share no base class
        raise ModelRefused(f"{path}: not an ONNX model onnxruntime can open: {_first_line(exc)}") from None
    inputs = sess.get_inputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 2:
        got = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        raise ModelRefused(f"{path}: field 'inputs': expected one float input of shape (N, n_features), got {got}")
    try:
        return data, OnnxClassifier(data, output_kind="sigmoid" if task == "multilabel" else "auto")
    except ValueError as exc:  # no probability output among ...
        raise ModelRefused(f"{path}: field 'outputs': {exc}: give a probability or logits output (skl2onnx: options zipmap=False)") from None


def check_model(path: Path, model: OnnxClassifier, *, classes: tuple[object, ...], task: str, width: int | None, namespace: str,
                sample_ids: list[str], sample: np.ndarray, classes_from: str = "--classes") -> int | None:
    """The width, output and NaN checks; returns the model's input width (``None``: it does not say).

    Parameters
    ----------
    width : the namespace's feature count (``None``: unknown yet).
    sample_ids, sample : (n, n_features) pending rows of the queue (or labeled ones) the model is run on.
    classes_from : where ``classes`` came from, for a message (``--classes``, or the live version).
    """
    from activestream.retrainer.validate import check_outputs
    from activestream.tables import names_shown

    n_in = model.n_features
    if width is not None and n_in is not None and n_in != width:
        raise ModelRefused(f"{path}: field 'inputs': the model takes {n_in} features; namespace {namespace!r} holds {width} "
                           "(activestream queue info: n_features)")
    if len(sample) == 0:
        n = width or n_in
        if n is None:
            raise ModelRefused(f"{path}: namespace {namespace!r} holds no item yet and the model's input width is not fixed: nothing to check it on")
        sample_ids, sample = ["zeros"], np.zeros((1, n), dtype=np.float32)
    try:
        probas = model.predict_proba_many(sample)
    except Exception as exc:  # noqa: BLE001 - onnxruntime refusing the rows (a dynamic width that does not fit)
        raise ModelRefused(f"{path}: running it on {len(sample)} rows of namespace {namespace!r} ({sample.shape[1]} features) failed: "
                           f"{_first_line(exc)}") from None
    if probas.shape[1] != len(classes):
        raise ModelRefused(f"{path}: field 'outputs': the probability output has {probas.shape[1]} columns; {classes_from} gives {len(classes)} "
                           f"classes ({names_shown([str(c) for c in classes], 20)})" + ("" if classes_from == "--classes" else ": give the model's own with --classes, in its output's order"))
    bad = ~np.isfinite(probas).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ModelRefused(f"{path}: field 'outputs': NaN or infinity for {int(bad.sum())} of {len(sample)} rows of namespace "
                           f"{namespace!r}, first item {sample_ids[first]!r}")
    problem = check_outputs(probas, len(sample), len(classes), task)
    if problem is not None:
        raise ModelRefused(f"{path}: field 'outputs': {problem} ({'per-label probabilities expected' if task == 'multilabel' else 'probabilities or logits expected'})")
    return n_in if n_in is not None else int(sample.shape[1])


def holdout_gate(path: Path, model: OnnxClassifier, live: OnnxClassifier | None, live_version: int, hold: list[Label], *,
                 classes: tuple[object, ...], live_classes: tuple[object, ...], task: str, tolerance: float, force: bool,
                 ) -> tuple[dict[str, float], str]:
    """The retrainer's no-regression check on its held-out labels: ``(metrics, what it said)``; refuses unless ``force``."""
    from activestream.retrainer.training_set import arrays
    from activestream.retrainer.validate import holdout_accuracy, no_regression

    if len(hold) < MIN_HOLDOUT or live is None:
        why = f"{len(hold)} held-out labels (it needs {MIN_HOLDOUT})" if live is not None else "no live version to compare with"
        return {}, f"no-regression check skipped: {why}"
    X, y = arrays(hold, task)
    cand = holdout_accuracy(model.predict_proba_many(X), classes, y, task)
    ref = holdout_accuracy(live.predict_proba_many(X), live_classes, y, task)
    metrics = {"holdout_accuracy": cand, "live_holdout_accuracy": ref, "n_holdout": float(len(hold))}
    said = f"held-out accuracy {cand:.3f} vs live v{live_version}'s {ref:.3f} on {len(hold)} labels"
    if not no_regression(cand, ref, tolerance):
        if not force:
            raise ModelRefused(f"{path}: {said}: below it by more than {tolerance} (ACTIVESTREAM_TOLERANCE); --force publishes it anyway")
        said += " (worse: published with --force)"
    return metrics, said


def parse_classes(given: list[str] | None, newest: ModelVersion | None, label_kind: str | None) -> tuple[object, ...]:
    """``--classes``, as integers when the campaign's labels are (else the newest version's classes)."""
    if not given:
        if newest is None:
            raise ModelRefused("--classes: no model version is published yet to take the classes from: give them in the output's column order")
        return tuple(newest.classes)
    ints = label_kind == "integers" or (newest is not None and all(isinstance(c, int) for c in newest.classes))
    if not ints:
        return tuple(given)
    try:
        return tuple(int(c) for c in given)
    except ValueError:
        raise ModelRefused(f"--classes {' '.join(given)}: this campaign's labels are integers") from None


# ONNX-ML classifier operators (skl2onnx's export of any scikit-learn classifier ends in one, or in a ZipMap) name their
# classes in their output's column order.
CLASS_LABELS = ("classlabels_strings", "classlabels_ints", "classlabels_int64s")


def onnx_class_labels(data: bytes) -> tuple[object, ...] | None:
    """The classes an ONNX classifier names, in its probability output's order (``None``: it names none, e.g. a bare MLP)."""
    import onnx
    from onnx import helper

    for node in onnx.load_from_string(data).graph.node:
        for attr in node.attribute:
            if attr.name in CLASS_LABELS and (values := helper.get_attribute_value(attr)):
                return tuple(v.decode() if isinstance(v, bytes) else int(v) for v in values)
    return None


def in_model_order(classes: tuple[object, ...], labels: tuple[object, ...] | None, *, given: bool) -> tuple[object, ...]:
    """``classes`` (``--classes``, or the newest version's when not ``given``) checked against the model's own ``labels``.

    The same classes in another order than the model's: given, refused (each column would be read as another class);
    taken from the newest version, the model's order instead. Other labels (a model trained on codes) are not compared.

    >>> in_model_order(("b", "a"), ("a", "b"), given=False)
    ('a', 'b')
    """
    if labels is None or [str(c) for c in classes] == [str(c) for c in labels] or sorted(map(str, classes)) != sorted(map(str, labels)):
        return classes
    if given:
        raise ModelRefused(f"--classes {' '.join(map(str, classes))}: the model's output columns are {', '.join(map(str, labels))} (the class "
                           "labels it names): give them in that order, or leave --classes out")
    by_name = {str(c): c for c in classes}
    return tuple(by_name[str(label)] for label in labels)


def run(args: argparse.Namespace) -> int:
    """Check ``MODEL.onnx`` against the namespace and publish it as the next model version (``source: user``).

    Returns
    -------
    0, or 2 with one ``error:`` line naming the file and the field that failed.
    """
    try:
        return _run(args)
    except ModelRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from activestream.config import declared_classes
    from activestream.retrainer.training_set import TrainingSet
    from activestream.schemas import DecodeError, ModelVersion, decode_label, not_a_class
    from activestream.scorer.versions import load_model_version
    from activestream.streams.topics import MODEL_KEY
    from activestream.wiring import connect, make_queue, settings_from

    path = Path(args.model)
    if not path.is_file():  # before any connection: the commonest mistake answers at once
        raise ModelRefused(f"{path}: no such file")
    s = settings_from(args)
    queue = make_queue(s, socket_timeout=30.0)
    s, bus, topics = connect(args)
    try:
        newest = newest_version(bus, topics)
        task = args.task or (newest.task if newest is not None else "multiclass")
        data, model = open_model(path, task)
        meta = queue.get_meta_fields("n_features", "label_kind")
        classes = parse_classes(args.classes, newest, meta["label_kind"])
        if task == "multiclass":
            classes = in_model_order(classes, onnx_class_labels(data), given=bool(args.classes))
        declared = declared_classes(s) or queue.declared_classes()
        outside = not_a_class(list(classes), declared) if declared is not None else None  # type: ignore[arg-type]
        if outside is not None:  # (a model that predicts a class no labeler may give)
            raise ModelRefused(f"--classes {' '.join(map(str, classes))}: {outside}")
        width = int(meta["n_features"]) if meta["n_features"] else s.n_features
        training = TrainingSet(s.holdout_fraction)
        for m in read_log(bus, topics.labels, 60.0):
            try:
                label = decode_label(m.value)
            except DecodeError:
                continue
            if label.features is not None and (width is None or label.features.size == width):
                training.add(label)
        ids, X = _sample(queue, args.sample)
        if not ids and len(training):  # nothing pending: the labeled rows
            labeled = list(training.items.values())[: args.sample]
            ids, X = [lab.item_id for lab in labeled], np.vstack([lab.features for lab in labeled]).astype(np.float32)  # type: ignore[misc]
        n_in = check_model(path, model, classes=classes, task=task, width=width, namespace=s.namespace, sample_ids=ids, sample=X,
                           classes_from="--classes" if args.classes else f"the live model v{newest.version if newest else 0}")
        live = load_model_version(newest) if newest is not None else None
        metrics, said = holdout_gate(path, model, live, newest.version if newest else 0, training.split()[1], classes=classes,
                                     live_classes=tuple(newest.classes) if newest else (), task=task, tolerance=s.tolerance, force=args.force)
        version = (newest.version if newest is not None else 0) + 1
        for _ in range(3):
            mv = ModelVersion(version=version, onnx=data, sha256=ModelVersion.digest(data), classes=classes, task=task,  # type: ignore[arg-type]
                              metrics=metrics, n_labels=len(training), source="user")
            bus.publish(topics.models, mv.encode(), key=MODEL_KEY)
            bus.flush()
            # A retrainer may have taken the same number at the same moment: scorers would serve
            # whichever they read first. Then publish again above it.
            clash = newest_other(read_log(bus, topics.models, 60.0), version, mv.sha256, mv.created_at)
            if clash is None:
                break
            log.warning("model v%d was also published by the %s: publishing again as v%d", version, clash.source, clash.version + 1)
            version = clash.version + 1
    finally:
        bus.close()
    print(f"published {path} as model v{version} (source: user; {len(classes)} {'labels' if task == 'multilabel' else 'classes'}, "
          f"{n_in} features; checked on {len(X) or 1} rows; {said})")
    print(f"every scorer serves v{version} next; the retrainer holds its own versions (its log, /healthz and "
          "activestream_retrainer_holding_user_version say so) until restarted with `activestream retrainer --resume`")
    return 0


def newest_other(msgs: list[Message], version: int, sha256: str, created_at: float) -> ModelVersion | None:
    """The newest version numbered ``version`` or above that is not the one just published, or ``None``."""
    from activestream.schemas import DecodeError, decode_model_version

    other: ModelVersion | None = None
    for m in msgs:
        try:
            mv = decode_model_version(m.value)
        except DecodeError:
            continue
        if mv.version >= version and not (mv.sha256 == sha256 and mv.created_at == created_at) and (other is None or mv.version > other.version):
            other = mv
    return other


def _sample(queue: RankedQueue, n: int) -> tuple[list[str], np.ndarray]:
    """Up to ``n`` pending rows of the queue (the first chunk it reads)."""
    for ids, X in queue.iter_pending(chunk=n):
        return list(ids[:n]), X[:n]
    return [], np.zeros((0, 0), dtype=np.float32)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
