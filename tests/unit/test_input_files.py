"""Reading user files (``simulate``'s datasets, ``produce``'s items): bad files are named errors, good ones still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activestream.simulation.datasets import DatasetError, load


def iris_like(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of 3 features and a 0/1/2 class that follows them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)


def test_a_corrupt_npz_names_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"garbage\.npz: not an NPZ archive"):
        load(garbage, ["y"])
    X, y = iris_like()
    good = tmp_path / "good.npz"
    np.savez(good, X=X, y=y)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])  # a truncated download
    with pytest.raises(DatasetError, match=r"cut\.npz: cannot be read"):
        load(cut, ["y"])


@pytest.mark.parametrize("name", ["X", "y"])
def test_an_object_array_in_an_npz_names_the_file_and_the_array(tmp_path: Path, name: str) -> None:
    X, y = iris_like()
    arrays = {"X": X, "y": y}
    arrays[name] = arrays[name].astype(object)
    path = tmp_path / "obj.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=rf"obj\.npz: array '{name}': holds Python objects \(dtype object\), which are not read"):
        load(path, ["y"])


def test_yes_no_multilabel_columns_are_refused_as_not_0_1(tmp_path: Path) -> None:
    X, y = iris_like()
    path = tmp_path / "yesno.csv"
    rows = [f"{a:.4f},{b:.4f},{'yes' if c else 'no'},{'yes' if c == 2 else 'no'}" for (a, b, _), c in zip(X, y, strict=True)]
    path.write_text("f0,f1,tag_a,tag_b\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"yesno\.csv: multi-label column 'tag_a': must hold only 0/1 \(found '(yes|no)'\)"):
        load(path, ["tag_"])


def test_duplicate_column_names_are_refused_by_simulate_and_produce(tmp_path: Path) -> None:
    from activestream.producer import read_items

    path = tmp_path / "dup.csv"
    path.write_text("a,a,b,label\n" + "".join(f"{i},{-i},{i % 3},{i % 2}\n" for i in range(30)))
    with pytest.raises(DatasetError, match=r"dup\.csv: column 'a' appears 2 times in the header"):
        load(path, ["label"])
    with pytest.raises(ValueError, match=r"dup\.csv: column 'a' appears 2 times in the header"):
        list(read_items(path, exclude=["label"]))


def test_a_parquet_column_of_label_lists_is_multilabel_with_one_label_per_value(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, _ = iris_like()
    rng = np.random.default_rng(1)
    tags = [[t for t in "cab" if rng.random() < 0.4] for _ in range(len(X))]
    path = tmp_path / "tags.parquet"
    pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "tags": tags}), path)
    ds = load(path, ["tags"])
    assert ds.task == "multilabel" and ds.classes == ("a", "b", "c")  # was multiclass: each combination a class
    assert ds.label_values(range(len(X))) == [tuple(sorted(t)) for t in tags]
    pq.write_table(pa.table({"f0": X[:, 0], "tags": [[*t, None] if i == 4 else t for i, t in enumerate(tags)]}), path)
    with pytest.raises(DatasetError, match=r"tags\.parquet: column 'tags': row 5: a missing value inside a label list"):
        load(path, ["tags"])


def test_simulate_and_produce_take_the_same_feature_columns_and_name_the_ones_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from activestream.producer import read_items

    X, y = iris_like(40)
    path = tmp_path / "mixed.csv"
    rows = [f"{i},{a:.4f},{'true' if b > 0 else 'false'},note {i},{c:.4f},{k}" for i, ((a, b, c), k) in enumerate(zip(X, y, strict=True))]
    path.write_text("id,a,flag,txt,c,label\n" + "\n".join(rows) + "\n")
    ds = load(path, ["label"])
    produced = np.array([features for _, features, _ in read_items(path, exclude=["label"])])
    assert ds.X.shape == (40, 3) and np.array_equal(produced, ds.X)  # a, flag (a bool is a feature in both), c
    left_out = f"{path}: column(s) 'txt' (string) are not numeric: left out of the features"
    assert caplog.messages.count(left_out) == 2  # once for each
    # produce sends such a column with each item as its metadata (the labelers see it; Label Studio's --data-field);
    # an excluded column goes nowhere, and the id is the item's id.
    assert [md for _, _, md in read_items(path, exclude=["label"])][:2] == [{"txt": "note 0"}, {"txt": "note 1"}]
    assert f"{path}: column(s) 'txt' go with each item as its metadata, which labelers see (--exclude one to send it nowhere)" in caplog.messages
    text_labels = tmp_path / "text_labels.csv"  # (a text answer column not excluded: labelers would label by it)
    text_labels.write_text("a,label\n1,cat\n2,dog\n")
    list(read_items(text_labels))
    assert f"{text_labels}: column(s) 'label' go with each item as its metadata, which labelers see ('label': the answer? --exclude it)" in caplog.messages


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", "", "cannot be read: Empty CSV file"),
        # (an ops audit: "cannot be read: CSV parse error: Expected 66 columns, got 40: bad5,0.0,..." named no line)
        ("ragged.csv", "a,b\n1,2\n3\n1,2,3\n", "line 3: 1 fields where the header has 2 ('3'; 2 such line(s)): the file is refused"),
        ("items.npz", "a,b\n1,2\n", "unsupported file type; use .csv, .csv.gz, .csv.bz2, .csv.zst, .csv.lz4, .parquet, .pq, .jsonl, .ndjson"),
        ("items.json", '{"id": 1}', "unsupported file type; use .csv, .csv.gz, .csv.bz2, .csv.zst, .csv.lz4, .parquet, .pq, .jsonl, .ndjson"),
        ("fake.parquet", "a,b\n1,2\n", "cannot be read: "),
    ],
)
def test_produce_names_the_file_in_every_file_error(tmp_path: Path, name: str, content: str, reason: str) -> None:
    from activestream.producer import read_items

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError) as caught:
        list(read_items(path))
    assert str(caught.value).startswith(f"{path}: {reason}")


def test_produce_reads_an_upper_case_extension(tmp_path: Path) -> None:
    from activestream.producer import read_items

    path = tmp_path / "ITEMS.CSV"
    path.write_text("id,a,b\nx,1,2\n")
    assert [r[0] for r in read_items(path)] == ["x"]
    X, y = iris_like()
    with (tmp_path / "D.NPZ").open("wb") as fh:  # (np.savez would add .npz)
        np.savez(fh, X=X, y=y)
    assert load(tmp_path / "D.NPZ", ["y"]).X.shape == (60, 3)


def test_an_excluded_or_id_column_given_but_absent_is_refused_with_close_matches(tmp_path: Path) -> None:
    from activestream.producer import read_items

    X, y = iris_like()
    path = tmp_path / "items.csv"
    path.write_text("id,a,b,Label\n" + "".join(f"{i},{a:.4f},{b:.4f},{k}\n" for i, ((a, b, _), k) in enumerate(zip(X, y, strict=True))))
    # A typo would have left the label among the features.
    with pytest.raises(DatasetError, match=r"items\.csv: --exclude 'lable': no such column \(did you mean 'Label'\?\)"):
        list(read_items(path, exclude=["lable"]))
    with pytest.raises(DatasetError, match=r"items\.csv: --id-column 'ID': no such column \(did you mean 'id'\?\)"):
        list(read_items(path, id_column="ID", id_required=True, exclude=["Label"]))
    with pytest.raises(DatasetError, match=r"items\.csv: --exclude 'zzz': no such column \(columns: id, a, b, Label\)"):
        load(path, ["Label"], exclude=["zzz"])
    with pytest.raises(DatasetError, match=r"items\.csv: --id-column 'ID': no such column \(did you mean 'id'\?\)"):
        load(path, ["Label"], id_column="ID", id_required=True)
    assert load(path, ["Label"], exclude=["b"]).X.shape == (60, 1)  # a; the default id column is left out
    no_id = tmp_path / "no_id.csv"
    no_id.write_text("a,b,Label\n" + "".join(f"{a:.4f},{b:.4f},{k}\n" for (a, b, _), k in zip(X, y, strict=True)))
    assert load(no_id, ["Label"]).X.shape == (60, 2)  # the default id column may be absent
    assert [r[0] for r in read_items(no_id, exclude=["Label"])][:2] == [None, None]


def test_produce_reads_ids_as_text_and_reports_a_row_without_one(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from activestream.producer import read_items

    csv = tmp_path / "items.csv"
    csv.write_text("id,a,b\n001,1,2\n,3,4\n002,5,6\n")
    problems: list[str] = []
    assert [r[0] for r in read_items(csv, on_error=problems.append)] == ["001", "002"]  # leading zeros kept (was "1", "2")
    assert problems == [f"{csv}: row 2: no id in column 'id'"]  # (was published as the id "None")
    with pytest.raises(ValueError, match=r"items\.csv: row 2: no id in column 'id'"):
        list(read_items(csv))
    table = tmp_path / "items.parquet"
    pq.write_table(pa.table({"id": [7, None, 9], "a": [1.0, 2.0, 3.0]}), table)
    problems.clear()
    assert [r[0] for r in read_items(table, on_error=problems.append)] == ["7", "9"]
    assert problems == [f"{table}: row 2: no id in column 'id'"]
    jsonl = tmp_path / "items.jsonl"
    lines = ['{"id": "001", "features": [1]}', '{"id": null, "features": [2]}', '{"id": "", "features": [3]}',
             '{"features": [4]}', '{"id": 5, "features": [5]}', '{"id": [6], "features": [6]}']
    jsonl.write_text("\n".join(lines) + "\n")
    problems.clear()
    # (a line without the field, after a first item with one, is refused: a labeler audit's misspelt "ID" got a row id)
    assert [r[0] for r in read_items(jsonl, on_error=problems.append)] == ["001", "5"]
    assert problems == [f"{jsonl}:2: no id in field 'id'", f"{jsonl}:3: no id in field 'id'",
                        f"{jsonl}:4: no field 'id' (the file's first item has one: every item needs its id)",
                        f"{jsonl}:6: field 'id': expected a string or a number, got list"]
    # A file whose first item has no id field: row-number ids (None here: no --id-prefix), the others' own.
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"features": [1]}\n{"id": "b", "features": [2]}\n{"features": [3]}\n')
    assert [r[0] for r in read_items(mixed)] == [None, "b", None]
    assert [(r[0], r[3]) for r in read_items(mixed, id_prefix="row-", where=True)] == [("row-0", f"{mixed}:1"), ("b", f"{mixed}:2"),
                                                                                       ("row-2", f"{mixed}:3")]
    problems.clear()
    assert [r[0] for r in read_items(jsonl, id_column="id", id_required=True, on_error=problems.append)] == ["001", "5"]
    assert f"{jsonl}:4: no field 'id'" in problems  # a field the user named must be there


def test_a_jsonl_line_that_is_not_utf8_is_reported_and_skipped(tmp_path: Path) -> None:
    from activestream.producer import read_items

    path = tmp_path / "items.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "features": [1]}\n{"id": "caf\xe9", "features": [2]}\n{"id": "c", "features": [3]}\n')
    problems: list[str] = []
    assert [r[0] for r in read_items(path, on_error=problems.append)] == ["a", "c"]  # (was: the whole run aborted)
    assert problems == [f"{path}:2: not UTF-8 text: invalid continuation byte at byte 12 of the line"]


def test_multilabel_columns_that_are_all_zero_are_refused_when_loaded(tmp_path: Path) -> None:
    X, _ = iris_like()
    path = tmp_path / "zeros.csv"
    path.write_text("f0,f1,tag_a,tag_b\n" + "".join(f"{a:.4f},{b:.4f},0,0\n" for a, b, _ in X))
    with pytest.raises(DatasetError, match=r"zeros\.csv: multi-label classes 'a', 'b': every value is 0"):
        load(path, ["tag_"])  # (was: "no positive label in any label set yet", after the campaigns had started)


def test_inputs_a_review_found_refused_after_the_rework_still_load(tmp_path: Path) -> None:
    import bz2

    import pyarrow as pa
    import pyarrow.parquet as pq

    from activestream.producer import read_items

    # A 64-bit timestamp column is a feature (rounded to float64, as numpy does), not an error.
    big = tmp_path / "big.csv"
    big.write_text("ts_ns,f0,label\n" + "".join(f"{1700000000123456789 + i * 1000003},{i % 7},{i % 2}\n" for i in range(40)))
    ds = load(big, ["label"])
    assert ds.X.shape == (40, 2) and float(ds.X[0, 0]) == pytest.approx(1.7e18, rel=1e-6)
    # Ids that read like CSV nulls are ids (NA is Namibia); an empty one is missing; so is a float NaN id.
    countries = tmp_path / "countries.csv"
    countries.write_text("id,f0\nUS,1\nNA,2\nnan,3\nNULL,4\n,5\n\nDE,6\n")
    problems: list[str] = []
    assert [r[0] for r in read_items(countries, on_error=problems.append)] == ["US", "NA", "nan", "NULL", "DE"]
    assert problems == [f"{countries}: row 5: no id in column 'id'"]  # (rows, not lines: the blank line does not count)
    nan_ids = tmp_path / "nan_ids.parquet"
    pq.write_table(pa.table({"id": [1.5, float("nan")], "a": [1.0, 2.0]}), nan_ids)
    problems.clear()
    assert [r[0] for r in read_items(nan_ids, on_error=problems.append)] == ["1.5"] and problems == [f"{nan_ids}: row 2: no id in column 'id'"]
    # ... while an NA label is still a missing label, not a class named "NA".
    na_label = tmp_path / "na_label.csv"
    na_label.write_text("f0,label\n" + "".join(f"{i},{'NA' if i % 5 == 0 else 'ab'[i % 2]}\n" for i in range(30)))
    assert load(na_label, ["label"]).classes == ("a", "b")
    latin1 = tmp_path / "latin1.csv"  # (not UTF-8: pyarrow reads the column as binary)
    latin1.write_bytes(b"f0,label\n" + b"".join(b"%d,%s\n" % (i, [b"caf\xe9", b"NA", b"", b"th\xe9"][i % 4]) for i in range(80)))
    assert len(load(latin1, ["label"]).X) == 40
    # Compressed CSV besides .gz, by extension.
    packed = tmp_path / "big.csv.bz2"
    packed.write_bytes(bz2.compress(big.read_bytes()))
    assert load(packed, ["label"]).X.shape == (40, 2)
    # Booleans in a label list are named as a bool label column's are, and the labeling service takes them.
    flags = tmp_path / "flags.parquet"
    pq.write_table(pa.table({"f0": np.arange(30) / 30, "tags": [[True], [False, True], [False]] * 10}), flags)
    assert load(flags, ["tags"]).classes == ("False", "True")
    # Floats in a label list are named as in a label column (1.0 is the class 1); a NaN in one is missing.
    floats = tmp_path / "floats.parquet"
    pq.write_table(pa.table({"f0": np.arange(30) / 30, "tags": [[1.0], [2.0, 1.0], [2.5]] * 10}), floats)
    assert load(floats, ["tags"]).classes == (1, 2, "2.5")
    pq.write_table(pa.table({"f0": np.arange(30) / 30, "tags": [[1.0], [float("nan")], [2.0]] * 10}), floats)
    with pytest.raises(DatasetError, match="row 2: a missing value inside a label list"):
        load(floats, ["tags"])


def test_produce_sends_a_jsonl_items_features_b64(tmp_path: Path) -> None:
    import base64
    import json

    from activestream.producer import read_items

    x = np.array([0.5, -2.0, 3.25], dtype="<f4")
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"id": "a", "features_b64": base64.b64encode(x.tobytes()).decode()}) + "\n"
                    + json.dumps({"id": "b", "features_b64": "not base64!"}) + "\n")
    problems: list[str] = []
    rows = list(read_items(path, on_error=problems.append))
    assert [r[0] for r in rows] == ["a"] and np.array_equal(rows[0][1], x)  # (was sent as "features": null)
    assert problems == [f"{path}:2: field 'features_b64': not valid base64"]


def test_a_number_column_with_a_bad_cell_stays_a_feature_and_the_row_is_refused_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One typo (``high`` among magnesium values) or an empty cell costs its row, named, in produce and simulate alike:
    not the whole column (the campaign would then get one feature fewer than the model) and not a silent median."""
    from activestream.producer import read_items

    X, y = iris_like(40)
    cells = [[f"{v:.4f}" for v in row] for row in X]
    cells[4][1], cells[9][2] = "high", ""
    path = tmp_path / "typo.csv"
    path.write_text("id,a,magnesium,c,label\n" + "".join(f"w{i},{','.join(r)},{k}\n" for i, (r, k) in enumerate(zip(cells, y, strict=True))))
    problems: list[str] = []
    rows = list(read_items(path, exclude=["label"], on_error=problems.append))
    assert problems == [f"{path}: row 5: item 'w4': column 'magnesium': not a finite number ('high')",
                        f"{path}: row 10: item 'w9': column 'c': no value"]
    assert [r[0] for r in rows] == [f"w{i}" for i in range(40) if i not in (4, 9)] and all(r[1].shape == (3,) for r in rows)
    ds = load(path, ["label"])
    assert ds.X.shape == (38, 3)  # the same rows, the same three features
    assert np.array_equal(ds.X, np.array([r[1] for r in rows]))
    assert any("2 row(s) left out" in m and "row 5: column 'magnesium': not a finite number ('high')" in m for m in caplog.messages)
    # A Parquet text column of numbers only (a zip code) was typed so on purpose: left out, as before.
    import pyarrow as pa
    import pyarrow.parquet as pq

    zips = tmp_path / "zips.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "zip": ["02134", "10001"]}), zips)
    assert [r[1].tolist() for r in read_items(zips)] == [[1.0], [2.0]]


def test_row_number_ids_stay_the_rows_places_when_rows_before_them_are_refused(tmp_path: Path) -> None:
    from activestream.producer import read_items

    path = tmp_path / "noid.csv"
    path.write_text("a,b\n1,2\nx,3\n4,5\n6,7\n")
    problems: list[str] = []
    assert [r[0] for r in read_items(path, on_error=problems.append, id_prefix="row-")] == ["row-0", "row-2", "row-3"]
    assert problems == [f"{path}: row 2: column 'a': not a finite number ('x')"]
    jsonl = tmp_path / "noid.jsonl"
    jsonl.write_text('{"features": [1]}\nnot json\n\n{"features": [2]}\n')
    assert [r[0] for r in read_items(jsonl, on_error=problems.append, id_prefix="row-")] == ["row-0", "row-2"]


def test_produce_refuses_a_table_of_another_width_than_the_campaign_and_says_which_columns(tmp_path: Path) -> None:
    from activestream.producer import read_items
    from activestream.tables import width_mismatch

    path = tmp_path / "fewer.csv"
    path.write_text("id,a,b\nx,1,2\n")
    with pytest.raises(DatasetError, match=r"fewer\.csv: 2 feature column\(s\) \(a, b\), but this campaign's items have 3 features; "
                                           r"the file lacks 1 of them"):
        list(read_items(path, n_features=3))
    assert width_mismatch(["a", "b"], 3, ["a", "b", "c"]).endswith("the file lacks c")
    assert width_mismatch(["a", "b", "label", "c"], 3, ["a", "b", "c"]).endswith("leave out label with --exclude")
    assert width_mismatch(["a", "b", "label", "c"], 3).endswith("leave the 1 column(s) that are not features out with --exclude")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_missing_file_and_a_header_without_rows_are_one_line_each(tmp_path: Path, suffix: str) -> None:
    from activestream.producer import read_items

    with pytest.raises(DatasetError, match=rf"nofile{suffix}: no such file"):
        list(read_items(tmp_path / f"nofile{suffix}"))
    header = tmp_path / "header_only.csv"
    header.write_text("id,a,b,label\n")
    with pytest.raises(DatasetError, match=r"header_only\.csv: no rows \(a header only\)"):
        list(read_items(header))
    with pytest.raises(DatasetError, match=r"header_only\.csv: no rows \(a header only\)"):
        load(header, ["label"])


def test_produce_checks_a_jsonl_item_with_the_scorers_decoder() -> None:
    from activestream.producer import checked_payload, encode_row

    good, short, bad = (encode_row(i, f, {}) for i, f in (("a", [1.0, 2.0, 3.0]), ("b", [1.0, 2.0]), ("c", [1.0, "x", 3.0])))
    assert checked_payload(good, "a", None, None) == (None, 3)  # the first good row sets the width
    assert checked_payload(short, "b", 3, None) == ("item 'b': field 'features': expected 3 values, got 2", 3)
    problem, width = checked_payload(bad, "c", 3, None)
    assert problem is not None and problem.startswith("item 'c': field 'features") and width == 3


def test_a_mistyped_label_column_names_the_closest_one_among_many(tmp_path: Path) -> None:
    """Among 31 columns, 'lable' points at 'label' (the list of the first 20 left it out)."""
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"f{j}" for j in range(30)) + ",label\n" + "".join(",".join(["1"] * 30) + f",{i % 2}\n" for i in range(30)))
    with pytest.raises(DatasetError, match=r"--label-column 'lable': no such column \(did you mean 'label'\?\)"):
        load(path, ["lable"])


def test_produce_raw_sends_a_jsonl_lines_numbers_in_the_raw_layout() -> None:
    # (--raw of a JSONL file sent JSON: its features are a list, not the array a table's row is)
    from activestream.producer import encode_row
    from activestream.schemas import RAW_ITEM_MAGIC, decode_item

    payload = encode_row("a", [1, 2.5, -3.0], {}, raw=True)
    assert payload.startswith(RAW_ITEM_MAGIC)
    item = decode_item(payload)
    assert item.id == "a" and item.features.tolist() == [1.0, 2.5, -3.0]
    # what the scorer would refuse, or the raw layout cannot carry, goes as given (the check names the bad value)
    for features, metadata in (([1.0, "2", 3.0], {}), ([1.0, True], {}), ([1.0, 1e39], {}), ([1, 10**400], {}), ([], {}), ([1.0, 2.0], {"t": "x"})):
        assert not encode_row("b", features, metadata, raw=True).startswith(RAW_ITEM_MAGIC), features
    assert not encode_row("c", [1.0, 2.0], {}).startswith(RAW_ITEM_MAGIC)  # (not asked for: JSON, as other consumers read)


def test_a_prefix_over_one_column_is_one_tag_not_a_class_column(tmp_path: Path) -> None:
    # (a multi-label audit: --label-column tag_ over only tag_even gave a 2-class task of 0 and 1)
    from activestream.simulation.datasets import load

    p = tmp_path / "one.csv"
    p.write_text("x,tag_even\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    ds = load(p, ["tag_"])
    assert ds.task == "multilabel" and ds.classes == ("even",) and ds.y.shape == (40, 1)
    assert load(p, ["tag_even"]).task == "multiclass"  # (the column named exactly: its values are the classes)


def test_exclude_takes_a_prefix_as_label_column_does(tmp_path: Path) -> None:
    # (a multi-label audit: `produce --exclude tag_` was refused, and without it the 0/1 truth columns went as features)
    from activestream.producer import read_items
    from activestream.simulation.datasets import DatasetError

    p = tmp_path / "tags.csv"
    p.write_text("id,x,y,tag_cat,tag_dog\na,1,2,1,0\nb,3,4,0,1\n")
    rows = list(read_items(p, exclude=["tag_"]))
    assert [(r[0], list(r[1])) for r in rows] == [("a", [1.0, 2.0]), ("b", [3.0, 4.0])] and rows[0][2] == {}
    with pytest.raises(DatasetError, match="--exclude 'zz_': no such column"):
        list(read_items(p, exclude=["zz_"]))


def test_a_value_past_float32_is_reported_with_its_row_without_a_numpy_warning(tmp_path: Path) -> None:
    import warnings

    from activestream.producer import read_items

    p = tmp_path / "big.csv"
    p.write_text("id,a\nx,1e39\ny,2\n")
    problems: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (it printed "RuntimeWarning: overflow encountered in cast" before the message)
        assert [r[0] for r in read_items(p, on_error=problems.append)] == ["y"]
    assert len(problems) == 1 and problems[0].startswith(f"{p}: row 1: item 'x': column 'a'"), problems
