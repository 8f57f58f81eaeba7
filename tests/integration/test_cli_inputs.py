"""Bad input to ``simulate`` / ``demo`` / ``produce``: one line naming the file or flag and the reason, no traceback."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification

from activestream.cli import main

pytestmark = pytest.mark.integration


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single line a refused command printed to stderr."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    path = tmp_path / "good.csv"
    path.write_text("f0,f1,f2,f3,label\n" + "".join(",".join([*(f"{v:.5g}" for v in row), str(c)]) + "\n" for row, c in zip(X, y, strict=True)))
    return path


@pytest.mark.parametrize("command", ["demo", "simulate"])
def test_a_budget_below_init_names_both_flags(command: str, good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(good_csv), "--label-column", "label"] if command == "simulate" else []
    assert main([command, *data, "--budget", "10", "--report", str(tmp_path / "r.json")]) == 2
    assert one_error_line(capsys) == "error: --budget 10 is below --init 20"


def test_an_unreachable_redis_is_one_line_naming_the_flag(good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from activestream.devstack.redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    args = ["simulate", "--data", str(good_csv), "--label-column", "label", "--budget", "30", "--seeds", "1", "--no-progress",
            "--report", str(tmp_path / "r.json")]
    assert main([*args, "--redis-url", url]) == 2  # (two workers: the error came back from the pool as a RemoteTraceback)
    err = one_error_line(capsys)
    assert err.startswith(f"error: --redis-url {url}: cannot reach Redis: ") and "refused" in err


def test_a_bad_redis_url_in_the_environment_names_redis_url(good_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", "notaurl")
    assert main(["demo", "--no-progress", "--report", str(tmp_path / "r.json")]) == 2
    assert one_error_line(capsys).startswith("error: REDIS_URL notaurl: Redis URL must specify one of the following schemes")
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")  # a password is not printed
    assert main(["demo", "--no-progress", "--report", str(tmp_path / "r.json")]) == 2
    err = one_error_line(capsys)
    assert err.startswith("error: REDIS_URL redis://:***@127.0.0.1:1/0: cannot reach Redis: ") and "s3cret" not in err


@pytest.fixture
def produce(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, list[Any]]]:
    """``activestream produce ARGS`` on an in-memory bus: its exit status and the items it published."""
    from activestream.commands import produce as produce_command
    from activestream.streams.memory import InMemoryBus
    from activestream.streams.topics import Topics
    from activestream.wiring import settings_from

    bus = InMemoryBus()

    def connect(args: argparse.Namespace, *, transactional_name: str | None = None) -> tuple[Any, Any, Topics]:
        return settings_from(args), bus, Topics()

    monkeypatch.setattr(produce_command, "connect", connect)

    def run(*argv: str) -> tuple[int, list[Any]]:
        return main(["produce", "--no-progress", *argv]), bus.messages(Topics().items)

    return run


def test_duplicate_column_names_are_one_line_in_simulate_and_produce(tmp_path: Path, produce: Callable[..., tuple[int, list[Any]]],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,a,label\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(30)))
    assert main(["simulate", "--data", str(path), "--label-column", "label"]) == 2
    assert one_error_line(capsys) == f"error: {path}: column 'a' appears 2 times in the header; column names must be unique"
    assert produce(str(path), "--exclude", "label") == (2, [])
    assert one_error_line(capsys) == f"error: {path}: column 'a' appears 2 times in the header; column names must be unique"


def test_simulate_runs_multilabel_from_a_column_of_label_lists(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import make_multilabel_classification

    X, Y = make_multilabel_classification(n_samples=200, n_features=5, n_classes=3, random_state=0)
    tags = [[name for name, on in zip(("cat", "dog", "owl"), row, strict=True) if on] for row in Y]
    path = tmp_path / "tags.parquet"
    pq.write_table(pa.table({**{f"f{j}": X[:, j] for j in range(5)}, "tags": tags}), path)
    report = tmp_path / "r.json"
    assert main(["simulate", "--data", str(path), "--label-column", "tags", "--budget", "30", "--seeds", "1", "--workers", "1",
                 "--no-progress", "--redis-url", redis_url, "--report", str(report)]) == 0
    assert "200 items, 5 features, 3 labels" in capsys.readouterr().out
    rep = json.loads(report.read_text())
    assert rep["task"] == "multilabel" and rep["metric"] == "micro_f1"


def test_a_class_with_a_single_row_stays_in_the_labeling_pool(tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    X, _ = make_classification(n_samples=200, n_features=4, random_state=0)
    from sklearn.model_selection import train_test_split

    y = np.zeros(200, dtype=int)
    y[train_test_split(np.arange(200), test_size=0.3, random_state=0)[1][0]] = 1  # one row of class 1, where seed 0's plain split holds it out
    path = tmp_path / "lone.csv"
    path.write_text("f0,f1,f2,f3,label\n" + "".join(",".join([*(f"{v:.5g}" for v in row), str(c)]) + "\n" for row, c in zip(X, y, strict=True)))
    assert main(["simulate", "--data", str(path), "--label-column", "label", "--budget", "30", "--seeds", "3", "--workers", "1",
                 "--no-progress", "--redis-url", redis_url, "--report", str(tmp_path / "r.json")]) == 0
    assert f"{path}: column 'label': 1 class(es) with a single row (1) stay in the labeling pool (never in the test split)" in caplog.messages


def test_a_label_with_a_class_per_row_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "unique.csv"
    path.write_text("f0,label\n" + "".join(f"{i / 10},row-{i}\n" for i in range(40)))
    assert main(["simulate", "--data", str(path), "--label-column", "label", "--report", str(tmp_path / "r.json")]) == 2
    assert one_error_line(capsys) == f"error: {path}: column 'label': every row has a class of its own (40 classes): nothing to learn or test (an id column?)"


def test_produce_names_the_file_it_cannot_read(tmp_path: Path, produce: Callable[..., tuple[int, list[Any]]],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert produce(str(empty)) == (2, [])
    assert one_error_line(capsys) == f"error: {empty}: cannot be read: Empty CSV file"
    array = tmp_path / "items.json"
    array.write_text('[{"id": "a", "features": [1, 2]}]')
    assert produce(str(array)) == (2, [])
    assert one_error_line(capsys) == f"error: {array}: unsupported file type; use .csv, .csv.gz, .csv.bz2, .csv.zst, .csv.lz4, .parquet, .pq, .jsonl, .ndjson"


def test_an_explicit_id_or_exclude_column_that_is_absent_is_one_line(good_csv: Path, tmp_path: Path,
                                                                     produce: Callable[..., tuple[int, list[Any]]],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    simulate = ["simulate", "--data", str(good_csv), "--label-column", "label", "--report", str(tmp_path / "r.json")]
    assert main([*simulate, "--id-column", "ID"]) == 2
    assert one_error_line(capsys) == f"error: {good_csv}: --id-column 'ID': no such column (columns: f0, f1, f2, f3, label)"
    assert main([*simulate, "--exclude", "F0"]) == 2
    assert one_error_line(capsys) == f"error: {good_csv}: --exclude 'F0': no such column (did you mean 'f0'?)"
    assert produce(str(good_csv), "--exclude", "lable") == (2, [])
    assert one_error_line(capsys) == f"error: {good_csv}: --exclude 'lable': no such column (did you mean 'label'?)"
    assert produce(str(good_csv), "--exclude", "label", "--id-column", "row") == (2, [])
    assert one_error_line(capsys).startswith(f"error: {good_csv}: --id-column 'row': no such column")
    assert produce(str(good_csv), "--exclude", "label", "--id-column", "id") == (2, [])  # given, so meant: not row numbers
    assert one_error_line(capsys).startswith(f"error: {good_csv}: --id-column 'id': no such column")
    code, published = produce(str(good_csv), "--exclude", "label")  # the default may be absent: row numbers
    assert code == 0 and published and published[0].key == b"row-0"


def test_produce_keeps_id_text_skips_rows_without_one_and_counts_repeated_ids(tmp_path: Path, produce: Callable[..., tuple[int, list[Any]]],
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from activestream.commands.label import read_answers

    items = tmp_path / "items.csv"
    items.write_text("id,a,label\n001,1.5,cat\n001,2.5,cat\n,3.5,dog\n002,4.5,dog\n")
    code, published = produce(str(items), "--exclude", "label")
    err = capsys.readouterr().err
    assert code == 1 and [m.key for m in published] == [b"001", b"001", b"002"]
    assert f"skipped {items}: row 3: no id in column 'id'" in err
    assert f"warning: {items}: 1 row(s) repeat an earlier id; the queue keeps one item per id" in err
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label\n001,cat\n002,dog\n")
    assert set(read_answers(str(answers), "id", "label")) == {m.key.decode() for m in published}  # a labeler's answers now match


@pytest.mark.parametrize("name", ["out.png", "OUT.PNG"])
def test_a_report_path_the_plot_would_overwrite_is_refused(name: str, good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / name
    assert main(["demo", "--report", str(report)]) == 2
    assert one_error_line(capsys) == f"error: --report {report}: the plot would be written over it; give a .json path"
    assert main(["simulate", "--data", str(good_csv), "--label-column", "label", "--report", str(report)]) == 2
    assert one_error_line(capsys) == f"error: --report {report}: the plot would be written over it; give a .json path"


def test_a_repeated_strategy_runs_once(good_csv: Path, tmp_path: Path, redis_url: str) -> None:
    import json

    report = tmp_path / "r.json"
    assert main(["simulate", "--data", str(good_csv), "--label-column", "label", "--strategy", "margin", "--strategy", "random",
                 "--strategy", "margin", "--budget", "30", "--seeds", "1", "--workers", "1", "--no-progress", "--redis-url", redis_url,
                 "--report", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert list(rep["strategies"]) == ["margin", "random"] and rep["strategies"]["margin"]["seeds"] == [0]  # (was [0, 0]: run twice)


def test_a_test_size_too_small_to_split_names_the_flag(good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--data", str(good_csv), "--label-column", "label", "--test-size", "0.01", "--report", str(tmp_path / "r.json")]) == 2
    err = one_error_line(capsys)
    assert err.startswith("error: --test-size 0.01 cannot split the 100 rows of good.csv: ") and "number of classes = 2" in err


def test_produce_keeps_the_csv_header_as_the_namespaces_feature_names(tmp_path: Path, produce: Callable[..., tuple[int, list[Any]]],
                                                                      redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # (the labeling page shows a feature-only item's features by these names)
    import json

    import redis

    from activestream.rankedqueue import QueueKeys, RankedQueue

    path = tmp_path / "seg.csv"
    path.write_text("id,hue-mean,intensity-mean,label\n" + "".join(f"r{i},{i},{-i},{i % 2}\n" for i in range(5)))
    namespace = f"names-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ACTIVESTREAM_NAMESPACE", namespace)
    code, items = produce(str(path), "--exclude", "label")
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    try:
        assert code == 0 and len(items) == 5
        assert json.loads(queue.get_meta("feature_names") or "null") == ["hue-mean", "intensity-mean"]

        # Named-field JSONL items of the same campaign are read by those names, by produce's check and by a scorer
        # started without ACTIVESTREAM_FEATURE_NAMES (both asked their own setting only: the scorer dead-lettered them).
        named = tmp_path / "named.jsonl"
        named.write_text("".join(json.dumps({"id": f"n{i}", "features": {"intensity-mean": -i, "hue-mean": i}}) + "\n" for i in range(3))
                         + json.dumps({"id": "n3", "features": {"hue-mean": 3}}) + "\n")
        code, items = produce(str(named))
        assert code == 1 and len(items) == 5 + 3, [m.key for m in items]  # (n3 lacks a feature: skipped, named)
        from activestream.schemas import decode_item
        from activestream.scorer.service import Scorer
        from activestream.streams.memory import InMemoryBus
        from activestream.streams.topics import Topics

        bus, topics = InMemoryBus(), Topics()
        for m in items[5:]:
            bus.publish(topics.items, m.value, key=m.key)
        scorer = Scorer(bus, queue, topics, batch_size=10, commit_interval=0.0)
        scorer.run(burst=True, timeout=0.0)
        scorer.close()
        assert scorer.dead_letters == 0 and scorer.feature_names == ["hue-mean", "intensity-mean"]
        assert decode_item(items[6].value, feature_names=scorer.feature_names).features.tolist() == [1.0, -1.0]
        assert queue.features_of(["n2"])[0].tolist() == [2.0, -2.0]

        # A later table with the same columns in another order: its vectors in the campaign's order, its header not recorded.
        flipped = tmp_path / "flipped.csv"
        flipped.write_text("intensity-mean,id,hue-mean\n" + "".join(f"{-i},f{i},{i}\n" for i in range(1, 3)))
        code, items = produce(str(flipped))
        assert code == 0 and decode_item(items[-1].value).features.tolist() == [2.0, -2.0]
        assert json.loads(queue.get_meta("feature_names") or "null") == ["hue-mean", "intensity-mean"]
    finally:
        queue.clear()


def test_produce_refuses_the_rows_the_scorer_would_and_the_files_the_campaign_cannot_take(
    tmp_path: Path, produce: Callable[..., tuple[int, list[Any]]], redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The user sees each refused row where they ran produce (not in the scorer's log), and a file of another width than the
    campaign's is one error line before anything is sent; a namespace beside others' campaigns gets a note (a typo?)."""
    import base64

    import numpy as np
    import redis

    from activestream.rankedqueue import QueueKeys, RankedQueue

    namespace = f"prod-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ACTIVESTREAM_NAMESPACE", namespace)
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    other = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(f"{namespace}-other"))
    try:
        other.set_meta(n_features=3)
        bad = tmp_path / "bad.csv"
        bad.write_text("id,a,magnesium,c\nw1,1,2,3\nw2,1,high,3\nw3,1,,3\nw4,4,5,6\n")
        code, items = produce(str(bad))
        out = capsys.readouterr()
        assert code == 1 and [m.key for m in items] == [b"w1", b"w4"]
        assert f"skipped {bad}: row 2: item 'w2': column 'magnesium': not a finite number ('high')" in out.err
        assert f"skipped {bad}: row 3: item 'w3': column 'magnesium': no value" in out.err
        assert f"note: {bad}: namespace '{namespace}' holds no campaign yet" in out.err and f"'{namespace}-other'" in out.err
        assert "produced 2 items" in out.out and "skipped 2 row(s)" in out.out
        assert queue.feature_names() == ["a", "magnesium", "c"]

        queue.set_meta(n_features=3)  # the campaign's width, as the scorer fixes it
        fewer = tmp_path / "fewer.csv"
        fewer.write_text("id,a,c\nw5,1,3\n")
        code, items = produce(str(fewer))
        assert code == 2 and len(items) == 2  # nothing more sent
        assert one_error_line(capsys) == (f"error: {fewer}: 2 feature column(s) (a, c), but this campaign's items have 3 features; "
                                          "the file lacks magnesium")
        jsonl = tmp_path / "items.jsonl"
        nan_b64 = base64.b64encode(np.array([1, np.nan, 3], dtype="<f4").tobytes()).decode()
        jsonl.write_text('{"id": "j1", "features": [1, 2, 3]}\n{"id": "j2", "features": [1, 2]}\n{"id": "j3", "features": [1, "x", 3]}\n'
                         f'{{"id": "j4", "features_b64": "{nan_b64}"}}\n')
        code, items = produce(str(jsonl))
        err = capsys.readouterr().err
        assert code == 1 and [m.key for m in items][2:] == [b"j1"]
        assert f"skipped {jsonl}:2: item 'j2': field 'features': expected 3 values, got 2" in err and f"skipped {jsonl}:3: item 'j3': field 'features" in err
        assert f"skipped {jsonl}:4: item 'j4': field 'features" in err
        assert "holds no campaign yet" not in err  # (it holds one now)
    finally:
        queue.clear()
        other.clear()


def test_a_wrong_redis_password_is_said_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    # (it was "Redis unreachable", as a Redis that is not there)
    import redis

    from activestream.devstack.redis_server import LocalRedis

    server = LocalRedis(admin=True).start()
    try:
        redis.Redis.from_url(server.url).config_set("requirepass", "right")
        assert main(["queue", "info", "--redis-url", f"redis://:wrong@127.0.0.1:{server.port}/0"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: Redis refused the credentials: ") and "Traceback" not in err
    finally:
        server.stop()


def test_a_process_on_other_topics_than_its_campaigns_is_told_which(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # (a campaign that ran on activestream.* before the prefix defaulted to the namespace, or a process started with
    # another ACTIVESTREAM_TOPIC_PREFIX, would read topics nobody writes: said at its start)
    import redis

    from activestream.config import Settings
    from activestream.rankedqueue import QueueKeys, RankedQueue
    from activestream.wiring import join_campaign

    namespace = f"topics-{uuid.uuid4().hex[:8]}"
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    try:
        queue.set_meta(started_at="1.0")  # (a campaign started before its topics were recorded)
        with caplog.at_level("WARNING"):
            join_campaign(Settings(redis_url=redis_url, namespace=namespace, topic_prefix=namespace), queue)
        assert f"namespace '{namespace}' holds a campaign started before its topics were recorded" in caplog.text
        assert queue.get_meta("topic_prefix") is None  # (not recorded on a guess: the advice given holds)
        caplog.clear()
        old = f"old-{namespace}"  # (the topics it ran on: activestream.* in the advice; its own here, on a Redis other tests share)
        with caplog.at_level("WARNING"):  # the user follows it: those topics are the campaign's from now on
            join_campaign(Settings(redis_url=redis_url, namespace=namespace, topic_prefix=old), queue)
            assert caplog.text == "" and queue.get_meta("topic_prefix") == old
            join_campaign(Settings(redis_url=redis_url, namespace=namespace, topic_prefix=old), queue)  # (its own again: fine)
        # (a multi-campaign audit: this was a warning, and a label the process took went to topics nothing of the campaign read)
        with pytest.raises(SystemExit, match=f"error: the campaign of namespace '{namespace}' runs on the topics {old}.\\* "
                                             f"\\(recorded with its queue\\); this process would use {namespace}.\\*: set "
                                             f"ACTIVESTREAM_TOPIC_PREFIX={old}"):
            join_campaign(Settings(redis_url=redis_url, namespace=namespace, topic_prefix=namespace), queue)
        # Another namespace new to those topics would mix the two campaigns: refused, naming the owner.
        other = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(f"{namespace}-b"))
        try:
            with pytest.raises(SystemExit, match=f"error: the topics {old}.\\* are the campaign of namespace '{namespace}'"):
                join_campaign(Settings(redis_url=redis_url, namespace=f"{namespace}-b", topic_prefix=old), other)
            assert other.get_meta("topic_prefix") is None
        finally:
            other.clear()
    finally:
        queue.clear()


def test_produce_refuses_to_send_a_campaigns_items_to_other_topics_than_its_own(tmp_path: Path, produce: Callable[..., tuple[int, list[Any]]],
                                                                              redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    from activestream.rankedqueue import QueueKeys, RankedQueue

    namespace = f"route-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ACTIVESTREAM_NAMESPACE", namespace)
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    try:
        queue.set_meta(topic_prefix="elsewhere")  # (its scorers read elsewhere.items)
        path = tmp_path / "items.csv"
        path.write_text("id,a,b\nr1,1,2\n")
        code, items = produce(str(path))
        assert code == 2 and items == []
        assert capsys.readouterr().err.strip() == (f"error: the campaign of namespace '{namespace}' runs on the topics elsewhere.* (recorded with its "
                                                   f"queue); these items would go to {namespace}.items: set ACTIVESTREAM_TOPIC_PREFIX=elsewhere "
                                                   "(or --topic-prefix)")
    finally:
        queue.clear()


def test_import_labels_under_another_campaigns_classes_is_refused_not_redeclared(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # (with the env file of another campaign sourced, import-labels redeclared this namespace's classes to that
    # campaign's, with a warning, and then refused every row as "not one of this campaign's classes")
    import redis

    from activestream.commands import import_labels as command
    from activestream.rankedqueue import QueueKeys, RankedQueue
    from activestream.streams.memory import InMemoryBus
    from activestream.streams.topics import Topics
    from activestream.wiring import settings_from

    bus = InMemoryBus()
    monkeypatch.setattr(command, "connect", lambda args, **_: (settings_from(args), bus, Topics("pets")))
    namespace = f"pets-{uuid.uuid4().hex[:8]}"
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    queue.record_declared_classes(("cat", "dog"))
    path = tmp_path / "pets.csv"
    path.write_text("id,f0,f1,label\np1,1,2,cat\np2,3,4,dog\n")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ACTIVESTREAM_NAMESPACE", namespace)
    try:
        monkeypatch.setenv("ACTIVESTREAM_CLASSES", "barolo,barbera")
        assert main(["import-labels", str(path), "--label-column", "label"]) == 2
        err = one_error_line(capsys)
        assert err.startswith("error: ACTIVESTREAM_CLASSES=barolo,barbera differs from the classes namespace") and "(cat,dog)" in err, err
        assert queue.declared_classes() == ("cat", "dog") and bus.messages(Topics("pets").labels) == []
        monkeypatch.delenv("ACTIVESTREAM_CLASSES")  # (the namespace's own are used)
        assert main(["import-labels", str(path), "--label-column", "label"]) == 0
        assert "imported 2 label(s)" in capsys.readouterr().out
    finally:
        queue.clear()


def test_a_declared_multilabel_task_is_asked_for_from_the_first_answer(redis_url: str) -> None:
    # (a multi-label audit: nothing could say a campaign was multi-label before its first answer, so the page offered one
    # class per item, and its first single answer made the campaign multi-class for good)
    import redis

    from activestream.config import Settings
    from activestream.labeling.routes import status
    from activestream.labeling.service import InvalidLabel, LabelService
    from activestream.rankedqueue import QueueKeys, RankedQueue
    from activestream.streams.memory import InMemoryBus
    from activestream.streams.topics import Topics
    from activestream.wiring import join_campaign

    namespace = f"tags-{uuid.uuid4().hex[:8]}"
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    try:
        with pytest.raises(ValueError, match="setting ACTIVESTREAM_TASK=tags: expected multiclass or multilabel"):
            Settings.from_env({"ACTIVESTREAM_TASK": "tags"})
        join_campaign(Settings(redis_url=redis_url, namespace=namespace, topic_prefix=namespace, task="multilabel", classes="cat,dog,owl"), queue)
        queue.add(["a", "b"], np.array([0.9, 0.8]), np.zeros((2, 2), dtype=np.float32))
        service = LabelService(queue, InMemoryBus(), Topics(namespace))
        assert status(service)["task"] == "multilabel"  # (the page shows tags to pick, before any model)
        with pytest.raises(InvalidLabel, match="answers come as 'labels'"):
            service.submit("a", labeler_id="ann", label="cat")
        assert service.submit("a", labeler_id="ann", labels=("cat", "owl"))
        join_campaign(Settings(redis_url=redis_url, namespace=namespace, topic_prefix=namespace), queue)  # (unset: the recorded task holds)
        with pytest.raises(SystemExit, match=f"ACTIVESTREAM_TASK=multiclass, but namespace '{namespace}' holds label sets already"):
            join_campaign(Settings(redis_url=redis_url, namespace=namespace, topic_prefix=namespace, task="multiclass"), queue)
    finally:
        queue.clear()


def test_produce_says_when_ids_were_met_before_and_where_a_jsonl_item_is_refused(
        tmp_path: Path, produce: Callable[..., tuple[int, list[Any]]], redis_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    # (a producer audit: a second file without ids reused row-0.. and its items vanished, "produced 5 items", exit 0; a
    # JSONL item the check refused was named without its line)
    import redis

    from activestream.rankedqueue import QueueKeys, RankedQueue

    namespace = f"met-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ACTIVESTREAM_NAMESPACE", namespace)
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    try:
        queue.add(["row-0", "row-1", "row-2"], np.array([0.5, 0.4, 0.3]), np.zeros((3, 2), dtype=np.float32))  # (the first file's, scored)
        second = tmp_path / "noid2.csv"
        second.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(5)))
        code, items = produce(str(second))
        assert code == 0 and len(items) == 5
        err = capsys.readouterr().err
        assert f"warning: {second}: 3 item(s) have ids the campaign met before (queued, labeled or dropped)" in err
        assert "no 'id' column or field: the items' ids are their rows' places (row-0, row-1, ...)" in caplog.text
        bad = tmp_path / "items.jsonl"
        bad.write_text('{"id": "j1", "features": [1, 2]}\n\n{"id": "j-short", "features": [1]}\n')
        code, _ = produce(str(bad))
        assert code == 1 and f"skipped {bad}:3: item 'j-short': field 'features'" in capsys.readouterr().err
    finally:
        queue.clear()
