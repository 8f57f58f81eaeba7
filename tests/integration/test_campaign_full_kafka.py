"""Issue 19's acceptance campaign in one flow on real Kafka and Redis, through the CLI and the labeler HTTP API only.

Import 100 random-sample baseline labels, produce 5,000 items (the last 1,000 once a version with an
auto-accept threshold is live), a simulated labeler labels 400 more over ``POST /labels`` while the
retrainer fits ``HistGradientBoostingClassifier`` (``--estimator``);
``publish-model`` puts a skl2onnx random forest live (the retrainer holds, and still after a restart:
nothing overwrites it), ``export`` gives exactly 500 human and baseline rows plus
one per auto-accepted item, with metadata, matching the topics; ``--resume`` then lets the retrainer
publish over the user's version.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_classification

from activestream.devstack.redis_server import free_port
from activestream.rankedqueue.auto_accept import audit_pending
from tests.integration.test_campaign_kafka import answering, http, topic_labels
from tests.integration.test_distributed import Stack, healthz, read_models, wait_for
from tests.integration.test_user_models import HGB, random_forest_onnx

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

N_ITEMS, N_BASELINE, N_HUMAN, N_FEATURES = 5000, 100, 400, 12
N_LATER = 1000  # of the 5,000 items, produced once a calibrated version is live: some are auto-accepted
N_RF = 1000  # rows the stream never has, to train the user's forest on


def test_campaign_import_estimator_publish_hold_export_resume(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, kafka_bus_factory: Callable[..., object]
) -> None:
    X, y = make_classification(n_samples=N_ITEMS + N_RF, n_features=N_FEATURES, n_informative=8, n_classes=3, n_clusters_per_class=1, class_sep=6.0, flip_y=0.0,
                               random_state=0)
    X = X.astype(np.float32)
    ids = [f"doc{i}" for i in range(N_ITEMS)]
    names = [f"x{j}" for j in range(N_FEATURES)]

    def write_items(path: Path, rows: range) -> Path:
        path.write_text("".join(json.dumps({"id": ids[i], "features": [float(v) for v in X[i]], "metadata": {"text": f"text of {ids[i]}"}}) + "\n"
                                for i in rows))
        return path

    rng = np.random.default_rng(0)
    # (drawn from the items produced first: the later ones arrive unlabeled, to be queued or auto-accepted)
    sample = sorted(rng.choice(N_ITEMS - N_LATER, N_BASELINE, replace=False).tolist())
    baseline = tmp_path / "baseline.csv"
    baseline.write_text("id," + ",".join(names) + ",label,text\n" + "".join(
        f"{ids[i]}," + ",".join(f"{v:.9g}" for v in X[i]) + f",{int(y[i])},text of {ids[i]}\n" for i in sample))

    # One OpenMP thread for the boosting: the machine's cores are shared (as test_user_models).
    stack = Stack(kafka_bootstrap, redis_url, tmp_path, OMP_NUM_THREADS="1", ACTIVESTREAM_RETRAIN_EVERY="50",
                  ACTIVESTREAM_HOLDOUT_FRACTION="0.15")
    port, metrics_port = free_port(), free_port()
    t0 = time.monotonic()
    try:
        # Auto-accept off while the labelers give their 400 labels: on this easy data (class_sep 6) a calibrated
        # version's re-rank moves nearly every pending item to the auto-labels (3,542 of ~4,000 at v5 in one run),
        # and the labelers' queue runs dry. The scorer restarts with it on before the later items.
        scorer = stack.start("scorer", "--batch-size", "500", ACTIVESTREAM_AUTO_ACCEPT="0")
        retrainer = stack.start("retrainer", "--estimator", HGB, "--metrics-port", str(metrics_port))
        # Every lease a random-control pick: auto-accept's 0.99 precision bound needs about 300 control labels, each
        # scored by the live model before it trains on it (Clopper-Pearson: 0.05 ** (1 / 299) = 0.99).
        stack.start("labeler-api", "--port", str(port), ACTIVESTREAM_EXPLORE="1")
        out = stack.run("import-labels", str(baseline), "--label-column", "label", "--random-sample")
        assert f"imported {N_BASELINE} label(s)" in out and f"{N_BASELINE} new item(s) produced" in out, out
        n_first = N_ITEMS - N_LATER
        assert f"produced {n_first} items" in stack.run("produce", str(write_items(tmp_path / "items.jsonl", range(n_first))), "--no-progress")
        wait_for(lambda: stack.queue.depth() == n_first - N_BASELINE, 120, what=f"{n_first - N_BASELINE} items in the queue")
        wait_for(lambda: answering(port), 60, what="the labeler API")

        def label_over_http(n: int, first: int) -> None:
            done = 0
            while done < n:
                if first + done == 50:  # (a labeler this fast could finish before any model ranked the queue)
                    wait_for(lambda: stack.queue.ranked_version() >= 1, 120, what="a model ranking the queue")
                leased = http(port, "GET", f"/lease?k={min(10, n - done)}&labeler=sim")["items"]  # (no lease left over)
                assert leased, "the queue ran dry"
                for entry in leased:
                    assert http(port, "POST", "/labels", {"item_id": entry["id"], "label": int(y[int(entry["id"][3:])]),
                                                          "labeler_id": "sim", "seconds": 3})["accepted"]
                    done += 1

        # 1. The retrainer fits the user's estimator on baseline + human labels; the scorer serves it.
        label_over_http(N_HUMAN, 0)
        bus = kafka_bus_factory(prefix=stack.prefix)
        wait_for(lambda: any(m.n_labels == N_BASELINE + N_HUMAN for m in read_models(bus, stack.topics)), 180,
                 what=f"a version trained on {N_BASELINE + N_HUMAN} labels")
        own = max(read_models(bus, stack.topics), key=lambda m: m.version)
        assert own.source == "retrainer" and own.onnx is not None
        wait_for(lambda: stack.queue.get_meta("model_version") == str(own.version), 60, what=f"scorer on v{own.version}")
        threshold = {k: v for k, v in own.metrics.items() if k.startswith("auto_accept_threshold")}  # (the pooled one, or per class)
        print(f"v{own.version}: {own.metrics.get('n_control')} control labels, auto-accept thresholds {threshold}")
        assert threshold, json.dumps(own.metrics)

        # The rest of the 5,000 items, while the calibrated version is live: each is queued or auto-accepted.
        scorer.send_signal(signal.SIGTERM)
        assert scorer.wait(60) == 0
        stack.start("scorer", "--batch-size", "500", name="scorer-auto")  # (the queue is ranked by the live version: no re-rank)
        def placed() -> int:  # items queued or auto-labeled, each once (a waiting audit item is both)
            autos = {lab.item_id for lab in topic_labels(bus, stack.topics.auto_labels)}
            return stack.queue.depth() + len(autos) - len(audit_pending(stack.queue, 10**9))

        before = placed()
        assert f"produced {N_LATER} items" in stack.run("produce", str(write_items(tmp_path / "later.jsonl", range(n_first, N_ITEMS))),
                                                       "--no-progress")
        wait_for(lambda: placed() == before + N_LATER, 120,
                 what="the later items queued or auto-accepted")

        # 2. publish-model: a skl2onnx random forest goes live as a user version.
        rf_path = tmp_path / "rf.onnx"
        rf_path.write_bytes(random_forest_onnx(X[N_ITEMS:], y[N_ITEMS:]))
        user_version = own.version + 1
        out = stack.run("publish-model", str(rf_path))
        assert f"as model v{user_version} (source: user; 3 classes, {N_FEATURES} features" in out, out
        print(out.strip())
        wait_for(lambda: stack.queue.get_meta("model_version") == str(user_version), 60, what=f"scorer on the user's v{user_version}")

        # 3. The retrainer holds (its log, /healthz), and a restart without --resume (the overwrite) publishes nothing over it.
        wait_for(lambda: healthz(metrics_port).get("holding_user_version") == user_version, 60, what="/healthz holding_user_version")
        log = next(tmp_path.glob("retrainer-*.log")).read_text()
        assert f"user model v{user_version} is live: holding" in log and "activestream retrainer --resume" in log
        retrainer.send_signal(signal.SIGTERM)
        assert retrainer.wait(60) == 0
        metrics_port = free_port()
        retrainer = stack.start("retrainer", "--estimator", HGB, "--metrics-port", str(metrics_port), name="restarted")
        wait_for(lambda: healthz(metrics_port).get("holding_user_version") == user_version, 90, what="the restarted retrainer holding")
        wait_for(lambda: healthz(metrics_port).get("training_set") == N_BASELINE + N_HUMAN, 60, what="the restarted retrainer's labels")
        time.sleep(5)  # retrain intervals (1 s) and more: still nothing over the user's version
        assert max(m.version for m in read_models(bus, stack.topics)) == user_version
        assert stack.queue.get_meta("model_version") == str(user_version)
        assert f"user model v{user_version} is live: holding" in next(tmp_path.glob("restarted-*.log")).read_text()

        # 4. export: exactly 500 human and baseline rows plus one per auto-accepted item, with metadata, as on the topics.
        labels = topic_labels(bus, stack.topics.labels)
        autos = topic_labels(bus, stack.topics.auto_labels)
        assert len(labels) == N_BASELINE + N_HUMAN
        assert sum(lab.source == "baseline" and lab.control for lab in labels) == N_BASELINE
        out_file = tmp_path / "labeled.parquet"
        printed = stack.run("export", "--out", str(out_file))
        rows = pq.read_table(out_file).to_pylist()
        n_auto = len({lab.item_id for lab in autos})
        expected_ids = {lab.item_id for lab in labels} | {lab.item_id for lab in autos}
        assert {r["item_id"] for r in rows} == expected_ids and len(rows) == len(expected_ids) == N_BASELINE + N_HUMAN + n_auto
        assert f"exported {len(rows)} item(s)" in printed
        by_source = {s: sum(r["source"] == s for r in rows) for s in ("baseline", "human", "auto")}
        assert by_source == {"baseline": N_BASELINE, "human": N_HUMAN, "auto": n_auto}, by_source
        for r in rows:
            assert r["text"] == f"text of {r['item_id']}"  # the item's metadata
            if r["source"] != "auto":
                assert r["label"] == int(y[int(r["item_id"][3:])])
        assert n_auto > 0 and all(r["model_version"] == own.version for r in rows if r["source"] == "auto")
        human = [r for r in rows if r["source"] == "human"]
        assert all(r["labeler_ids"] == ["sim"] and r["seconds"] == 3.0 for r in human)
        assert sum(r["control"] for r in human) == N_HUMAN - sum(r["model_version"] is None for r in human)  # all control picks once ranked
        precision = np.mean([r["label"] == int(y[int(r["item_id"][3:])]) for r in rows if r["source"] == "auto"])
        assert precision >= 0.95
        print(f"exported {len(rows)} rows: {by_source}; auto-accepted at thresholds {threshold}, realized precision {precision:.3f}")

        # 5. --resume: the retrainer's versions go on above the user's; the scorer serves them.
        retrainer.send_signal(signal.SIGTERM)
        assert retrainer.wait(60) == 0
        # (Tolerance 1: the gate would compare the boosting on the campaign's labels with the forest on 1,000 other rows.)
        stack.start("retrainer", "--resume", "--estimator", HGB, name="resumed", ACTIVESTREAM_TOLERANCE="1")
        wait_for(lambda: any(m.version == user_version + 1 for m in read_models(bus, stack.topics)), 180, what="a version after --resume")
        resumed = max(read_models(bus, stack.topics), key=lambda m: m.version)
        assert resumed.version == user_version + 1 and resumed.source == "retrainer" and resumed.n_labels == N_BASELINE + N_HUMAN
        wait_for(lambda: stack.queue.get_meta("model_version") == str(resumed.version), 60, what="scorer on the resumed version")
        print(f"campaign flow took {time.monotonic() - t0:.1f} s")
    except AssertionError:
        print(stack.logs())
        raise
    finally:
        stack.stop()
