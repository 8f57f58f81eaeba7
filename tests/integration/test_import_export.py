"""import-labels and export on the embedded default: in-process bus, a real redis-server, the real scorer and retrainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import redis
from sklearn.datasets import load_digits

from activestream.baseline import check_campaign, import_rows, in_order, read_baseline
from activestream.labeled_set import build_rows
from activestream.labeling.dispatcher import Dispatcher
from activestream.labeling.service import LabelService
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.retrainer.service import Retrainer
from activestream.schemas import Item, decode_item, decode_label
from activestream.scorer.service import Scorer
from activestream.scorer.strategies import Strategy
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

pytestmark = pytest.mark.integration


class Campaign:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.bus = InMemoryBus()
        self.topics = Topics("t")
        self.queue = RankedQueue(client, QueueKeys(namespace))
        self.scorer = Scorer(self.bus, self.queue, self.topics, strategy=Strategy("margin"), batch_size=256)
        self.retrainer = Retrainer(self.bus, self.topics, retrain_every=10, holdout_fraction=0.0)
        self.labeling = LabelService(self.queue, self.bus, self.topics, lease_ttl=60)

    def import_file(self, path: Path, *, control: bool = False) -> dict[str, int]:
        errors: list[str] = []
        b = read_baseline(path, id_column="id", label_columns=["label"], on_error=errors.append)
        assert not errors
        order = check_campaign(self.queue, b.feature_names, multilabel=b.multilabel, path=str(path))  # (as import-labels does)
        return import_rows(in_order(b.rows, order), self.bus, self.topics, self.queue, control=control)

    def snapshot(self) -> tuple[object, ...]:
        self.scorer.run(burst=True, timeout=0.0)
        self.retrainer.run(burst=True, timeout=0.0)
        return (len(self.retrainer.training), self.retrainer.training.digest(), self.queue.depth(), self.queue.n_labeled(),
                sorted(self.queue.pending_ids()), len(self.bus.messages(self.topics.labels)), len(self.bus.messages(self.topics.items)))


def write_csv(path: Path, X: np.ndarray, y: np.ndarray, ids: list[str]) -> None:
    lines = ["id," + ",".join(f"px{j}" for j in range(X.shape[1])) + ",label,note"]
    lines += [f"{i}," + ",".join(f"{v:g}" for v in x) + f",{int(t)},row {i}" for i, x, t in zip(ids, X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return d.data.astype(np.float32), d.target


def test_a_file_with_the_campaigns_columns_in_another_order_is_read_by_name(
    redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    # (the vectors went as the file's columns came: a second export with its columns reordered swapped the features)
    X, y = digits
    c = Campaign(redis_client, namespace)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    write_csv(first, X[:30], y[:30], [str(i) for i in range(30)])
    c.import_file(first)
    flipped = list(reversed(range(X.shape[1])))
    second.write_text("label,id," + ",".join(f"px{j}" for j in flipped) + "\n"
                      + "".join(f"{int(y[i])},{i}," + ",".join(f"{X[i, j]:g}" for j in flipped) + "\n" for i in range(30, 60)))
    c.import_file(second)
    # Named-field records, as produce takes them (import-labels refused them: "no numeric feature column"), keys in any order.
    named = tmp_path / "named.jsonl"
    named.write_text("".join(json.dumps({"id": str(i), "label": int(y[i]), "features": {f"px{j}": float(X[i, j]) for j in flipped}}) + "\n"
                             for i in range(60, 70)))
    c.import_file(named)
    labels = {lab.item_id: lab for lab in (decode_label(m.value) for m in c.bus.messages(c.topics.labels))}
    items = {it.id: it for it in (decode_item(m.value) for m in c.bus.messages(c.topics.items))}
    for i in (0, 30, 59, 60, 69):
        assert labels[str(i)].features.tolist() == X[i].tolist() == items[str(i)].features.tolist()
    assert c.queue.feature_names() == [f"px{j}" for j in range(X.shape[1])]


def test_import_takes_items_out_of_the_queue_produces_new_ones_and_a_second_import_changes_nothing(
    redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = digits
    c = Campaign(redis_client, namespace)
    for i in range(200):
        c.bus.publish(c.topics.items, Item(str(i), X[i], {"doc": f"item {i}"}).encode(binary=True), key=str(i).encode())
    assert c.scorer.run(burst=True, timeout=0.0) == 200 and c.queue.depth() == 200
    leased = [e.id for e in c.labeling.lease(5, "ann")]
    dispatcher = Dispatcher(c.queue, c.bus, c.topics, max_outstanding=5)
    assert dispatcher.dispatch() == 5 and c.queue.n_leased_by(dispatcher.owner) == 5
    dispatched = [m.key.decode() for m in c.bus.messages(c.topics.queue)]  # type: ignore[union-attr]
    # The file: 20 produced items (the 5 leased to ann and the 5 the dispatcher holds among them) and 10 the queue never met.
    held = leased + dispatched
    ids = held + [str(i) for i in range(100, 200) if str(i) not in held][:10] + [f"new{i}" for i in range(10)]
    rows = [int(i) if i.isdigit() else 1500 + int(i[3:]) for i in ids]
    path = tmp_path / "baseline.csv"
    write_csv(path, X[rows], y[rows], ids)

    assert c.import_file(path) == {"imported": 30, "produced": 10, "already": 0}
    assert all(c.queue.lease_holder(i) is None and c.queue.is_labeled(i) for i in leased + dispatched)  # out of the queue, whoever held it
    assert c.queue.n_leased_by(dispatcher.owner) == 0 and c.queue.n_leased_by("ann") == 0
    first = c.snapshot()
    assert first[0] == 30 and first[2] == 200 - 20 and first[3] == 30  # the 10 new items were not queued: labeled already
    new_items = [decode_item(m.value) for m in c.bus.messages(c.topics.items)[200:]]
    assert [it.id for it in new_items] == [f"new{i}" for i in range(10)] and new_items[0].metadata == {"note": "row new0"}
    assert np.allclose(new_items[0].features, X[1500])
    labels = [decode_label(m.value) for m in c.bus.messages(c.topics.labels)]
    assert {lab.source for lab in labels} == {"baseline"} and {lab.labeler_id for lab in labels} == {"baseline"}
    assert c.retrainer.training.count_by_source() == {"baseline": 30}
    assert c.retrainer.metrics.labels_by_source.labels(source="baseline")._value.get() == 30  # noqa: SLF001 - the counter's value

    # The same file again: the training set, the queue and the topics are as they were.
    assert c.import_file(path) == {"imported": 0, "produced": 0, "already": 30}
    assert c.snapshot() == first

    # The export: one row per labeled item (here: the baseline, and two human labels), with the items' metadata.
    for e in c.labeling.lease(2, "bob"):
        assert c.labeling.submit(e.id, labeler_id="bob", label=int(y[int(e.id)]), seconds=4.0)
    rows_out, counts = build_rows(c.bus, c.topics, with_features=True, feature_names=[f"px{j}" for j in range(64)], timeout=1.0)
    assert len(rows_out) == 32 and counts["baseline"] == 30 and counts["human"] == 2
    by_id = {r["item_id"]: r for r in rows_out}
    assert by_id[leased[0]]["doc"] == f"item {leased[0]}" and by_id["new3"]["note"] == "row new3" and by_id["new3"]["px5"] == float(X[1503, 5])
    human = [r for r in rows_out if r["source"] == "human"]
    assert all(r["labeler_ids"] == ["bob"] and r["seconds"] == 4.0 and r["model_version"] == c.queue.ranked_version() for r in human)
    # held_out: the items the retrainer keeps out of training (by id), for a model of one's own trained on the export
    from activestream.retrainer.training_set import in_holdout

    held = build_rows(c.bus, c.topics, with_features=False, timeout=1.0, holdout_fraction=0.5)[0]
    assert {r["held_out"] for r in held} == {True, False} and all(r["held_out"] == in_holdout(r["item_id"], 0.5) for r in held)
    assert not any(r["held_out"] for r in rows_out)  # (no hold-out: none)


def test_a_random_sample_imported_while_a_model_is_live_calibrates_as_control_labels(
    redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = digits
    c = Campaign(redis_client, namespace)
    for i in range(300):
        c.bus.publish(c.topics.items, Item(str(i), X[i]).encode(binary=True), key=str(i).encode())
    c.scorer.run(burst=True, timeout=0.0)
    for e in c.labeling.lease(60, "ann"):
        c.labeling.submit(e.id, labeler_id="ann", label=int(y[int(e.id)]))
    c.retrainer.run(burst=True, timeout=0.0)
    assert c.retrainer.version >= 1 and not c.retrainer.campaign.control_correct
    sample = [str(i) for i in np.random.default_rng(0).choice(np.arange(300, 1797), 40, replace=False)]
    path = tmp_path / "sample.csv"
    write_csv(path, X[[int(i) for i in sample]], y[[int(i) for i in sample]], sample)
    assert c.import_file(path, control=True)["imported"] == 40
    c.retrainer.run(burst=True, timeout=0.0)
    # Each was scored by the live model before it trained on them: 40 (confidence, correct) pairs.
    assert len(c.retrainer.campaign.control_correct) == 40 and c.retrainer.published[-1].metrics["n_control"] == 40
    assert c.retrainer.published[-1].metrics["n_labels_baseline"] == 40 and c.retrainer.published[-1].metrics["n_labels_human"] == 60


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_import_labels_and_export_refuse_bad_input_in_one_line_before_connecting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from activestream.cli import main

    missing = tmp_path / "nope.csv"
    assert main(["import-labels", str(missing), "--label-column", "label"]) == 2
    assert _one_error_line(capsys) == f"error: {missing}: no such file"
    path = tmp_path / "b.csv"
    path.write_text("id,f0,label\na,1,x\n")
    assert main(["import-labels", str(path), "--label-column", "lable"]) == 2
    assert _one_error_line(capsys) == f"error: {path}: --label-column 'lable': no such column (did you mean 'label'?)"
    assert main(["import-labels", str(path), "--label-column", "label", "--id-column", "key"]) == 2
    assert _one_error_line(capsys) == f"error: {path}: --id-column 'key': no such column (columns: id, f0, label)"
    assert main(["export", "--out", str(tmp_path / "out.xlsx")]) == 2
    assert _one_error_line(capsys) == f"error: --out {tmp_path / 'out.xlsx'}: unsupported format .xlsx; use .parquet, .csv, .jsonl"
    for command in ("import-labels", "export"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert f"usage: activestream {command}" in capsys.readouterr().out


def test_a_label_of_the_other_type_is_a_bad_row_and_a_convertible_one_is_converted(
    redis_client: redis.Redis, namespace: str, tmp_path: Path
) -> None:
    c = Campaign(redis_client, namespace)
    c.queue.add(["q"], np.array([0.5]), np.ones((1, 2), dtype=np.float32))
    assert c.labeling.submit("q", labeler_id="ann", label=3)  # the campaign's labels are integers
    path = tmp_path / "b.jsonl"
    path.write_text('{"id": "a", "f0": 1, "f1": 2, "label": "4"}\n{"id": "b", "f0": 1, "f1": 2, "label": "cat"}\n')
    errors: list[str] = []
    b = read_baseline(path, id_column="id", label_columns=["label"], on_error=errors.append)
    counts = import_rows(b.rows, c.bus, c.topics, c.queue, path=str(path), on_error=errors.append)
    assert counts["imported"] == 1 and errors == [f"{path}: row 2: item 'b': label: this campaign's labels are integers; got ['cat']"]
    c.retrainer.run(burst=True, timeout=0.0)
    assert c.retrainer.training.items["a"].label == 4 and not c.bus.messages(c.topics.dead_letters)


def test_declared_classes_make_an_unknown_label_a_bad_row_at_import_and_a_dead_letter_at_the_retrainer(
    tmp_path: Path, redis_client: redis.Redis, namespace: str
) -> None:
    """ACTIVESTREAM_CLASSES: import-labels names the row; a label that reaches the topic another way is dead-lettered."""
    from activestream.schemas import Label, decode_dead_letter

    c = Campaign(redis_client, namespace)
    path = tmp_path / "wine.csv"
    path.write_text("id,f0,f1,label\nw1,1,2,barolo\nw2,3,4,merlot\nw3,5,6,barbera\n")
    errors: list[str] = []
    b = read_baseline(path, id_column="id", label_columns=["label"], on_error=errors.append)
    counts = import_rows(b.rows, c.bus, c.topics, c.queue, path=str(path), on_error=errors.append, classes=("barbera", "barolo"))
    assert counts["imported"] == 2 and errors == [
        f"{path}: row 2: item 'w2': label: 'merlot' is not one of this campaign's classes (barbera, barolo; ACTIVESTREAM_CLASSES)"]
    retrainer = Retrainer(c.bus, c.topics, retrain_every=10, holdout_fraction=0.0, classes=("barbera", "barolo"))
    stray = Label("w9", "L9", "ann", label="Barolo", features=np.zeros(2, dtype=np.float32))
    c.bus.publish(c.topics.labels, stray.encode(), key=b"w9")
    # One from another tool: no ts, features as a list (encoded again it would be other bytes).
    c.bus.publish(c.topics.labels, b'{"schema": "label.v1", "item_id": "w8", "label_id": "L8", "labeler_id": "ann", "label": "merlot", '
                                   b'"features": [0, 0]}', key=b"w8")
    retrainer.run(burst=True, timeout=0.0)
    assert len(retrainer.training) == 2  # the two imported labels, not the stray ones
    dead = [decode_dead_letter(m.value) for m in c.bus.messages(c.topics.dead_letters)]
    assert [d.item_id for d in dead] == ["w9", "w8"] and "'Barolo' is not one of this campaign's classes" in dead[0].reason
    rows, counts = build_rows(c.bus, c.topics, with_features=False, timeout=1.0)
    assert sorted(r["item_id"] for r in rows) == ["w1", "w3"] and counts["refused"] == 2  # (what the model never trained on)
