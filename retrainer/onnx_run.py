"""Running an ONNX model in the retrainer: one-thread sessions and ``(n, k)`` probabilities out of them."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from activestream.retrainer.export import PROBABILITIES


def session(onnx_bytes: bytes, *, optimize: bool = True) -> ort.InferenceSession:
    """A one-thread session.

    ``optimize=False`` for a candidate version's checks (a few hundred rows): graph optimizations cost
    more than they save there (a linear head's session is made in 0.26 ms instead of 0.59, measured on
    digits; a campaign makes one per version). A live model's session (a user's version too) keeps them,
    as the scorer's does.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    """``(n, k)`` probabilities: the ``probabilities`` output, else (a user's model) its first float
    matrix output, with a softmax when its rows are not probabilities (logits)."""
    name = sess.get_inputs()[0].name
    outs = [o for o in sess.get_outputs() if o.name == PROBABILITIES] or [
        o for o in sess.get_outputs() if o.type == "tensor(float)" and len(o.shape) == 2]
    if not outs:
        raise ValueError(f"no probability output among {[o.name for o in sess.get_outputs()]}")
    p = np.asarray(sess.run([outs[0].name], {name: np.ascontiguousarray(X, dtype=np.float32)})[0], dtype=np.float64)
    if outs[0].name != PROBABILITIES and len(p) and not ((p >= 0).all() and np.allclose(p.sum(axis=1), 1.0, atol=1e-3)):
        e = np.exp(p - p.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
    return p
