"""Validation, auto-accept calibration, report maths, training set, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activestream.config import Settings
from activestream.devstack.local_kafka import LIBS_ENV
from activestream.retrainer.calibration import calibrate, calibrate_threshold, labels_needed, precision_lower_bound
from activestream.retrainer.training_set import TrainingSet, in_holdout
from activestream.retrainer.validate import check_outputs, holdout_accuracy, no_regression
from activestream.schemas import Label
from activestream.scorer.autoaccept import accepted
from activestream.simulation.curves import auc, hours_saved, labels_to_target, mean_curve, savings


def test_check_outputs() -> None:
    ok = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert check_outputs(ok, 2, 2, "multiclass") is None
    assert "shape" in check_outputs(ok, 3, 2, "multiclass")
    assert "NaN" in check_outputs(np.array([[np.nan, 1.0], [0.5, 0.5]]), 2, 2, "multiclass")
    assert "sum" in check_outputs(np.array([[0.2, 0.2], [0.5, 0.5]]), 2, 2, "multiclass")
    assert check_outputs(np.array([[0.2, 0.2], [0.5, 0.9]]), 2, 2, "multilabel") is None


def test_holdout_accuracy_and_regression_gate() -> None:
    p = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    assert holdout_accuracy(p, ("a", "b"), ["a", "b", "b"], "multiclass") == pytest.approx(2 / 3)
    assert holdout_accuracy(np.array([[0.9, 0.2]]), ("x", "y"), [("x",)], "multilabel") == 1.0
    assert no_regression(0.80, 0.84, 0.05) and not no_regression(0.78, 0.84, 0.05)
    assert no_regression(float("nan"), 0.9, 0.01)


def test_the_auto_accept_threshold_keeps_a_precision_lower_bound() -> None:
    # All n correct: the one-sided 95% Clopper-Pearson bound is 0.05 ** (1 / n): 59 reach 0.95
    # (exp(ln 0.05 / 59) = 0.95049), 58 do not (0.94966).
    conf = np.linspace(0.99, 0.60, 59)
    c = calibrate(conf, np.ones(59, dtype=bool), target_precision=0.95)
    assert (c.threshold, c.n_accepted, c.more_labels_needed) == (pytest.approx(0.60), 59, 0)
    assert c.lower_bound == pytest.approx(0.05 ** (1 / 59)) == pytest.approx(0.950493, abs=1e-6)
    c = calibrate(conf[:58], np.ones(58, dtype=bool), target_precision=0.95)
    assert (c.threshold, c.lower_bound, c.more_labels_needed) == (None, None, 1)
    assert calibrate_threshold(conf[:58], np.ones(58, dtype=bool), target_precision=0.95) is None
    # The campaign: 113 control labels for a 0.99 target. Even all right, their bound is
    # 0.05 ** (1 / 113) = 0.9738: no auto-accept, and it needs 299 - 113 = 186 more (ln 0.05 / ln 0.99 = 298.07).
    c = calibrate(np.linspace(0.999, 0.9, 113), np.ones(113, dtype=bool), target_precision=0.99)
    assert (c.threshold, c.more_labels_needed) == (None, 186) and labels_needed(0.99) == 299 and labels_needed(0.95) == 59
    mask = accepted(np.array([[0.98, 0.02], [0.6, 0.4]]), 0.97)
    assert mask.tolist() == [True, False]
    assert not accepted(np.array([[0.99, 0.01]]), None).any()


def test_the_bound_with_an_error_and_the_lowest_threshold_that_keeps_it() -> None:
    # k of k + 1 right: the bound x solves P(Beta(k, 2) <= x) = (k + 1) x^k - k x^(k + 1) = 0.05.
    for k, x in ((9, 0.6058367), (59, 0.9233600), (91, 0.9494736), (92, 0.9500060)):
        assert float(precision_lower_bound(np.array([k]), np.array([k + 1]))[0]) == pytest.approx(x, abs=1e-7)
    # With one error, 92 right reach 0.95 (0.950006, solving the polynomial by bisection) and 91 do not (0.949474).
    assert labels_needed(0.95, errors=1) == 92
    # 59 right on top, one wrong (59 of 60: 0.92336), then 30 right: 89 of 90 stay below 0.95: the threshold is the 59th's.
    conf = np.r_[np.linspace(0.99, 0.90, 59), 0.80, np.linspace(0.70, 0.60, 30)]
    ok = np.r_[np.ones(59, dtype=bool), False, np.ones(30, dtype=bool)]
    c = calibrate(conf, ok, target_precision=0.95)
    assert (c.threshold, c.n_accepted) == (pytest.approx(0.90), 59)
    # 33 right after the wrong one: 92 of 93 reach it, and the threshold goes below the error.
    conf2, ok2 = np.r_[conf, 0.59, 0.58, 0.57], np.r_[ok, True, True, True]
    c = calibrate(conf2, ok2, target_precision=0.95)
    assert (c.threshold, c.n_accepted, c.lower_bound) == (pytest.approx(0.57), 93, pytest.approx(0.9500060, abs=1e-7))


def test_calibrate_never_cuts_inside_a_tie() -> None:
    # The wrong item ties the 59 right ones: "confidence >= t" cannot keep the 59 without it.
    ok = np.r_[np.ones(59, dtype=bool), False]
    assert calibrate(np.full(60, 0.99), ok, target_precision=0.95).threshold is None
    assert calibrate(np.r_[np.full(59, 0.99), 0.98], ok, target_precision=0.95).threshold == 0.99


def test_report_maths() -> None:
    a = [(20, 0.5), (30, 0.8), (40, 0.9)]
    b = [(20, 0.7), (30, 0.9)]
    m = mean_curve([a, b])
    assert m == [(20, 0.6), (30, pytest.approx(0.85)), (40, pytest.approx(0.9))]
    assert labels_to_target(a, 0.8) == 30 and labels_to_target(a, 0.95) is None
    assert auc([(0, 0.0), (10, 1.0)]) == pytest.approx(0.5)
    assert savings(50, 100) == 0.5 and savings(None, 100) is None
    assert hours_saved(50, 100, 36.0) == pytest.approx(0.5)


def test_training_set_dedupes_label_ids_and_keeps_latest_label() -> None:
    ts = TrainingSet()
    f = np.zeros(2, dtype=np.float32)
    assert ts.add(Label("i", "L1", "a", label=1, features=f)) == "new"
    assert ts.add(Label("i", "L1", "a", label=1, features=f)) == "duplicate"
    assert ts.add(Label("i", "L2", "b", label=2, features=f)) == "updated"
    assert len(ts) == 1 and ts.items["i"].label == 2
    d1 = ts.digest()
    ts.add(Label("j", "L3", "b", label=2, features=f))
    assert ts.digest() != d1


def test_holdout_is_deterministic_and_proportional() -> None:
    ids = [str(i) for i in range(10000)]
    share = np.mean([in_holdout(i, 0.1) for i in ids])
    assert 0.08 < share < 0.12
    assert [in_holdout(i, 0.1) for i in ids[:50]] == [in_holdout(i, 0.1) for i in ids[:50]]
    assert not any(in_holdout(i, 0.0) for i in ids[:100])


def test_settings_from_env() -> None:
    env = {
        "REDIS_URL": "redis://r:6379/0",
        "ACTIVESTREAM_BATCH_SIZE": "64",
        "ACTIVESTREAM_TOLERANCE": "0.1",
        "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
        "ACTIVESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        LIBS_ENV: "/opt/kafka-jars",  # the local broker's jars, not a librdkafka setting ("libs" would fail every client)
    }
    s = Settings.from_env(env, strategy="entropy", namespace=None)
    assert s.redis_url == "redis://r:6379/0" and s.batch_size == 64 and s.tolerance == 0.1
    assert s.kafka_bootstrap_servers == "k:9092" and s.kafka_config == {"security.protocol": "SASL_SSL"}
    assert s.strategy == "entropy" and s.namespace == "default"
    with pytest.raises(ValueError, match="ACTIVESTREAM_BATCH_SIZE"):
        Settings.from_env({"ACTIVESTREAM_BATCH_SIZE": "many"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ACTIVESTREAM_EXPLORE": "abc"}, "ACTIVESTREAM_EXPLORE='abc': expected a number"),
        ({"ACTIVESTREAM_EXPLORE": "1.5"}, "ACTIVESTREAM_EXPLORE=1.5: expected a share"),
        ({"ACTIVESTREAM_STRATEGY": "foo"}, "unknown strategy 'foo'"),
        ({"ACTIVESTREAM_COLD_START": "kmeans"}, "ACTIVESTREAM_COLD_START='kmeans'"),
        ({"ACTIVESTREAM_BATCH_SIZE": "1.5"}, "ACTIVESTREAM_BATCH_SIZE='1.5': expected an integer"),
        # Out of range: each names the variable, the value and what is allowed.
        ({"ACTIVESTREAM_BATCH_SIZE": "0"}, "setting ACTIVESTREAM_BATCH_SIZE=0: expected an integer >= 1"),
        ({"ACTIVESTREAM_BATCH_SIZE": "-5"}, "setting ACTIVESTREAM_BATCH_SIZE=-5: expected an integer >= 1"),
        ({"ACTIVESTREAM_HOLDOUT_FRACTION": "1.5"}, "setting ACTIVESTREAM_HOLDOUT_FRACTION=1.5: expected a share in [0, 1)"),
        ({"ACTIVESTREAM_HOLDOUT_FRACTION": "1"}, "setting ACTIVESTREAM_HOLDOUT_FRACTION=1: expected a share in [0, 1)"),
        ({"ACTIVESTREAM_LEASE_TTL": "-5"}, "setting ACTIVESTREAM_LEASE_TTL=-5: expected a finite number of seconds > 0"),
        ({"ACTIVESTREAM_LEASE_TTL": "inf"}, "setting ACTIVESTREAM_LEASE_TTL=inf: expected a finite number of seconds > 0"),
        ({"ACTIVESTREAM_RETRAIN_INTERVAL": "-1"}, "setting ACTIVESTREAM_RETRAIN_INTERVAL=-1: expected a finite number of seconds >= 0"),
        ({"ACTIVESTREAM_PARTITIONS": "0"}, "setting ACTIVESTREAM_PARTITIONS=0: expected an integer >= 1"),
        ({"ACTIVESTREAM_REPLICATION_FACTOR": "0"}, "setting ACTIVESTREAM_REPLICATION_FACTOR=0: expected an integer >= 1"),
        ({"ACTIVESTREAM_RETRAIN_EVERY": "0"}, "setting ACTIVESTREAM_RETRAIN_EVERY=0: expected an integer >= 1"),
        ({"ACTIVESTREAM_FULL_REFIT_EVERY": "0"}, "setting ACTIVESTREAM_FULL_REFIT_EVERY=0: expected an integer >= 1"),
        ({"ACTIVESTREAM_MAX_SKIPS": "0"}, "setting ACTIVESTREAM_MAX_SKIPS=0: expected an integer >= 1"),
        ({"ACTIVESTREAM_N_FEATURES": "0"}, "setting ACTIVESTREAM_N_FEATURES=0: expected an integer >= 1"),
        ({"ACTIVESTREAM_LABELS_PER_HOUR": "nan"}, "setting ACTIVESTREAM_LABELS_PER_HOUR=nan: expected a finite number >= 0 (0: admit every item)"),
        ({"ACTIVESTREAM_LABELS_PER_HOUR": "-3"}, "setting ACTIVESTREAM_LABELS_PER_HOUR=-3: expected a finite number >= 0 (0: admit every item)"),
        ({"ACTIVESTREAM_METRICS_PORT": "99999"}, "setting ACTIVESTREAM_METRICS_PORT=99999: expected a port in [0, 65535] (0: any free port)"),
        ({"ACTIVESTREAM_TOLERANCE": "-1"}, "setting ACTIVESTREAM_TOLERANCE=-1: expected an accuracy drop in [0, 1]"),
        ({"ACTIVESTREAM_CURRICULUM_LABELS": "-1"}, "setting ACTIVESTREAM_CURRICULUM_LABELS=-1: expected an integer >= 0 (0: off)"),
        ({"ACTIVESTREAM_SEED": "-1"}, "setting ACTIVESTREAM_SEED=-1: expected an integer >= 0"),
        ({"ACTIVESTREAM_AUTO_ACCEPT": "2"}, "setting ACTIVESTREAM_AUTO_ACCEPT=2: expected 0 or 1"),
        ({"ACTIVESTREAM_EXPLORE": "nan"}, "setting ACTIVESTREAM_EXPLORE=nan: expected a share in [0, 1]"),
        ({"ACTIVESTREAM_NAMESPACE": "camp:eu"}, "setting ACTIVESTREAM_NAMESPACE (or --namespace): namespace 'camp:eu': must be non-empty"),
    ],
)
def test_a_bad_setting_stops_a_service_with_one_line(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    import argparse
    import re

    from activestream.wiring import settings_from

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit, match=re.escape(message)):
        settings_from(argparse.Namespace())


@pytest.mark.parametrize(
    ("flags", "message"),
    [({"batch_size": 0}, "--batch-size 0: expected an integer >= 1"), ({"metrics_port": -1}, "--metrics-port -1: expected a port in [0, 65535]")],
)
def test_a_bad_flag_value_stops_a_service_with_one_line_naming_the_flag(flags: dict[str, int], message: str) -> None:
    import argparse
    import re

    from activestream.wiring import settings_from

    with pytest.raises(SystemExit, match=re.escape(message)):
        settings_from(argparse.Namespace(**flags))


def test_settings_at_the_ends_of_their_ranges_are_taken() -> None:
    env = {"ACTIVESTREAM_HOLDOUT_FRACTION": "0", "ACTIVESTREAM_METRICS_PORT": "0", "ACTIVESTREAM_TOLERANCE": "1", "ACTIVESTREAM_SEED": "0",
           "ACTIVESTREAM_AUTO_ACCEPT": "0", "ACTIVESTREAM_RETRAIN_INTERVAL": "0", "ACTIVESTREAM_BATCH_SIZE": "1", "ACTIVESTREAM_EXPLORE": "1",
           "ACTIVESTREAM_LABELS_PER_HOUR": "0", "ACTIVESTREAM_CURRICULUM_LABELS": "0"}  # (0: off, as the services read them)
    s = Settings.from_env(env, metrics_port=65535)
    assert (s.holdout_fraction, s.metrics_port, s.tolerance, s.auto_accept, s.batch_size, s.explore) == (0.0, 65535, 1.0, 0, 1, 1.0)
    assert (s.labels_per_hour, s.curriculum_labels) == (0, 0)


def test_produce_reads_rows_and_names_the_file_and_line_of_a_bad_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from activestream.producer import read_items

    csv = tmp_path / "items.csv"
    csv.write_text("id,a,b,label\nx1,1.5,2,cat\nx2,3,4,dog\n")
    rows = list(read_items(csv, exclude=["label"]))
    assert [r[0] for r in rows] == ["x1", "x2"] and np.array_equal(rows[0][1], np.array([1.5, 2.0], dtype=np.float32))
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text('{"id": "a", "features": [1, 2]}\n{"id": "b", features: [1]}\n[1, 2]\n\n{"id": "c", "features": [3, 4]}\n')
    problems: list[str] = []
    assert [r[0] for r in read_items(jsonl, on_error=problems.append)] == ["a", "c"]  # the good rows around them still go out
    assert problems[0].startswith(f"{jsonl}:2: ") and problems[1] == f"{jsonl}:3: expected a JSON object, got list"
    with pytest.raises(ValueError, match="items.jsonl:2: "):
        list(read_items(jsonl))


def test_the_summary_says_which_side_missed_the_target(capsys: pytest.CaptureFixture[str]) -> None:
    from activestream.simulation.summary import print_summary

    def report(ours: int | None, random: int | None, **extra: object) -> dict:
        entry = {"labels_to_target": None, "per_seed_labels_to_target": [], "auc": 0.5, "score_at_budget": 0.9}
        return {"metric": "accuracy", "full_data_score": 0.95, "target": 0.9,
                "strategies": {"ours": {**entry, "labels_to_target": ours}, "random": {**entry, "labels_to_target": random}},
                "comparison": {"ours": {"labels_to_target": ours, "random_labels_to_target": random, "label_savings": None,
                                        "annotation_hours_saved": None, "score_at_budget": 0.9, "random_score_at_budget": 0.8, **extra}}}

    print_summary(report(None, 40), 30.0)
    assert "ours did not reach the target within the budget, random did in 40 labels" in capsys.readouterr().out
    print_summary(report(60, None, label_savings_at_least=0.4, annotation_hours_saved_at_least=1 / 3, random_labels_spent=100), 30.0)
    assert "label savings at least 40.0% and annotation hours saved at least 0.33" in capsys.readouterr().out
    print_summary(report(None, None), 30.0)
    assert "neither reached the target" in capsys.readouterr().out
    # (both at the first point of the curve, the seed labels: "label savings 0.0%" said nothing of the strategies)
    easy = report(20, 20, label_savings=0.0, annotation_hours_saved=0.0)
    easy["strategies"]["ours"]["curve"] = [[20, 0.93], [30, 0.95]]
    print_summary(easy, 30.0)
    assert "label savings n/a: the 20 seed labels alone reach the target, so no strategy can save any (raise --target, or lower --init)" in capsys.readouterr().out


def test_macro_f1_leaves_out_classes_neither_in_the_split_nor_predicted() -> None:
    from types import SimpleNamespace

    from activestream.simulation.campaign import score

    three = SimpleNamespace(task="multiclass", classes=(0, 1, 2))
    y = np.array([0, 1, 0, 1])  # class 2 is not in this test split
    assert score(three, "macro_f1", y, y) == 1.0  # a perfect model (was 2/3: class 2 counted as F1 = 0)
    assert score(three, "macro_f1", y, np.array([0, 1, 2, 1])) == pytest.approx((2 / 3 + 1 + 0) / 3)  # predicting it is an error
    labels = SimpleNamespace(task="multilabel", classes=("a", "b", "c"))
    Y = np.array([[1, 0, 0], [0, 1, 0]])
    assert score(labels, "macro_f1", Y, Y) == 1.0 and score(labels, "micro_f1", Y, Y) == 1.0


def test_micro_f1_of_label_matrices_is_scikit_learns() -> None:
    """The campaign's own micro-F1 of 0/1 label matrices (no f1_score checks at every version) gives f1_score's value."""
    from sklearn.metrics import f1_score

    from activestream.simulation.campaign import score

    rng = np.random.default_rng(0)
    for case in range(500):
        n, k = int(rng.integers(1, 30)), int(rng.integers(1, 6))
        Y = (rng.random((n, k)) < rng.random() * rng.random()).astype(np.int64)
        P = np.zeros_like(Y) if case % 5 == 0 else (rng.random((n, k)) < rng.random()).astype(np.int64)
        if case % 7 == 0:
            Y = np.zeros_like(Y)
        want = float(f1_score(Y, P, average="micro", zero_division=np.nan))
        assert score(None, "micro_f1", Y, P) == pytest.approx(1.0 if np.isnan(want) else want, abs=1e-12)  # type: ignore[arg-type]


def test_benchmark_summary_flags_a_default_that_missed_the_target() -> None:
    from benchmarks.run_strategies import markdown, summarize

    entry = {"labels_to_95": 300, "auc": 0.9, "final_score": 0.95, "wall_seconds": 1.0, "per_seed": [[[20, 0.5]]]}
    results = {"digits": {"budget": 700, "metric": "accuracy", "full_data_score": 0.97,
                          "strategies": {"ours": {**entry, "labels_to_99": None}, "random": {**entry, "labels_to_99": 700}}}}
    summary = summarize(results, {}, "ours")
    assert summary["max_ratio_to_random"] == 1.0 and summary["default_missed"] == ["digits"]
    text = markdown(results, {}, summary, "ours")
    assert "1.00 or more (not reached)" in text and "did not reach 99% within the budget on: digits" in text


def test_up_backs_off_a_service_that_keeps_exiting_and_forgives_one_that_ran() -> None:
    from activestream.supervisor import RESTART_MAX_DELAY, RESTART_RESET_SECONDS, restart_delay

    delays = [restart_delay(None, 0.5)]
    for _ in range(7):
        delays.append(restart_delay(delays[-1], 0.5))
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, RESTART_MAX_DELAY, RESTART_MAX_DELAY, RESTART_MAX_DELAY]
    assert restart_delay(16.0, RESTART_RESET_SECONDS) == 1.0  # it ran long enough: a new failure, not the same one


def test_truncating_a_benchmark_keeps_each_seeds_own_target() -> None:
    from benchmarks.run_strategies import _truncate_entry

    # Seed 0's full-data score is 0.80 (99%: 0.792), seed 1's 1.00 (99%: 0.99); their mean is 0.90.
    per_seed = [[[10, 0.70], [20, 0.795], [30, 0.80]], [[10, 0.80], [20, 0.90], [30, 0.99]]]
    entry = {"curve": [[10, 0.75], [20, 0.8475], [30, 0.895]], "per_seed": per_seed, "per_seed_labels_to_99": [20, 30]}
    out = _truncate_entry(entry, 20, full=0.90)
    assert out["per_seed_labels_to_99"] == [20, None]  # seed 1 got there only at 30 labels
    assert out["curve"] == entry["curve"][:2] and out["truncated_from"] == 30


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dispatcher", "--max-outstanding", "0"], "argument --max-outstanding: must be at least 1, got 0"),
        (["dispatcher", "--ack-timeout", "-5"], "argument --ack-timeout: must be a finite number of seconds > 0, got -5"),
        (["scorer", "--max-messages", "0"], "argument --max-messages: must be at least 1, got 0"),
        (["labeler-api", "--port", "99999"], "argument --port: must be a port in [0, 65535] (0: any free port), got 99999"),
        (["up", "--metrics-base-port", "-1"], "argument --metrics-base-port: must be a port in [0, 65535] (0: any free port), got -1"),
    ],
)
def test_service_flags_out_of_range_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from activestream.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_curriculum_labels_flag_takes_zero_as_off_like_its_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from activestream.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["simulate", "--data", "x.csv", "--label-column", "y", "--curriculum-labels", "0"]).curriculum_labels == 0  # ACTIVESTREAM_CURRICULUM_LABELS=0 is off too
    assert parser.parse_args(["demo", "--curriculum-labels", "40"]).curriculum_labels == 40
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--data", "x.csv", "--label-column", "y", "--curriculum-labels", "-1"])
    assert "must be an integer >= 0 (0: off), got -1" in capsys.readouterr().err


def test_py_spy_stacks_add_up_by_function() -> None:
    from benchmarks.profiling import summarize

    raw = "\n".join([
        "<module> (activestream/cli.py:9);run (scorer/service.py:600);score_items (scorer/service.py:380);consume (streams/kafka.py:50) 6",
        "<module> (activestream/cli.py:9);run (scorer/service.py:600);score_items (scorer/service.py:391);run (onnxruntime/session.py:220) 3",
        "<module> (activestream/cli.py:9);run (scorer/service.py:600);score_items (scorer/service.py:402) 1",
        "not a stack line",
        "",
    ])
    out = summarize(raw, top=2)
    assert out["samples"] == 10
    # Lines of one function add up; the innermost frame gets the self time.
    assert out["self"] == [["consume (streams/kafka.py)", 0.6], ["run (onnxruntime/session.py)", 0.3]]
    # Inclusive: every function on a stack once; two functions named run in different files stay apart.
    total = dict(map(tuple, summarize(raw, top=10)["total"]))
    assert total == {"<module> (activestream/cli.py)": 1.0, "run (scorer/service.py)": 1.0, "score_items (scorer/service.py)": 1.0,
                     "consume (streams/kafka.py)": 0.6, "run (onnxruntime/session.py)": 0.3}
    assert summarize("")["self"] == [] and summarize("")["samples"] == 0


def test_redis_password_file_goes_into_redis_url(tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("s3cr/et:@\n")
    env = {"REDIS_URL": "redis://redis:6379/0", "ACTIVESTREAM_REDIS_PASSWORD_FILE": str(secret)}
    s = Settings.from_env(env)
    assert s.redis_url == "redis://:s3cr%2Fet%3A%40@redis:6379/0"
    import redis

    assert redis.Redis.from_url(s.redis_url).connection_pool.connection_kwargs["password"] == "s3cr/et:@"
    assert Settings.from_env(env, redis_url="redis://u:given@h:1/0").redis_url == "redis://u:given@h:1/0"  # a URL's own password wins
    with pytest.raises(ValueError, match="ACTIVESTREAM_REDIS_PASSWORD_FILE"):
        Settings.from_env({**env, "ACTIVESTREAM_REDIS_PASSWORD_FILE": str(tmp_path / "missing")})


def test_instance_id_expands_the_hostname_and_makes_consumers_static_members() -> None:
    import socket

    from activestream.wiring import transactional_id

    s = Settings.from_env({"ACTIVESTREAM_INSTANCE_ID": "scorer-{hostname}"})
    assert s.instance_id == f"scorer-{socket.gethostname()}"
    assert transactional_id(s, "scorer") == transactional_id(s, "scorer") == f"activestream-scorer-{s.instance_id}"  # stable across restarts
    unset = Settings.from_env({})
    assert transactional_id(unset, "scorer") != transactional_id(unset, "scorer")  # unique per process without a slot


def test_training_set_split_and_counts_match_a_fold_from_scratch() -> None:
    rng = np.random.default_rng(0)
    ts = TrainingSet(holdout_fraction=0.3)
    f = np.zeros(2, dtype=np.float32)
    for n in range(400):  # new items, new labels for old items (another source), repeated label ids
        item = f"i{rng.integers(150)}"
        label_id = f"L{rng.integers(n + 1)}"
        ts.add(Label(item, label_id, "a", label=int(rng.integers(3)), features=f, source=str(rng.choice(["human", "baseline", "simulated"]))))
        train, hold = ts.split()
        ids = sorted(ts.items)
        assert [lab.item_id for lab in train] == [i for i in ids if not in_holdout(i, 0.3)]
        assert [lab.item_id for lab in hold] == [i for i in ids if in_holdout(i, 0.3)]
        assert all(lab is ts.items[lab.item_id] for lab in train + hold)  # (the newest label of each item)
        counts: dict[str, int] = {}
        for lab in ts.items.values():
            counts[lab.source] = counts.get(lab.source, 0) + 1
        assert ts.count_by_source() == counts
    assert 0 < len(hold) < len(train)


def test_training_set_made_from_items_or_resplit_matches_a_fold_from_scratch() -> None:
    f = np.zeros(2, dtype=np.float32)
    labels = {f"i{j}": Label(f"i{j}", f"L{j}", "a", label=j % 2, features=f, source="baseline" if j % 3 else "human") for j in range(60)}
    ts = TrainingSet(0.0, items=dict(labels))
    assert [len(part) for part in ts.split()] == [60, 0] and ts.count_by_source() == {"human": 20, "baseline": 40}
    ts.holdout_fraction = 0.5
    train, hold = ts.split()
    assert [lab.item_id for lab in hold] == [i for i in sorted(labels) if in_holdout(i, 0.5)] and len(train) + len(hold) == 60
    ts.add(Label("new", "L-new", "a", label=1, features=f))
    assert "new" in [lab.item_id for lab in ts.split()[in_holdout("new", 0.5)]]


def test_declared_classes_parse_and_refuse_what_is_not_one_of_them() -> None:
    from activestream.retrainer.label_fit import fit_to_campaign
    from activestream.schemas import Label, not_a_class, parse_classes

    assert parse_classes(" barbera, barolo ,grignolino") == ("barbera", "barolo", "grignolino")
    assert parse_classes("0, 1,2") == (0, 1, 2)  # integers when every one is
    for bad, why in (("", "no class given"), ("a,,b", "an empty class"), ("a,b,a", "class 'a' given twice"), ("1,01", "class '1' given twice")):
        with pytest.raises(ValueError, match=why):
            parse_classes(bad)
    assert not_a_class(["1", 2], (0, 1, 2)) is None  # "1" is the class 1, as the retrainer converts it
    assert not_a_class(["Barolo"], ("barolo",)) == "'Barolo' is not one of this campaign's classes (barolo; ACTIVESTREAM_CLASSES)"
    for junk in (None, 1.5, {}, True):  # (a request's list may hold anything: no class, never an exception)
        assert not_a_class([junk], (0, 1, 2)) == f"{junk!r} is not one of this campaign's classes (0, 1, 2; ACTIVESTREAM_CLASSES)"
    lab = Label("w1", "L1", "ann", label="merlot", features=np.zeros(2, dtype=np.float32))
    refused, _, _ = fit_to_campaign(lab, 2, "multiclass", None, ("barbera", "barolo"))
    assert str(refused) == "item 'w1': field 'label': 'merlot' is not one of this campaign's classes (barbera, barolo; ACTIVESTREAM_CLASSES)"
    kept, _, _ = fit_to_campaign(lab, 2, "multiclass", None, None)
    assert kept == lab


def test_a_bad_classes_setting_is_one_line_naming_it() -> None:
    from activestream.config import Settings, declared_classes

    with pytest.raises(ValueError, match=r"setting ACTIVESTREAM_CLASSES='a,,b': an empty class in 'a,,b'"):
        Settings.from_env({"ACTIVESTREAM_CLASSES": "a,,b"})
    assert declared_classes(Settings.from_env({"ACTIVESTREAM_CLASSES": "cat, dog"})) == ("cat", "dog")
    assert declared_classes(Settings.from_env({})) is None


def test_ups_env_file_carries_the_campaigns_settings_and_leaves_secrets_out() -> None:
    from activestream.commands.up import env_file_text

    text = env_file_text("127.0.0.1:9094", "redis://127.0.0.1:6390/0", {
        "ACTIVESTREAM_CLASSES": "barbera,barolo", "ACTIVESTREAM_NAMESPACE": "wine 2026", "ACTIVESTREAM_LABEL_STUDIO_TOKEN": "s3cret",
        "ACTIVESTREAM_KAFKA_SASL_PASSWORD": "pw", "HOME": "/root"})
    assert text.splitlines() == ["KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9094", "REDIS_URL=redis://127.0.0.1:6390/0",
                                 "ACTIVESTREAM_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9094", "ACTIVESTREAM_REDIS_URL=redis://127.0.0.1:6390/0",
                                 "ACTIVESTREAM_CLASSES=barbera,barolo", "ACTIVESTREAM_NAMESPACE='wine 2026'"]  # (quoted: the file is sourced)



def test_up_reads_the_brokers_and_rediss_address_as_the_services_do() -> None:
    # (a docs audit: up looked only at REDIS_URL, so with ACTIVESTREAM_REDIS_URL set it started its own Redis while the
    # services it started, and the env file's readers, used the other)
    from activestream.commands.up import address_setting
    from activestream.config import Settings

    for env in ({"ACTIVESTREAM_REDIS_URL": "redis://a:1/0", "REDIS_URL": "redis://b:2/0"}, {"REDIS_URL": "redis://b:2/0"},
                {"ACTIVESTREAM_REDIS_URL": "redis://a:1/0"}):
        assert address_setting("REDIS_URL", env) == Settings.from_env(env).redis_url
    env = {"ACTIVESTREAM_KAFKA_BOOTSTRAP_SERVERS": "k1:9092", "KAFKA_BOOTSTRAP_SERVERS": "k2:9092"}
    assert address_setting("KAFKA_BOOTSTRAP_SERVERS", env) == Settings.from_env(env).kafka_bootstrap_servers == "k1:9092"
    assert address_setting("REDIS_URL", {}) is None
    empty = {"ACTIVESTREAM_REDIS_URL": "", "REDIS_URL": "redis://b:2/0"}
    assert address_setting("REDIS_URL", empty) is None is Settings.from_env(empty).redis_url  # (set but empty: no Redis, for both)
    # The env file says the stack's addresses once: not also a stale ACTIVESTREAM_REDIS_URL of the environment.
    from activestream.commands.up import env_file_text

    text = env_file_text("k:1", "redis://new:2/0", {"ACTIVESTREAM_REDIS_URL": "redis://old:1/0", "ACTIVESTREAM_NAMESPACE": "n"})
    assert text.splitlines() == ["KAFKA_BOOTSTRAP_SERVERS=k:1", "REDIS_URL=redis://new:2/0", "ACTIVESTREAM_KAFKA_BOOTSTRAP_SERVERS=k:1",
                                 "ACTIVESTREAM_REDIS_URL=redis://new:2/0", "ACTIVESTREAM_NAMESPACE=n"]
