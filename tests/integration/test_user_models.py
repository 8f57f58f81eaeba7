"""Your estimator and your model on the distributed stack (real Kafka, real Redis, the services as processes).

A retrainer fitting ``HistGradientBoostingClassifier`` (``ACTIVESTREAM_ESTIMATOR``) publishes
versions the scorer serves; ``publish-model`` puts a skl2onnx random forest live; the retrainer
holds (its log, ``/healthz``, its metric) and publishes nothing over it until ``--resume``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from activestream.devstack.redis_server import free_port
from activestream.labeling.service import LabelService
from activestream.scorer.model import OnnxClassifier
from activestream.scorer.uncertainty import margin
from tests.integration.test_distributed import Stack, healthz, metric_value, read_models, wait_for, write_items_csv

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

HGB = "sklearn.ensemble:HistGradientBoostingClassifier"


def random_forest_onnx(X: np.ndarray, y: np.ndarray) -> bytes:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=40, random_state=0).fit(X, y)
    return to_onnx(rf, X[:1].astype(np.float32), options={id(rf): {"zipmap": False}}).SerializeToString()  # type: ignore[no-any-return]


def label(labeling: LabelService, y: np.ndarray, n: int) -> None:
    done = 0
    while done < n:
        leased = labeling.lease(min(50, n - done), "ann")
        assert leased, "the queue ran dry"
        for e in leased:
            assert labeling.submit(e.id, labeler_id="ann", label=int(y[int(e.id[1:])]), label_id=f"L-{e.id}")
        done += len(leased)


def test_an_estimator_retrains_then_a_published_user_model_holds_until_resume(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, kafka_bus_factory: Callable[..., object]
) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype(np.float32), d.target
    # One OpenMP thread: the test machine's cores are shared (a pool of spinning threads per fit was 10x slower).
    stack = Stack(kafka_bootstrap, redis_url, tmp_path, ACTIVESTREAM_ESTIMATOR=HGB, OMP_NUM_THREADS="1",
                  ACTIVESTREAM_RETRAIN_EVERY="100", ACTIVESTREAM_HOLDOUT_FRACTION="0.15")
    try:
        csv = tmp_path / "items.csv"
        write_items_csv(csv, X[:700], y[:700], [f"d{i}" for i in range(700)])
        stack.start("scorer", "--batch-size", "100")
        port = free_port()
        retrainer = stack.start("retrainer", "--metrics-port", str(port))
        assert "produced 700 items" in stack.run("produce", str(csv), "--exclude", "label", "--no-progress")
        wait_for(lambda: stack.queue.depth() == 700, 120, what="700 items in the queue")

        # 1. The retrainer fits the estimator on labels and the scorer serves its versions.
        bus = kafka_bus_factory(stack.prefix)
        labeling = LabelService(stack.queue, bus, stack.topics)  # type: ignore[arg-type]
        label(labeling, y, 200)
        wait_for(lambda: any(m.n_labels == 200 for m in read_models(bus, stack.topics)), 180, what="a version trained on 200 labels")
        own = max(read_models(bus, stack.topics), key=lambda m: m.version)
        assert own.source == "retrainer" and own.onnx is not None
        assert "TreeEnsembleClassifier" in {n.op_type for n in onnx.load_from_string(own.onnx).graph.node}  # the estimator, not the heads
        wait_for(lambda: stack.queue.get_meta("model_version") == str(own.version), 60, what=f"scorer on v{own.version}")

        # 2. publish-model refuses a model of the wrong width, in one line naming the field.
        narrow = tmp_path / "narrow.onnx"
        narrow.write_bytes(random_forest_onnx(X[1000:, :10], y[1000:]))
        out = subprocess.run([sys.executable, "-m", "activestream.cli", "publish-model", str(narrow)], env=stack.env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stderr.strip() == (f"error: {narrow}: field 'inputs': the model takes 10 features; namespace {stack.namespace!r} "
                                      "holds 64 (activestream queue info: n_features)")

        # ... and classes the campaign did not declare (declared by another service: recorded with the queue).
        stack.queue.record_declared_classes(tuple(range(10)))
        wrong = subprocess.run([sys.executable, "-m", "activestream.cli", "publish-model", str(narrow), "--classes", *map(str, range(9)), "11"],
                               env=stack.env, capture_output=True, text=True, timeout=120)
        assert wrong.returncode == 2 and "11 is not one of this campaign's classes (0, 1, 2" in wrong.stderr, wrong.stdout + wrong.stderr

        # 3. A skl2onnx random forest (trained on rows the stream never had) goes live as a user version.
        rf_path = tmp_path / "rf.onnx"
        rf_path.write_bytes(random_forest_onnx(X[1000:], y[1000:]))
        # (its classes given in another order than its own output columns: each column would be read as another class)
        flipped = subprocess.run([sys.executable, "-m", "activestream.cli", "publish-model", str(rf_path), "--classes", *map(str, range(9, -1, -1))],
                                 env=stack.env, capture_output=True, text=True, timeout=120)
        assert flipped.returncode == 2 and "the model's output columns are 0, 1, 2, 3" in flipped.stderr, flipped.stdout + flipped.stderr
        out = stack.run("publish-model", str(rf_path))
        user_version = own.version + 1
        assert f"as model v{user_version} (source: user; 10 classes, 64 features" in out and "held-out accuracy" in out, out
        wait_for(lambda: stack.queue.get_meta("model_version") == str(user_version), 60, what=f"scorer on the user's v{user_version}")
        record = json.loads(stack.queue.get_meta("campaign") or "{}")  # (GET /campaign: the campaign's figures stay, said to be v{own}'s)
        assert record["version"] == user_version and record["figures_of"] == own.version and record["source"] == "user", record
        rf = OnnxClassifier(rf_path.read_bytes())

        def ranked_by_the_forest() -> bool:
            ranking = stack.queue.ranking()
            expected = margin(rf.predict_proba_many(X[[int(i[1:]) for i, _ in ranking]]))
            return bool(np.allclose([s for _, s in ranking], expected, atol=1e-5))

        wait_for(ranked_by_the_forest, 60, what="the queue re-ranked by the user's forest")

        # 4. The retrainer holds: log, /healthz, metric; more labels than retrain_every publish nothing.
        wait_for(lambda: healthz(port).get("holding_user_version") == user_version, 60, what="/healthz holding_user_version")
        assert metric_value(port, "activestream_retrainer_holding_user_version") == user_version
        assert metric_value(port, "activestream_retrainer_model_version") == user_version
        log = next(tmp_path.glob("retrainer-*.log")).read_text()
        assert f"user model v{user_version} is live: holding" in log and "activestream retrainer --resume" in log
        label(labeling, y, 120)
        wait_for(lambda: healthz(port).get("training_set") == 320, 60, what="the retrainer kept the 120 new labels")
        time.sleep(5)  # a retrain interval (1 s) and more: nothing is published over the user's version
        assert max(m.version for m in read_models(bus, stack.topics)) == user_version
        assert stack.queue.get_meta("model_version") == str(user_version)

        # 5. --resume: the retrainer's versions go on above the user's, and the scorer serves them.
        retrainer.send_signal(signal.SIGTERM)
        assert retrainer.wait(60) == 0
        # (Tolerance 1: the gate would compare the boosting on 270 labels with the forest on 797 rows.)
        stack.start("retrainer", "--resume", name="resumed", ACTIVESTREAM_TOLERANCE="1")
        wait_for(lambda: any(m.version == user_version + 1 for m in read_models(bus, stack.topics)), 180, what="a version after --resume")
        resumed = max(read_models(bus, stack.topics), key=lambda m: m.version)
        assert resumed.version == user_version + 1 and resumed.source == "retrainer" and resumed.n_labels == 320
        wait_for(lambda: stack.queue.get_meta("model_version") == str(resumed.version), 60, what="scorer on the resumed version")
        labeling.close()
    except AssertionError:
        print(stack.logs())
        raise
    finally:
        stack.stop()
