"""Labeled datasets for simulation: the bundled digits set, or a user's CSV / CSV.gz / Parquet / NPZ."""

from __future__ import annotations

import difflib
import logging
import math
import zipfile
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset that cannot be simulated, with the file, column and reason."""


@dataclass(frozen=True)
class Dataset:
    """Features and index-coded labels.

    Parameters
    ----------
    name : shown in reports.
    X : (n, n_features) float32.
    y : (n,) class indices into ``classes`` (multi-class) or (n, n_labels) 0/1 (multi-label).
    classes : class values (multi-class) or label names (multi-label).
    task : ``"multiclass"`` or ``"multilabel"``.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    classes: tuple[object, ...]
    task: str = "multiclass"

    def label_values(self, idx: Sequence[int] | np.ndarray) -> list[object]:
        """What a labeler would answer for rows ``idx``: a class, or a tuple of label names."""
        if self.task == "multilabel":
            return [tuple(self.classes[j] for j in np.flatnonzero(self.y[i])) for i in idx]
        return [self.classes[int(self.y[i])] for i in idx]


def _py(v: object) -> object:
    """numpy scalars -> JSON-friendly Python values (ints stay ints)."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return int(v) if float(v).is_integer() else str(v)
    return v if isinstance(v, int | str) else str(v)


def from_arrays(name: str, X: np.ndarray, y: np.ndarray) -> Dataset:
    """Build from features and labels: (n,) classes, or (n, n_labels) 0/1 for multi-label."""
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if y.ndim == 2:
        return Dataset(name, X, (y > 0).astype(np.int64), tuple(f"label_{j}" for j in range(y.shape[1])), "multilabel")
    classes, codes = np.unique(y, return_inverse=True)
    return Dataset(name, X, codes.astype(np.int64), tuple(_py(c) for c in classes), "multiclass")


def digits() -> Dataset:
    """scikit-learn's bundled handwritten digits (1,797 items, 64 features, 10 classes)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return from_arrays("sklearn digits", d.data, d.target)


TABLE_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.lz4", ".parquet", ".pq")
_CSV_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}


def load(
    path: str | Path, label_columns: Sequence[str], *, exclude: Sequence[str] = (), id_column: str | None = "id", id_required: bool = False
) -> Dataset:
    """Load a labeled file.

    Parameters
    ----------
    path : one of :data:`TABLE_SUFFIXES` (CSV, compressed or not; Parquet) or ``.npz``.
    label_columns : one column (multi-class); several 0/1 columns, one prefix shared by
        several columns, or one Parquet column of label lists (multi-label). For NPZ: the
        label array's name (default ``y``) and the features come from ``X``.
    exclude : columns that are not features; each must exist (a typo would leave a label
        column among the features).
    id_column : the row id column, left out of the features when present, as ``activestream
        produce`` does (a row id can leak the label); ``id_required``: it must exist.

    Raises
    ------
    DatasetError
        Naming the file, the column and the reason.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    if p.name.lower().endswith(".npz"):
        if exclude or id_required:  # (the features are the array X: nothing to leave out)
            raise DatasetError(f"{p}: --exclude and --id-column name table columns; an NPZ's features are its array 'X'")
        return _load_npz(p, label_columns)
    if not p.name.lower().endswith(TABLE_SUFFIXES):
        raise DatasetError(f"{p}: unknown format (use {', '.join(TABLE_SUFFIXES)} or .npz)")
    table = read_table(p)
    require_columns(p, table.column_names, "--exclude", exclude)
    if id_required and id_column is not None:
        require_columns(p, table.column_names, "--id-column", [id_column])
    return _from_table(p, table, label_columns, [*exclude, *([id_column] if id_column else [])])


def read_table(p: Path, *, text_columns: Sequence[str] = ()) -> pa.Table:
    """A CSV (plain or compressed) or Parquet file, by its extension in any case, as an Arrow table.

    ``text_columns`` are read as strings, not numbers (ids: ``001`` stays ``001``).

    Raises
    ------
    DatasetError
        Naming the file: empty, ragged, not really CSV / Parquet, or a column name repeated.
    """
    import pyarrow as pa

    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            table = pq.read_table(p)
        else:
            import pyarrow.csv as pacsv

            opts = pacsv.ConvertOptions(strings_can_be_null=False, column_types={c: pa.string() for c in text_columns})
            with pa.input_stream(str(p), compression=_CSV_COMPRESSION.get(p.suffix.lower())) as stream:
                table = pacsv.read_csv(stream, convert_options=opts)
            table = _nulls_in_strings(table, keep=text_columns, tokens=opts.null_values)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{p}: cannot be read: {exc}") from None
    check_unique_columns(p, table.column_names)
    return table


def _nulls_in_strings(table: pa.Table, keep: Collection[str], tokens: Sequence[str]) -> pa.Table:
    """CSV cells "", NA, NULL, ... of a string column (a label) as missing values, not a class named "NA".

    The ``keep`` columns (ids) keep them as text: NA is Namibia's code; an empty id is
    still missing (the producer checks).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    textual = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)  # (binary: not UTF-8)
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if name not in keep and any(is_type(col.type) for is_type in textual):
            null_tokens = pa.array(list(tokens), type=col.type)
            table = table.set_column(i, name, pc.if_else(pc.is_in(col, value_set=null_tokens), pa.scalar(None, col.type), col))
    return table


def require_columns(p: Path, columns: Sequence[str], flag: str, names: Iterable[str]) -> None:
    """Refuse a column named with ``flag`` that ``columns`` lacks, naming the closest ones (any case) as a hint."""
    by_lower: dict[str, list[str]] = {}
    for c in columns:
        by_lower.setdefault(c.lower(), []).append(c)
    for name in names:
        if name in columns:
            continue
        close = [c for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6) for c in by_lower[m]]
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"columns: {', '.join(columns[:20])}"
        raise DatasetError(f"{p}: {flag} {name!r}: no such column ({hint})")


def _is_numeric(typ: pa.DataType) -> bool:
    """Integer, floating point or boolean (a 0/1 feature)."""
    import pyarrow as pa

    return bool(pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ))


def feature_columns(p: Path, table: pa.Table, skip: Collection[str]) -> list[str]:
    """The feature columns of ``table``: every numeric or boolean column not in ``skip`` (labels, id, excluded).

    ``simulate`` and ``produce`` both choose features here, so a model trained in one sees
    the columns the other sends; one warning names the columns left out.
    """
    names, left_out = [], []
    for c in table.column_names:
        if c in skip:
            continue
        typ = table.column(c).type
        if _is_numeric(typ):
            names.append(c)
        else:
            left_out.append(f"{c!r} ({typ})")
    if left_out:
        log.warning("%s: column(s) %s are not numeric: left out of the features", p, ", ".join(left_out))
    return names


def feature_matrix(table: pa.Table, names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) float64 of those columns; booleans are 0/1 and a missing value is NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # safe=False: an int64 above 2**53 (a nanosecond timestamp, a hash) rounds, as numpy's conversion does
    return np.column_stack([np.asarray(pc.cast(table.column(c), pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)
                            for c in names])


def _npz_array(p: Path, data: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """Array ``key`` of an open NPZ; an object array (it would need pickle) or a damaged member names both."""
    try:
        return np.asarray(data[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
            raise DatasetError(f"{p}: array {key!r}: holds Python objects (dtype object), which are not read; save it as numbers or strings") from None
        raise DatasetError(f"{p}: array {key!r}: cannot be read: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{p}: array {key!r}: cannot be read: {exc}") from None


def _load_npz(p: Path, label_columns: Sequence[str]) -> Dataset:
    ykey = label_columns[0] if label_columns else "y"
    with p.open("rb") as fh:  # (our handle: np.load leaves its own open when the zip is damaged)
        if fh.read(2) != b"PK":  # a zip; else numpy takes it for a pickle and says so
            raise DatasetError(f"{p}: not an NPZ archive (np.savez writes one)")
        fh.seek(0)
        try:
            data = np.load(fh, allow_pickle=False)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{p}: cannot be read: {exc}") from None
        xkey = "X" if "X" in data else "features" if "features" in data else None
        if xkey is None:
            raise DatasetError(f"{p}: needs a feature array named 'X' (found {sorted(data.files)})")
        if ykey not in data:
            raise DatasetError(f"{p}: no label array {ykey!r} (found {sorted(data.files)})")
        X, y = _npz_array(p, data, xkey), _npz_array(p, data, ykey)
    if X.ndim != 2 or len(X) != len(y):
        raise DatasetError(f"{p}: 'X' must be (n, n_features) and {ykey!r} must have n rows")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise DatasetError(f"{p}: 'X' must be numeric, got {X.dtype}")
    if y.ndim == 2 and (not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_) or not np.isin(y, (0, 1)).all()):
        raise DatasetError(f"{p}: {ykey!r} is 2-D, so multi-label: it must hold only 0/1")
    if y.ndim not in (1, 2):
        raise DatasetError(f"{p}: {ykey!r} must be (n,) classes or (n, n_labels) 0/1, got shape {y.shape}")
    if y.ndim == 1 and np.issubdtype(y.dtype, np.floating) and np.isnan(y).any():
        raise DatasetError(f"{p}: {ykey!r}: has missing labels (NaN)")
    return _finish(from_arrays(p.name, _impute(p, X.astype(np.float32), [f"X[:, {j}]" for j in range(X.shape[1])]), y))


def _from_table(p: Path, table: pa.Table, label_columns: Sequence[str], exclude: Sequence[str] = ()) -> Dataset:
    cols = table.column_names
    if not label_columns:
        raise DatasetError(f"{p}: give --label-column")
    chosen: list[str] = []
    for lc in label_columns:
        if lc in cols:
            chosen.append(lc)
        else:
            pref = [c for c in cols if c.startswith(lc)]
            if not pref:
                raise DatasetError(f"{p}: column {lc!r}: not found (columns: {', '.join(cols[:20])})")
            chosen += pref
    for c in chosen:  # (checked on the Arrow column: a categorical's to_numpy() fills its nulls with a class)
        missing = table.column(c).null_count
        if missing:
            raise DatasetError(f"{p}: column {c!r}: {missing} missing label(s); drop those rows or fill them in")
    names = feature_columns(p, table, {*chosen, *exclude})
    if not names:
        raise DatasetError(f"{p}: no numeric feature column besides the label column(s)")
    X = _impute(p, feature_matrix(table, names).astype(np.float32), names)
    if len(chosen) == 1 and _is_list(table.column(chosen[0]).type):
        Y, label_names = _label_lists(p, table.column(chosen[0]), chosen[0])
        return _finish(Dataset(p.name, X, Y, label_names, "multilabel"))
    if len(chosen) == 1:
        y = table.column(chosen[0]).to_numpy(zero_copy_only=False)
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in y):
            raise DatasetError(f"{p}: column {chosen[0]!r}: has missing labels")
        y = np.array([_py(v) for v in y], dtype=object)
        if all(isinstance(v, int) for v in y):
            y = y.astype(np.int64)
        else:
            y = y.astype(str)
        return _finish(from_arrays(p.name, X, y))
    Y = np.column_stack([_binary_column(p, table.column(c), c) for c in chosen])
    ds = from_arrays(p.name, X, Y)
    return _finish(Dataset(ds.name, ds.X, ds.y, tuple(chosen), "multilabel"))


def check_unique_columns(p: Path, names: Sequence[str]) -> None:
    """Refuse a header that repeats a column name: which of them a flag or a feature means would be a guess."""
    for name, n in Counter(names).items():
        if n > 1:
            raise DatasetError(f"{p}: column {name!r} appears {n} times in the header; column names must be unique")


def _is_list(typ: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ))


def _list_label(v: object) -> object:
    """A label-list value named as the same value in a label column: True -> 'True', 1.0 -> 1."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return int(v) if v.is_integer() else str(v)
    return _py(v)


def _label_lists(p: Path, arr: pa.ChunkedArray, name: str) -> tuple[np.ndarray, tuple[object, ...]]:
    """A column of label lists (``["a", "c"]`` per row) as (n, n_labels) 0/1, one label per distinct value, and those values."""
    rows = arr.to_pylist()
    for i, row in enumerate(rows):
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in row):
            raise DatasetError(f"{p}: column {name!r}: row {i + 1}: a missing value inside a label list")
    rows = [[_list_label(v) for v in row] for row in rows]
    names = tuple(sorted({v for row in rows for v in row}, key=lambda v: (isinstance(v, str), v)))
    index = {v: j for j, v in enumerate(names)}
    Y = np.zeros((len(rows), len(names)), dtype=np.int64)
    for i, row in enumerate(rows):
        Y[i, [index[v] for v in row]] = 1
    return Y, names


def _binary_column(p: Path, arr: pa.ChunkedArray, name: str) -> np.ndarray:
    """A multi-label column as (n,) 0/1 floats; anything else (``yes``, 2, NaN) names the column and a value found."""
    if _is_numeric(arr.type):
        values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = np.flatnonzero(~np.isin(values, (0, 1)))
    else:  # text such as yes/no: which text means 1 is not ours to guess
        values, bad = np.zeros(len(arr)), np.arange(len(arr))
    if len(bad):
        raise DatasetError(f"{p}: multi-label column {name!r}: must hold only 0/1 (found {arr[int(bad[0])].as_py()!r})")
    return values


def _impute(p: Path, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
    bad = ~np.isfinite(X)
    if bad.any():
        for j in (int(v) for v in np.flatnonzero(bad.any(axis=0))):
            col = X[:, j]
            ok = np.isfinite(col)
            if not ok.any():
                raise DatasetError(f"{p}: column {names[j]!r}: no finite value")
            log.warning("%s: column %r: %d missing/non-finite values replaced by the median", p, names[j], int((~ok).sum()))
            col[~ok] = np.median(col[ok])
    return X


def _finish(ds: Dataset) -> Dataset:
    if len(ds.X) < 20:
        raise DatasetError(f"{ds.name}: only {len(ds.X)} rows; simulation needs at least 20")
    if ds.task == "multiclass" and len(ds.classes) < 2:
        raise DatasetError(f"{ds.name}: the label column holds a single class")
    if ds.task == "multilabel" and not ds.y.any():  # no label to learn: the retrainer would wait for one forever
        names = ", ".join(repr(c) for c in ds.classes)
        raise DatasetError(f"{ds.name}: multi-label columns {names}: every value is 0 (no row has a label)")
    return ds
