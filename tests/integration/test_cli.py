"""``activestream simulate`` and ``demo`` end to end (real redis-server, real services in-process)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification

from activestream.cli import main
from activestream.scorer.strategies import DEFAULT_STRATEGY

pytestmark = pytest.mark.integration


def write_csv(path: Path, X: np.ndarray, cols: dict[str, np.ndarray]) -> None:
    header = [f"f{j}" for j in range(X.shape[1])] + list(cols)
    lines = [",".join(header)]
    for i, row in enumerate(X):
        lines.append(",".join([f"{v:.6g}" for v in row] + [str(c[i]) for c in cols.values()]))
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def run(args: list[str], redis_url: str, tmp_path: Path) -> dict:
    report = tmp_path / "report.json"
    code = main([*args, "--report", str(report), "--redis-url", redis_url, "--no-progress", "--workers", "1"])
    assert code == 0
    assert report.with_suffix(".png").stat().st_size > 1000
    return json.loads(report.read_text())


def test_simulate_cold_start_on_a_7_percent_minority(tmp_path: Path, redis_url: str) -> None:
    X, y = make_classification(n_samples=600, n_features=8, weights=[0.93], random_state=0)
    path = tmp_path / "rare.csv.gz"
    write_csv(path, X, {"target": np.where(y == 1, "rare", "common"), "id": np.array([f"X{i}" for i in range(len(X))])})
    rep = run(["simulate", "--data", str(path), "--label-column", "target", "--budget", "60", "--batch", "10", "--init", "5", "--seeds", "2",
               "--export-labels", str(tmp_path / "labeled")], redis_url, tmp_path)
    # Each embedded campaign's labeled dataset, as `activestream export` writes it: its 60 labels, one row per item.
    exported = sorted(p.name for p in (tmp_path / "labeled").iterdir())
    assert exported == sorted(f"{s.replace('+', '_')}-seed{seed}.parquet" for s in (DEFAULT_STRATEGY, "random") for seed in (0, 1))
    for name in exported:
        rows = pq.read_table(tmp_path / "labeled" / name).to_pylist()
        assert sum(r["source"] == "simulated" for r in rows) == 60 and len({r["item_id"] for r in rows}) == len(rows)
        assert all(r["label"] in ("rare", "common") and r["labeler_ids"] == ["simulated-labeler"] for r in rows)
        truth = dict(zip([f"X{i}" for i in range(len(X))], np.where(y == 1, "rare", "common"), strict=True))
        assert all(truth[r["item_id"]] == r["label"] for r in rows)  # (the file's ids: it joins back to the data)
    assert rep["dataset"] == "rare.csv.gz" and rep["metric"] == "accuracy" and 0.8 < rep["full_data_score"] <= 1.0
    for name in (DEFAULT_STRATEGY, "random"):
        entry = rep["strategies"][name]
        assert [x for x, _ in entry["curve"]] == [5, 15, 25, 35, 45, 55, 60]
        assert len(entry["per_seed"]) == 2
        assert {"labels_to_target", "auc", "final_score"} <= set(entry)
        assert all(0.0 <= s <= 1.0 for _, s in entry["curve"])
    rec = rep["recommendation"]  # one arm to deploy: the best, or the default when the lead is within the seeds' noise
    assert rec["deploy"] == (rec["best"] if rec["significant"] else DEFAULT_STRATEGY)
    assert {rec["best"], rec["runner_up"]} == {DEFAULT_STRATEGY, "random"} and rec["lead"] is not None


def test_simulate_multilabel_by_prefix_from_parquet(tmp_path: Path, redis_url: str) -> None:
    X, Y = make_multilabel_classification(n_samples=400, n_features=10, n_classes=4, random_state=0)
    cols = {f"f{j}": X[:, j] for j in range(10)} | {f"tag_{k}": Y[:, k] for k in range(4)}
    path = tmp_path / "ml.parquet"
    pq.write_table(pa.table(cols), path)
    rep = run(["simulate", "--data", str(path), "--label-column", "tag_", "--budget", "50", "--seeds", "1", "--metric", "macro_f1"],
              redis_url, tmp_path)
    assert rep["task"] == "multilabel" and rep["metric"] == "macro_f1"
    assert rep["strategies"][DEFAULT_STRATEGY]["final_score"] > 0.3


def test_simulate_npz_with_explicit_strategies(tmp_path: Path, redis_url: str) -> None:
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=1)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    rep = run(["simulate", "--data", str(path), "--label-column", "y", "--budget", "40", "--seeds", "1",
               "--strategy", "entropy", "--strategy", "least_confidence", "--strategy", "margin+density", "--strategy", "margin+falcun", "--strategy", "random"], redis_url, tmp_path)
    assert set(rep["strategies"]) == {"entropy", "least_confidence", "margin+density", "margin+falcun", "random"}
    assert set(rep["comparison"]) == {"entropy", "least_confidence", "margin+density", "margin+falcun"}
    # one seed: no lead can be told from noise; the default is not among the arms, so the best is kept
    assert rep["recommendation"]["lead"] is None and not rep["recommendation"]["significant"]


def test_simulate_reports_bad_files_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    assert main(["simulate", "--data", str(path), "--label-column", "label"]) == 2
    assert "--label-column 'label': no such column (columns: a, b)" in capsys.readouterr().err
    assert main(["simulate", "--data", str(tmp_path / "missing.csv"), "--label-column", "y"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_simulate_refuses_bad_files_and_options_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,label\n1,2,x\n3\n")
    assert main(["simulate", "--data", str(ragged), "--label-column", "label"]) == 2
    assert "ragged.csv: line 3: 1 fields where the header has 3" in capsys.readouterr().err
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    npz = tmp_path / "bad.npz"
    np.savez(npz, X=X, y=np.where(y == 1, np.nan, 0.0))  # (every row of one class unlabeled: one class left)
    assert main(["simulate", "--data", str(npz), "--label-column", "y"]) == 2
    assert "the label column holds a single class" in capsys.readouterr().err
    np.savez(npz, X=X, y=np.full(len(y), np.nan))
    assert main(["simulate", "--data", str(npz), "--label-column", "y"]) == 2
    assert "'y': no row has a label" in capsys.readouterr().err
    np.savez(npz, X=X > 0, y=np.column_stack([y, 1 - y]).astype(bool))  # booleans are 0/1
    from activestream.simulation.datasets import load

    assert load(npz, ["y"]).task == "multilabel"
    np.savez(npz, X=X, y=np.column_stack([y, 2 * y]))
    assert main(["simulate", "--data", str(npz), "--label-column", "y"]) == 2
    assert "only 0/1" in capsys.readouterr().err
    good = tmp_path / "good.csv"
    write_csv(good, X, {"label": y})
    assert main(["simulate", "--data", str(good), "--label-column", "label", "--report", str(good / "r.json")]) == 2
    assert "--report" in capsys.readouterr().err
    for bad in (["--seeds", "0"], ["--seconds-per-label", "-1"], ["--explore", "1.5"], ["--test-size", "0"], ["--test-size", "1"]):
        with pytest.raises(SystemExit):
            main(["simulate", "--data", str(good), "--label-column", "label", *bad])
        assert bad[0] in capsys.readouterr().err


def test_simulate_leaves_the_id_column_out_of_the_features(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    X, y = make_classification(n_samples=200, n_features=5, flip_y=0.3, random_state=0)
    order = np.argsort(y, kind="stable")  # rows sorted by class: a row id would give the label away
    path = tmp_path / "sorted.csv"
    write_csv(path, X[order], {"id": np.arange(200), "label": y[order], "note_id": np.arange(200)})
    run(["simulate", "--data", str(path), "--label-column", "label", "--exclude", "note_id", "--budget", "30", "--seeds", "1"], redis_url, tmp_path)
    assert "200 items, 5 features" in capsys.readouterr().out


def test_demo_small(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(["demo", "--budget", "60", "--seeds", "1"], redis_url, tmp_path)
    out = capsys.readouterr().out
    assert "Learning curve" in out and "label savings" in out
    assert rep["dataset"] == "sklearn digits" and DEFAULT_STRATEGY in rep["comparison"]
    # Auto-accept as the deployed system would apply it (the precision's 95% lower bound must reach 0.99: at
    # least 299 control labels, none in 60 labels, and it says how many more), and apart from it the estimate
    # from all labeled items, per seed, under the same rule.
    aa = rep["strategies"][DEFAULT_STRATEGY]["auto_accept"]
    assert aa["deployed"]["thresholds"] == [None] and aa["deployed"]["share"] == 0.0 and aa["deployed"]["n_control"][0] < 100
    assert 299 - aa["deployed"]["n_control"][0] <= aa["deployed"]["labels_needed"][0] <= 299  # (all right: exactly 299 - n)
    assert f"at least {aa['deployed']['labels_needed'][0]} more needed" in out
    assert len(aa["shares"]) == 1 and "as deployed: 0.0%" in out and "estimated from all labeled items" in out
    # The budget is a stop rule too: some rule fired by the end of every campaign, and the summary says which.
    (stop,) = rep["strategies"][DEFAULT_STRATEGY]["stop_rules"]
    assert stop["should_stop"] and stop["fired"]["budget"]["n_labels"] == 60 and "stop rule that fired first, per seed:" in out
    # The live estimates of the last version are computed (60 labels: too few for any, and it says how many more).
    assert "Live estimates: not computed" not in out and "Live estimates of random" not in out
    assert f"Live estimates of {DEFAULT_STRATEGY} (seed 0): none, too few random-control labels (" in out
    assert "est_control_labels_needed" in rep["strategies"][DEFAULT_STRATEGY]["estimates"]["per_seed"][0][-1]


def test_a_budget_beyond_the_pool_is_said_to_be_capped(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    path = tmp_path / "small.csv"
    write_csv(path, X, {"label": y})
    rep = run(["simulate", "--data", str(path), "--label-column", "label", "--budget", "200", "--seeds", "1"], redis_url, tmp_path)
    out = capsys.readouterr().out
    assert "the unlabeled pool ran out at 56 labels, below the budget of 200" in out  # 80 items, 30% held out
    assert "auto-accept: n/a (no item was left unlabeled)" in out
    assert rep["strategies"][DEFAULT_STRATEGY]["curve"][-1][0] == 56


def test_demo_on_a_budget_smaller_than_the_calibration_folds(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(["demo", "--budget", "4", "--init", "4", "--seeds", "1"], redis_url, tmp_path)  # 4 labels, 5 folds
    assert "no threshold reached the target" in capsys.readouterr().out
    assert rep["strategies"][DEFAULT_STRATEGY]["auto_accept"]["share"] == 0.0


def test_label_refuses_options_that_would_make_every_label_a_dead_letter(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (["--seconds-per-label", "-1"], ["--seconds-per-label", "nan"], ["--max-items", "-3"]):
        with pytest.raises(SystemExit):
            main(["label", *bad])
        assert bad[0] in capsys.readouterr().err


def test_rows_without_a_label_are_left_out_not_made_a_class(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # (a campaign's file often holds rows still to label: simulate replays the labeled ones, saying how many it left out)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from activestream.simulation.datasets import DatasetError, load

    X, y = make_classification(n_samples=60, n_features=3, n_informative=2, n_redundant=0, random_state=0)
    labels = np.where(y == 1, "cat", "dog").astype(object)
    labels[[3, 7, 11]] = ""  # blank cells
    csv = tmp_path / "blank.csv"
    write_csv(csv, X, {"label": labels})
    ds = load(csv, ["label"])
    assert len(ds.X) == 57 and ds.classes == ("cat", "dog")
    assert np.allclose(ds.X, np.delete(X, [3, 7, 11], axis=0).astype(np.float32))
    assert "blank.csv: 3 row(s) without a label left out (first: row 4)" in caplog.text
    labels[[3, 7, 11]] = "NA"
    write_csv(csv, X, {"label": labels})
    assert load(csv, ["label"]).classes == ("cat", "dog") and len(load(csv, ["label"]).X) == 57
    # A categorical Parquet column: to_numpy() would fill its nulls with a class.
    cats = pa.array(["a", "b", None] * 20).dictionary_encode()
    pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "label": cats}), tmp_path / "cat.parquet")
    ds = load(tmp_path / "cat.parquet", ["label"])
    assert len(ds.X) == 40 and ds.classes == ("a", "b")
    pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "label": ["a", "b", " "] * 20}), tmp_path / "blank.parquet")
    ds = load(tmp_path / "blank.parquet", ["label"])  # (a blank string, as Parquet keeps an empty cell: no class named "")
    assert len(ds.X) == 40 and ds.classes == ("a", "b")
    cats = pa.array(["a", "b", ""] * 20).dictionary_encode()  # (a pandas categorical with a blank)
    pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "label": cats}), tmp_path / "blankcat.parquet")
    assert load(tmp_path / "blankcat.parquet", ["label"]).classes == ("a", "b")
    pq.write_table(pa.table({"f0": X[:, 0], "label": pa.array([None] * 60, pa.string())}), tmp_path / "none.parquet")
    with pytest.raises(DatasetError, match=r"column\(s\) 'label': no row has a label"):
        load(tmp_path / "none.parquet", ["label"])
    labels[[3, 7, 11]] = "cat"
    write_csv(csv, X, {"label": labels})
    assert load(csv, ["label"]).classes == ("cat", "dog")


def test_queue_info_and_clear(redis_url: str, namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    from activestream.rankedqueue import QueueKeys, RankedQueue

    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    queue.add(["a", "b", "c"], np.array([0.9, 0.5, 0.1]), np.eye(3, dtype=np.float32))
    queue.add(["odd"], np.array([0.2]), np.ones((1, 5), dtype=np.float32))  # another width, e.g. another n_features setting
    queue.ensure_n_features(3)
    queue.claim(["a"], "ann", ttl=60)
    queue.set_meta(model_version=2, classes=json.dumps(["x", "y"]), task="multiclass")
    assert main(["queue", "info", "--redis-url", redis_url, "--namespace", namespace]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {k: info[k] for k in ("namespace", "pending", "leased", "labeled", "n_features", "stored_widths", "model_version", "classes",
                                 "declared_classes")} == {
        "namespace": namespace, "pending": 3, "leased": 1, "labeled": 0, "n_features": 3, "stored_widths": [3, 5], "model_version": 2,
        "classes": ["x", "y"], "declared_classes": []}
    queue.record_declared_classes(["x", "y", "z"])
    assert main(["queue", "info", "--redis-url", redis_url, "--namespace", namespace]) == 0
    assert json.loads(capsys.readouterr().out)["declared_classes"] == ["x", "y", "z"]
    assert main(["queue", "clear", "--redis-url", redis_url, "--namespace", namespace]) == 2  # not without --yes
    assert "add --yes" in capsys.readouterr().err and queue.depth() == 3
    assert main(["queue", "clear", "--yes", "--redis-url", redis_url, "--namespace", namespace]) == 0
    assert "3 pending, 1 leased" in capsys.readouterr().out
    assert queue.depth() == 0 and queue.get_meta("n_features") is None and queue.stored_widths() == []


def test_simulate_runs_each_estimator_and_reports_each(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    X, y = make_classification(n_samples=400, n_features=8, n_informative=5, n_classes=3, random_state=0)
    path = tmp_path / "three.csv"
    write_csv(path, X, {"label": y})
    report = tmp_path / "report.json"
    code = main(["simulate", "--data", str(path), "--label-column", "label", "--budget", "60", "--seeds", "1", "--estimator", "MLPClassifier",
                 "--estimator", "sklearn.ensemble:RandomForestClassifier", "--report", str(report), "--redis-url", redis_url,
                 "--no-progress", "--workers", "1"])
    assert code == 0
    rep = json.loads(report.read_text())
    assert rep["estimators"] == ["MLPClassifier", "sklearn.ensemble:RandomForestClassifier"]
    for spec, sub in rep["by_estimator"].items():
        assert sub["config"]["estimator"] == spec
        assert set(sub["strategies"]) == {DEFAULT_STRATEGY, "random"} and sub["strategies"][DEFAULT_STRATEGY]["curve"][-1][0] == 60
        assert report.with_suffix(f".{spec.rpartition(':')[2]}.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "=== estimator MLPClassifier" in out and "=== estimator sklearn.ensemble:RandomForestClassifier" in out
    # The recommendation compares the four strategy x estimator arms; one seed cannot show a lead: the default arm stays.
    rec = rep["recommendation"]
    arms = {f"{s} @ {e}" for s in (DEFAULT_STRATEGY, "random") for e in ("MLPClassifier", "RandomForestClassifier")}
    assert {rec["best"], rec["runner_up"]} <= arms and rec["deploy"] == f"{DEFAULT_STRATEGY} @ MLPClassifier" and not rec["significant"]
    assert rec["line"] in out


def test_simulate_refuses_an_estimator_it_cannot_load_or_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    path = tmp_path / "d.csv"
    write_csv(path, X, {"label": y})
    base = ["simulate", "--data", str(path), "--label-column", "label", "--report", str(tmp_path / "r.json")]
    assert main([*base, "--estimator", "sklearn.nope:Thing"]) == 2
    assert capsys.readouterr().err.strip() == "error: estimator 'sklearn.nope:Thing': cannot import 'sklearn.nope': No module named 'sklearn.nope'"
    assert main([*base, "--estimator", "RandomForestClassifier", "--strategy", "bald"]) == 2
    assert "--strategy bald scores a committee of heads; --estimator RandomForestClassifier is one model" in capsys.readouterr().err


def test_simulate_a_stream_through_a_capped_pool(tmp_path: Path, redis_url: str) -> None:
    X, y = make_classification(n_samples=600, n_features=8, random_state=1)
    path = tmp_path / "stream.csv"
    write_csv(path, X, {"y": y})
    rep = run(["simulate", "--data", str(path), "--label-column", "y", "--budget", "40", "--seeds", "1", "--strategy", "margin",
               "--stream", "--pool-capacity", "40", "--target", "0.99"], redis_url, tmp_path)
    assert rep["config"]["stream"] is True and rep["config"]["pool_capacity"] == 40
    assert rep["target"] == pytest.approx(0.99 * rep["full_data_score"])  # the benchmarks' target, not the 95% default
    entry = rep["strategies"]["margin"]
    assert [x for x, _ in entry["curve"]] == [20, 30, 40]  # every round found items to label in the capped pool
    assert all(0.5 <= s <= 1.0 for _, s in entry["curve"])
