"""Baseline files (import-labels) and the labeled-set export: reading, label ids, folding, writing (pure)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activestream.baseline import label_id_for, read_baseline
from activestream.labeled_set import build_rows, fold, row_of, write_rows
from activestream.schemas import Label
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics
from activestream.tables import DatasetError


def _read(path: Path, labels: list[str], **kw: object) -> tuple[object, list[str]]:
    errors: list[str] = []
    b = read_baseline(path, id_column="id", label_columns=labels, on_error=errors.append, **kw)  # type: ignore[arg-type]
    return b, errors


def test_csv_gz_rows_features_metadata_and_bad_rows(tmp_path: Path) -> None:
    p = tmp_path / "b.csv.gz"
    p.write_bytes(gzip.compress(b"id,f0,f1,label,text\na,1,2,cat,hello\nb,3,,dog,x\n,1,1,cat,y\nd,1,1,,z\n007,0.5,1,dog,w\n"))
    b, errors = _read(p, ["label"])
    rows = list(b.rows)  # type: ignore[attr-defined]
    assert b.feature_names == ("f0", "f1") and not b.multilabel  # type: ignore[attr-defined]
    assert [(r.row, r.item_id, r.label, r.metadata) for r in rows] == [(1, "a", "cat", {"text": "hello"}), (5, "007", "dog", {"text": "w"})]
    assert rows[0].features.tolist() == [1.0, 2.0] and rows[0].features.dtype == np.float32
    assert errors == [f"{p}: row 2: item 'b': column 'f1': feature is not a finite number (None)",
                      f"{p}: row 3: column 'id': no item id",
                      f"{p}: row 4: item 'd': column 'label': no label"]


def test_a_word_in_a_feature_column_is_a_bad_row_not_a_feature_dropped(tmp_path: Path) -> None:
    # Arrow reads the column as text because of one cell: it must stay a feature (a lost feature
    # would send labels of another width than the campaign's items), and that row is the problem.
    for name, text in (("b.csv", "id,f0,f1,label\na,1,2,x\nb,oops,3,y\nc,4,5,x\n"),
                       ("b.jsonl", '{"id": "a", "f0": 1, "f1": 2, "label": "x"}\n{"id": "b", "f0": "oops", "f1": 3, "label": "y"}\n'
                                   '{"id": "c", "f0": 4, "f1": 5, "label": "x"}\n')):
        p = tmp_path / name
        p.write_text(text)
        b, errors = _read(p, ["label"])
        rows = list(b.rows)  # type: ignore[attr-defined]
        assert b.feature_names == ("f0", "f1") and [r.item_id for r in rows] == ["a", "c"]  # type: ignore[attr-defined]
        assert errors == [f"{p}: row 2: item 'b': column 'f0': feature is not a finite number ('oops')"]


def test_multilabel_by_prefix_from_parquet_and_by_list_column(tmp_path: Path) -> None:
    p = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0], "tag_a": [1, 0, 2], "tag_b": [1, 1, 0]}), p)
    b, errors = _read(p, ["tag_"])
    rows = list(b.rows)  # type: ignore[attr-defined]
    # (a prefix's columns are classes by the rest of their names, as in simulate)
    assert b.multilabel and [(r.item_id, r.labels) for r in rows] == [("a", ("a", "b")), ("b", ("b",))]  # type: ignore[attr-defined]
    assert errors == [f"{p}: row 3: item 'c': column 'tag_a': a multi-label column must hold 0 or 1, got 2"]
    # (a multi-label audit: one bad cell made the column text, and its good "1.0" and "0" cells were refused too)
    t = tmp_path / "t.csv"
    t.write_text("id,x,tag_cat,tag_dog\nn1,1,2,0\nn2,2,yes,1\nn3,3,1.0,0\nn4,4,0,1\n")
    b, errors = _read(t, ["tag_"])
    assert [(r.item_id, r.labels) for r in b.rows] == [("n3", ("cat",)), ("n4", ("dog",))]  # type: ignore[attr-defined]
    assert [e.split(": ", 2)[1] for e in errors] == ["row 1", "row 2"]
    # (a prefix over a single column is one tag, not a 0/1 class column)
    one = tmp_path / "one.csv"
    one.write_text("id,x,tag_even\na,1,1\nb,2,0\n")
    b, errors = _read(one, ["tag_"])
    assert b.multilabel and [r.labels for r in b.rows] == [("even",), ()] and not errors  # type: ignore[attr-defined]
    q = tmp_path / "l.parquet"
    pq.write_table(pa.table({"id": ["a"], "x": [1.0], "tags": [["x", "y"]]}), q)
    b, errors = _read(q, ["tags"])
    assert [r.labels for r in b.rows] == [("x", "y")] and not errors and b.multilabel  # type: ignore[attr-defined]
    j = tmp_path / "l.jsonl"  # (one list column is a multi-label file in JSONL too)
    j.write_text('{"id": "a", "x": 1.0, "tags": ["x"]}\n{"id": "b", "x": 2.0, "tags": []}\n')
    b, errors = _read(j, ["tags"])
    assert [r.labels for r in b.rows] == [("x",), ()] and not errors and b.multilabel  # type: ignore[attr-defined]


def test_jsonl_bad_lines_are_reported_and_the_rest_read(tmp_path: Path) -> None:
    p = tmp_path / "b.jsonl"
    p.write_text('{"id": "a", "f0": 1, "f1": 2.5, "label": 3, "doc": "text a"}\nnot json\n[1]\n{"id": 4, "f0": 0, "f1": 1, "label": 1.0}\n')
    b, errors = _read(p, ["label"])
    rows = list(b.rows)  # type: ignore[attr-defined]
    assert [(r.item_id, r.label, r.features.tolist(), r.metadata) for r in rows] == [("a", 3, [1.0, 2.5], {"doc": "text a"}), ("4", 1, [0.0, 1.0], {})]
    assert len(errors) == 2 and errors[0].startswith(f"{p}: row 2: not a JSON object") and errors[1] == f"{p}: row 3: expected a JSON object, got list"


def test_jsonl_in_the_items_layout_takes_the_features_list_and_the_metadata(tmp_path: Path) -> None:
    p = tmp_path / "items.jsonl"
    p.write_text('{"schema": "item.v1", "id": "a", "features": [1, 2.5], "metadata": {"text": "doc a", "year": 2020}, "label": "x"}\n'
                 '{"id": "b", "features": [1, null], "label": "y"}\n')
    b, errors = _read(p, ["label"])
    rows = list(b.rows)  # type: ignore[attr-defined]
    assert b.feature_names == ("feature_0", "feature_1")  # type: ignore[attr-defined]  (a numeric metadata key is no feature)
    assert [(r.item_id, r.label, r.features.tolist(), r.metadata) for r in rows] == [("a", "x", [1.0, 2.5], {"text": "doc a", "year": 2020})]
    assert errors == [f"{p}: row 2: item 'b': column 'feature_1': feature is not a finite number (None)"]
    b, _ = _read(p, ["label"], feature_names=["u", "v"])  # named by ACTIVESTREAM_FEATURE_NAMES
    assert b.feature_names == ("u", "v") and next(iter(b.rows)).features.tolist() == [1.0, 2.5]  # type: ignore[attr-defined]


def test_jsonl_items_layout_a_bad_cell_or_a_short_list_costs_its_row_only(tmp_path: Path) -> None:
    """Every value of a ``features`` list is a feature, however few rows the file has; a list of another length than the
    file's others is that row's problem, named, not a feature count that refuses the whole file."""
    p = tmp_path / "two.jsonl"
    p.write_text('{"id": "a", "features": [1, 2, 3], "label": "x"}\n{"id": "b", "features": [1, "x", 3], "label": "y"}\n'
                 '{"id": "c", "features": [1, 2], "label": "y"}\n')
    b, errors = _read(p, ["label"])
    assert b.feature_names == ("feature_0", "feature_1", "feature_2")  # type: ignore[attr-defined]
    assert [r.item_id for r in b.rows] == ["a"]  # type: ignore[attr-defined]
    assert errors == [f"{p}: row 3: item 'c': field 'features': 2 values, where the file's other rows have 3",
                      f"{p}: row 2: item 'b': column 'feature_1': feature is not a finite number ('x')"]


def test_missing_file_and_missing_columns_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope.csv: no such file"):
        _read(tmp_path / "nope.csv", ["label"])
    p = tmp_path / "b.csv"
    p.write_text("id,f0,label\na,1,x\n")
    with pytest.raises(DatasetError, match=r"--label-column 'lable': no such column \(did you mean 'label'\?\)"):
        _read(p, ["lable"])
    (tmp_path / "noid.csv").write_text("key,f0,label\na,1,x\n")
    with pytest.raises(DatasetError, match=r"--id-column 'id': no such column"):
        _read(tmp_path / "noid.csv", ["label"])


def test_feature_names_setting_orders_the_features(tmp_path: Path) -> None:
    p = tmp_path / "b.csv"
    p.write_text("id,f0,f1,label\na,1,2,x\n")
    b, _ = _read(p, ["label"], feature_names=["f1", "f0"])
    assert [r.features.tolist() for r in b.rows] == [[2.0, 1.0]]  # type: ignore[attr-defined]
    with pytest.raises(DatasetError, match="'f9': no such column"):
        _read(p, ["label"], feature_names=["f9"])


def test_label_ids_are_deterministic_by_item_and_answer() -> None:
    assert label_id_for("a", 1, None) == label_id_for("a", 1, None)
    assert len({label_id_for("a", 1, None), label_id_for("a", "1", None), label_id_for("b", 1, None), label_id_for("a", None, ["1"])}) == 4
    assert label_id_for("a", None, ["x", "y"]) == label_id_for("a", None, ["y", "x"])  # a set: order does not matter


def _lab(item: str, lid: str, who: str, label: object, ts: float, source: str = "human", features: tuple[float, ...] = (1.0, 2.0),
         **kw: object) -> Label:
    return Label(item, lid, who, label=label, ts=ts, source=source, features=np.array(features, dtype=np.float32),
                 seconds=2.5 if source == "human" else 0.0, **kw)  # type: ignore[arg-type]


def test_fold_majority_updates_and_human_over_auto() -> None:
    labels = [
        _lab("a", "1", "ann", "cat", 1.0), _lab("a", "2", "bob", "dog", 2.0), _lab("a", "3", "cy", "dog", 3.0),
        _lab("a", "2", "bob", "dog", 2.0),  # a redelivery: once
        _lab("b", "4", "ann", "cat", 1.0), _lab("b", "5", "ann", "dog", 2.0),  # ann corrects herself: the later supersedes
        _lab("c", "6", "baseline", "cat", 1.0, source="baseline", control=True),
        _lab("c", "auto:c:v3", "auto:v3", "dog", 5.0, source="auto"),  # a human (baseline) label is final over auto
        _lab("d", "auto:d:v2", "auto:v2", "cat", 1.0, source="auto"), _lab("d", "auto:d:v4", "auto:v4", "dog", 2.0, source="auto",
                                                                          confidence=0.995, threshold=0.99),
        _lab("e", "7", "ann", "cat", 1.0), _lab("e", "8", "bob", "dog", 2.0),  # a tie: the latest
    ]
    rows = {item: row_of(item, entry) for item, entry in fold(labels).items()}
    assert list(rows) == ["a", "b", "c", "d", "e"]
    a = rows["a"]
    assert (a["label"], a["all_labels"], a["majority_votes"], a["labeler_ids"], a["label_ids"]) == ("dog", ["cat", "dog", "dog"], 2,
                                                                                                      ["ann", "bob", "cy"], ["1", "2", "3"])
    assert (rows["b"]["label"], rows["b"]["all_labels"]) == ("dog", ["dog"])
    assert rows["b"]["seconds"] == 2 * 2.5  # (the corrected answer's time was spent too)
    assert (rows["c"]["label"], rows["c"]["source"], rows["c"]["control"]) == ("cat", "baseline", True)
    d = rows["d"]
    assert (d["label"], d["source"], d["model_version"], d["auto_confidence"], d["auto_threshold"]) == ("dog", "auto", 4, 0.995, 0.99)
    assert rows["e"]["label"] == "dog" and rows["e"]["majority_votes"] == 1


def test_build_rows_joins_metadata_and_features_and_writes_every_format(tmp_path: Path) -> None:
    from activestream.schemas import Item

    bus, topics = InMemoryBus(), Topics("t")
    bus.publish(topics.items, Item("a", np.array([0.1, 2.0], dtype=np.float32), {"text": "doc a", "label": "not ours"}).encode(binary=True), key=b"a")
    bus.publish(topics.items, Item("z", np.array([0.0, 0.0], dtype=np.float32), {"text": "never labeled"}).encode(), key=b"z")
    bus.publish(topics.labels, _lab("a", "1", "ann", 3, 1.0, features=(0.1, 2.0), model_version=2).encode(), key=b"a")
    bus.publish(topics.labels, b"{broken", key=b"q")
    bus.publish(topics.auto_labels, _lab("b", "auto:b:v2", "auto:v2", 5, 1.0, source="auto").encode(), key=b"b")
    rows, counts = build_rows(bus, topics, with_features=True, feature_names=["x0", "x1"], timeout=1.0)
    assert [r["item_id"] for r in rows] == ["a", "b"] and counts["human"] == 1 and counts["auto"] == 1 and counts["undecodable"] == 1
    assert rows[0]["text"] == "doc a" and rows[0]["metadata.label"] == "not ours" and rows[0]["label"] == 3 and rows[0]["model_version"] == 2
    # (as the producer wrote them: 0.1, not float32's 0.10000000149011612)
    assert rows[0]["x0"] == 0.1 and rows[1]["x1"] == 2.0 and "text" not in rows[1]
    for suffix in (".parquet", ".csv", ".jsonl"):
        out = tmp_path / f"out{suffix}"
        write_rows(rows, out)
        if suffix == ".parquet":
            back = pq.read_table(out).to_pylist()
            assert back[0]["all_labels"] == [3] and back[0]["labeler_ids"] == ["ann"] and back[1]["text"] is None
        elif suffix == ".csv":
            lines = out.read_text().splitlines()
            assert len(lines) == 3 and '"[""ann""]"' in lines[1]
        else:
            assert [json.loads(line)["item_id"] for line in out.read_text().splitlines()] == ["a", "b"]
    with pytest.raises(ValueError, match="unsupported format .txt"):
        write_rows(rows, tmp_path / "out.txt")
    # Answers of both types (a terminal's 1 beside a page's "barolo") keep Parquet's list column a list, of text.
    mixed = [{"item_id": "a", "all_labels": [1, "barolo"]}, {"item_id": "b", "all_labels": ["barolo"]}]
    write_rows(mixed, tmp_path / "mixed.parquet")
    assert [r["all_labels"] for r in pq.read_table(tmp_path / "mixed.parquet").to_pylist()] == [["1", "barolo"], ["barolo"]]


def test_an_exported_csv_of_tag_sets_reads_back_into_simulate_and_import_labels(tmp_path: Path) -> None:
    # (export wrote the sets as JSON text, read back as one class per distinct text, and its own columns
    # (seconds, model_version, majority_votes, ...) became features: 17 instead of 12, rows dropped)
    from activestream.simulation.datasets import load

    rng = np.random.default_rng(0)
    tags = ["cat", "dog", "owl"]
    rows = []
    for i in range(40):
        labels = [t for t in tags if rng.random() < 0.4] or ["cat"]
        x = rng.normal(size=2)
        rows.append(row_of(f"i{i}", fold([Label(f"i{i}", f"L{i}", "ann", labels=tuple(labels), ts=1.0, seconds=3.0,
                                                features=x.astype(np.float32))])[f"i{i}"]) | {"f0": x[0], "f1": x[1]})
    rows[0]["model_version"] = None  # (a baseline row: no version)
    out = tmp_path / "export.csv"
    write_rows(rows, out)
    ds = load(out, ["label"], id_column="item_id")
    assert ds.task == "multilabel" and ds.classes == ("cat", "dog", "owl") and ds.X.shape == (40, 2)
    errors: list[str] = []
    back = read_baseline(out, id_column="item_id", label_columns=["label"], on_error=errors.append)
    got = list(back.rows)
    assert back.multilabel and back.feature_names == ("f0", "f1") and not errors
    assert [r.labels for r in got[:3]] == [tuple(r["label"]) for r in rows[:3]] and got[0].metadata == {}


def test_label_lists_as_text_that_mix_types_or_repeat_a_tag(tmp_path: Path) -> None:
    from activestream.simulation.datasets import load

    rng = np.random.default_rng(0)
    mixed = tmp_path / "mixed.csv"  # (a raw pyarrow ArrowInvalid traceback before)
    cells = ['"[1]"', '"[""cat""]"']  # (CSV-quoted JSON lists: [1] and ["cat"])
    mixed.write_text("f0,f1,label\n" + "".join(f"{rng.normal():.3f},{rng.normal():.3f},{cells[i % 2]}\n" for i in range(30)))
    with pytest.raises(DatasetError, match=r"column 'label': label lists mix numbers and text"):
        load(mixed, ["label"])
    twice = tmp_path / "twice.csv"
    twice.write_text('id,f0,label\na,1.0,"[""cat"", ""cat"", ""owl""]"\nb,2.0,"[""owl""]"\n')
    b, errors = _read(twice, ["label"])
    assert [r.labels for r in b.rows] == [("cat", "owl"), ("owl",)] and b.multilabel and not errors  # type: ignore[attr-defined]


def test_a_label_column_mixing_lists_and_single_labels_is_refused_by_both_readers(tmp_path: Path) -> None:
    # (import-labels took it as single-label and then published the list rows as label sets, fixing the wrong answer shape)
    from activestream.simulation.datasets import load

    onebad = tmp_path / "onebad.csv"
    onebad.write_text("id,f0,label\n" + "".join(f'r{i},{i}.0,"[""cat"", ""owl""]"\n' for i in range(25)) + "rx,9.0,dog\n")
    message = r"column 'label': 25 cell\(s\) are label lists and 1 single labels; give every row one or the other"
    with pytest.raises(DatasetError, match=message):
        load(onebad, ["label"])
    with pytest.raises(DatasetError, match=message):
        _read(onebad, ["label"])


def test_a_majority_of_label_sets_does_not_depend_on_the_order_the_tags_were_given_in() -> None:
    # (a multi-label audit: ("cat", "owl"), ("owl", "cat") and ("dog",) gave ["dog"] with 1 vote)
    answers = [Label("a", "1", "ann", labels=("cat", "owl"), ts=1.0), Label("a", "2", "bob", labels=("owl", "cat"), ts=2.0),
               Label("a", "3", "cy", labels=("dog",), ts=3.0)]
    entry = fold(answers)["a"]
    row = row_of("a", entry)
    assert row["majority_votes"] == 2 and sorted(row["label"]) == ["cat", "owl"]
