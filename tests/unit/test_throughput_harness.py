"""The throughput benchmark harness's pure parts (benchmarks/throughput.py): no services started."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from activestream.retrainer.training_set import in_holdout
from benchmarks import throughput as tp


def test_sections_are_checked_before_anything_runs() -> None:
    assert tp.parse_sections(None) == tp.DEFAULT_SECTIONS == ("memory", "scorer", "rerank", "label")  # pool only when asked for
    assert tp.parse_sections(" memory, rerank,memory ") == ("memory", "rerank")
    with pytest.raises(ValueError, match="Rerank") as err:
        tp.parse_sections("memory,Rerank")
    assert "memory,scorer,rerank,label" in str(err.value)
    with pytest.raises(ValueError):
        tp.parse_sections(",")


def _args(**over: Any) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    tp.add_throughput_arguments(ap)
    return argparse.Namespace(**{**vars(ap.parse_args([])), **over})


def test_an_unknown_section_is_one_line_and_exit_2_before_services_start(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    def no_services(**_: Any) -> Any:
        raise AssertionError("services started")

    monkeypatch.setattr(tp, "services", no_services)
    assert tp.run_cli(_args(sections="memory,Rerank", quick=True)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Rerank" in err
    with pytest.raises(ValueError, match="Rerank"):
        tp.run(tp.BenchConfig(sections=("memory", "Rerank")), log=lambda s: None)


def _fake_services(asked: list[bool]) -> Any:
    @contextlib.contextmanager
    def services(kafka_needed: bool = True) -> Iterator[tp.Services]:
        asked.append(kafka_needed)
        yield tp.Services("broker:9092" if kafka_needed else None, "redis://nowhere", {"kafka": "fake", "redis": "fake"})

    return services


def test_a_section_that_raises_is_reported_and_the_others_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tp, "services", _fake_services([]))

    def broken(*_: Any) -> dict[str, Any]:
        raise RuntimeError("redis went away")

    monkeypatch.setattr(tp, "bench_rerank", broken)
    monkeypatch.setattr(tp, "bench_memory", lambda *_: dict(MEMORY))
    report = tp.run(tp.BenchConfig(sections=("rerank", "memory")), log=lambda s: None)
    assert report["sections"]["rerank"]["error"] == "RuntimeError: redis went away"
    assert report["redis_bytes_per_pending_item"] == 700.0
    assert "rerank_1m_s" not in report


MEMORY = {"float32": {"bytes_per_item": 700.0}, "float16": {"bytes_per_item": 450.0}}


def test_kafka_is_asked_for_only_by_the_sections_that_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []
    monkeypatch.setattr(tp, "services", _fake_services(asked))
    monkeypatch.setattr(tp, "bench_memory", lambda *_: dict(MEMORY))
    monkeypatch.setattr(tp, "bench_label_to_live", lambda *_: {"1000": {"p50_s": 0.1, "p99_s": 0.2, "failures": 0}})
    tp.run(tp.BenchConfig(sections=("memory",)), log=lambda s: None)
    assert asked == [False]  # memory (and rerank) need only Redis
    tp.run(tp.BenchConfig(sections=("memory", "label"), label_sizes=(1000,)), log=lambda s: None)
    assert asked == [False, True]


def test_nan_is_written_as_null() -> None:
    report = {"a": float("nan"), "b": [np.float64("inf"), 1.5, np.float32(2.0)], "c": {"d": (np.nan, np.int64(3))},
              "e": np.array([1.0, np.nan])}
    text = tp.to_json(report)

    def refuse(c: str) -> None:
        raise ValueError(c)

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [None, 1.5, 2.0], "c": {"d": [None, 3]}, "e": [1.0, None]}


def _report(quick: bool, **over: Any) -> dict[str, Any]:
    cfg = tp.BenchConfig.quick_config() if quick else tp.BenchConfig()
    small, big = (str(n) for n in cfg.rerank_sizes)
    ref = {"seconds": 0.5, "impl": "modAL-python + argsort", "sklearn": "1.5", "reimplementation": {"seconds": 0.5, "impl": "re", "sklearn": "1.5"}}
    label = {"p50_s": 0.4, "p99_s": 3.0, "failures": 0, **over}
    sections = {"rerank": {small: {"seconds": 0.2, "reference": ref}, big: {"seconds": 1.5, "first_seconds": 2.0, "reference": ref}},
                "label": {str(n): dict(label) for n in cfg.label_sizes}}
    return {"quick": quick, **tp.headline(sections, cfg)}


def test_a_quick_report_names_its_sizes_and_gives_no_verdict() -> None:
    report = _report(quick=True)
    assert all(t["met"] is None for t in report["targets"].values())
    for t in report["targets"].values():  # the table's own rule, whatever the targets say
        t["met"] = False
    text = tp.table(report)
    assert "MISSED" not in text and "| met |" not in text
    assert "| label -> live p99, 1k labels (s) | 3.000 | <= 2.0 | quick: no verdict |" in text.splitlines()
    assert "re-rank 20k pending" in text and "re-rank 100k pending" in text and "re-rank 100k / reference" in text
    assert "1M" not in text and "10k" not in text and "label -> live p99, 1k labels" in text


def test_a_full_report_keeps_its_sizes_and_verdicts() -> None:
    report = _report(quick=False)
    assert report["targets"]["label_to_live_p99_s"]["met"] is False
    assert report["targets"]["rerank_1m_vs_reference"]["met"] is False  # 1.5 / 0.5
    text = tp.table(report)
    assert "re-rank 100k pending" in text and "re-rank 1M pending" in text and "label -> live p99, 10k labels" in text
    assert "MISSED" in text and "quick" not in text


def test_failed_label_samples_fail_the_target_and_say_so() -> None:
    report = _report(quick=False, p99_s=None, failures=2)
    assert report["label_to_live_failures"] == 2
    assert report["targets"]["label_to_live_p99_s"]["met"] is False
    assert "failed (2 timed label(s)" in tp.table(report)


def test_timed_labels_are_on_items_the_retrainer_trains_on() -> None:
    ids = tp.training_item_ids(25, 0.1)
    assert len(ids) == 25 == len(set(ids))
    assert not any(in_holdout(i, 0.1) for i in ids)
    assert "new-3" not in ids and "new-7" not in ids  # held out by the retrainer at 10%
    assert tp.training_item_ids(3, 0.0) == ["new-0", "new-1", "new-2"]


def test_a_failed_sample_is_not_dropped_from_the_percentiles() -> None:
    ok = [0.1, 0.2, 0.3, 0.4]
    assert tp.percentile_or_none(ok, 0, 99) == pytest.approx(float(np.percentile(ok, 99)))
    assert tp.percentile_or_none(ok, 1, 99) is None
    assert tp.percentile_or_none(ok, 1, 50) == pytest.approx(0.3)
    assert tp.percentile_or_none([], 3, 50) is None and tp.percentile_or_none([], 0, 50) is None


def test_scorer_processes_get_no_inherited_settings() -> None:
    base = {"PATH": "/bin", "ACTIVESTREAM_STRATEGY": "random", "ACTIVESTREAM_LABELS_PER_HOUR": "10", "ACTIVESTREAM_HOLDOUT_FRACTION": "0.5",
            "ACTIVESTREAM_REDIS_URL": "redis://elsewhere", "ACTIVESTREAM_KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9092",
            "ACTIVESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_BOOTSTRAP_SERVERS": "old:9092"}
    env = tp.child_env(base, bootstrap="b:9092", redis_url="redis://r", kafka_external=False, topic_prefix="p", retrain_every="1")
    assert env == {"PATH": "/bin", "KAFKA_BOOTSTRAP_SERVERS": "b:9092", "REDIS_URL": "redis://r", "ACTIVESTREAM_TOPIC_PREFIX": "p",
                   "ACTIVESTREAM_RETRAIN_EVERY": "1"}
    external = tp.child_env(base, bootstrap="b:9092", redis_url="redis://r", kafka_external=True)
    assert external["ACTIVESTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"  # what reaching that broker needs
    assert "ACTIVESTREAM_KAFKA_BOOTSTRAP_SERVERS" not in external and "ACTIVESTREAM_STRATEGY" not in external


def test_failed_consume_only_runs_are_reported_not_raised() -> None:
    failed = {"error": "Traceback ... KafkaException", "seconds": float("nan"), "impl": "python"}
    best = tp.best_run([failed, dict(failed)])
    assert best["items_per_s"] is None and "KafkaException" in best["error"] and best["runs"] == [None, None]
    assert tp.best_run([failed, {"items_per_s": 5.0, "consumed": 10}]) == {"items_per_s": 5.0, "consumed": 10, "runs": [None, 5.0]}
    assert tp._num(None, ",.0f") == "n/a" and tp._num(1234.5, ",.0f") == "1,234"
