"""ONNX classifier behind a small river-style protocol (``predict_proba_many``)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class ProbabilisticModel(Protocol):
    """What the scorer needs of a model."""

    n_features: int | None

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        """``X : (n, n_features) float32 -> (n, n_classes)`` probabilities."""
        ...


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


class OnnxClassifier:
    """Any ONNX classifier with a float32 input: probabilities, logits or a ZipMap out.

    Parameters
    ----------
    model : ONNX bytes (or a path).
    output : name of the output to read; by default ``probabilities`` when present,
        else the first float tensor of rank 2, else a ZipMap (``seq(map)``) output.
    output_kind : ``"probabilities"``, ``"logits"`` (softmax applied), ``"sigmoid"``
        (independent multi-label probabilities, returned as they are), or ``"auto"``
        (logits when rows do not already look like probabilities).
    threads : onnxruntime intra-op threads (1 keeps small batches fast and predictable;
        more pay off on large inputs, e.g. a re-rank: see :meth:`with_threads`).
    """

    def __init__(
        self,
        model: bytes | str,
        *,
        output: str | None = None,
        output_kind: str = "auto",
        threads: int = 1,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise ImportError("the scorer needs onnxruntime: pip install onnxruntime") from exc
        self._model, self.threads = model, threads
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if threads > 1:  # its pool's threads sleep between runs instead of spinning on cores others need
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected a model with one input, got {[i.name for i in inputs]}")
        self._input = inputs[0].name
        shape = inputs[0].shape
        self.n_features = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        outs = {o.name: o for o in self._session.get_outputs()}
        if output is None:
            if "probabilities" in outs:
                output = "probabilities"
            else:
                tensors = [o for o in outs.values() if o.type == "tensor(float)" and len(o.shape) == 2]
                maps = [o for o in outs.values() if o.type.startswith("seq(map")]
                if tensors:
                    output = tensors[0].name
                elif maps:
                    output = maps[0].name
                else:
                    raise ValueError(f"no probability output among {list(outs)}")
        if output not in outs:
            raise ValueError(f"model has no output {output!r}; outputs: {list(outs)}")
        self._output = output
        self._zipmap = outs[output].type.startswith("seq(map")
        self.output_kind = output_kind
        self.output_names = list(outs)

    def with_threads(self, threads: int) -> OnnxClassifier:
        """The same model and output in a session with ``threads`` intra-op threads (self if already so)."""
        if threads == self.threads:
            return self
        return OnnxClassifier(self._model, output=self._output, output_kind=self.output_kind, threads=threads)

    def run(self, X: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """Raw outputs by name for ``X : (n, n_features)``."""
        return self._session.run(outputs, {self._input: np.ascontiguousarray(X, dtype=np.float32)})  # type: ignore[no-any-return]

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : (n_samples, n_features) float32 features.

        Returns
        -------
        (n_samples, n_classes) float64 probabilities (rows sum to 1 unless the model
        has independent sigmoid heads).
        """
        if len(X) == 0:
            return np.zeros((0, 0))
        (raw,) = self.run(X, [self._output])
        if self._zipmap:
            keys = sorted(raw[0])
            out = np.array([[row[k] for k in keys] for row in raw], dtype=np.float64)
        else:
            out = np.asarray(raw, dtype=np.float64)
        if out.ndim == 1:
            out = out[:, None]
        kind = self.output_kind
        if kind == "auto":
            looks_like_p = (out >= -1e-6).all() and (out <= 1 + 1e-6).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
            kind = "probabilities" if looks_like_p else "logits"
        if kind == "logits":
            return _softmax(out)
        return out
