"""In-memory reference for the re-rank benchmark: modAL's ``classifier_margin`` + ``argsort``.

Run by ``benchmarks/throughput.py`` on the very matrix the queue holds::

    python benchmarks/rerank_reference.py DATA.npz [--repeat 3]

``DATA.npz`` holds ``X`` (the pending items, float32), ``X_train`` and ``y_train`` (the
labels the new model version was fitted on). The model is scikit-learn's
``StandardScaler + LogisticRegression`` (what our retrainer fits before exporting it to
ONNX); the timed part is ``classifier_margin(model, X)`` (``predict_proba``, then the
top-2 difference) and ``np.argsort`` of the margins: the ranking an in-memory pool-based
active learner would compute after a model update. It prints one JSON object.

modAL-python is not installed in the product's venv: ``.venv-bench`` has it, pinned with
scikit-learn 1.7.2, because its ``ActiveLearner`` breaks on scikit-learn >= 1.8 (which the
product venv has). ``classifier_margin`` does not use what broke, so ``--modal-from DIR``
(``.venv-bench``'s site-packages) appends DIR to the path: modAL (pure Python) then runs on
this interpreter's scikit-learn and numpy, which come first. Without modAL the script uses
:func:`classifier_margin` below, a line-for-line copy of modAL 0.4.2's (``predict_proba``,
``np.partition(-proba, 1, axis=1)``, ``-part[:, 0] + part[:, 1]``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np


def classifier_margin(classifier, X):  # noqa: ANN001, ANN201 - mirrors modAL's signature
    """modAL 0.4.2 ``modAL.uncertainty.classifier_margin`` (without the NotFittedError branch)."""
    classwise_uncertainty = classifier.predict_proba(X)
    if classwise_uncertainty.shape[1] == 1:
        return np.zeros(shape=(classwise_uncertainty.shape[0],))
    part = np.partition(-classwise_uncertainty, 1, axis=1)
    margin = -part[:, 0] + part[:, 1]
    return margin


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modal-from", default=None, metavar="DIR", help="a site-packages holding modAL-python, searched after this venv's")
    args = ap.parse_args(argv)
    if args.modal_from:
        sys.path.append(args.modal_from)
    try:
        import importlib.metadata as md

        from modAL import __name__ as _modal  # noqa: F401
        from modAL.uncertainty import classifier_margin as margin_fn

        impl = f"modAL-python {md.version('modAL-python')} modAL.uncertainty.classifier_margin + numpy argsort"
    except ImportError:
        margin_fn = classifier_margin
        impl = "re-implementation of modAL 0.4.2 classifier_margin (predict_proba, partition, top-2 difference) + numpy argsort"
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = np.load(args.data)
    X, X_train, y_train = d["X"], d["X_train"], d["y_train"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X_train, y_train)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        m = margin_fn(model, X)
        order = np.argsort(m)  # smallest margin first = most uncertain first
        times.append(time.perf_counter() - t0)
    import sklearn

    print(json.dumps({"seconds": min(times), "all_seconds": times, "n": len(X), "impl": impl, "sklearn": sklearn.__version__,
                      "numpy": np.__version__, "first": int(order[0]), "modal_from": args.modal_from}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
