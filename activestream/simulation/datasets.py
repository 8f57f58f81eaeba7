"""Labeled datasets for simulation: the bundled digits set, or a user's CSV / CSV.gz / Parquet / NPZ."""

from __future__ import annotations

import dataclasses
import logging
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from activestream.tables import (
    TABLE_SUFFIXES,
    DatasetError,
    bad_cell,
    columns_named,
    export_bookkeeping,
    feature_columns,
    feature_matrix,
    is_numeric,
    is_text,
    label_sets,
    read_table,
    require_columns,
    tag_columns,
)
from activestream.tables import (
    label_columns as label_columns_of,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TABLE_SUFFIXES", "Dataset", "DatasetError", "digits", "digits784", "docstrings", "from_arrays", "load"]

log = logging.getLogger(__name__)


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
    ids : (n,) the rows' ids from the file's id column (``None``: none; a campaign names its items by row number
        and ``simulate --export-labels`` writes these ids back).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    classes: tuple[object, ...]
    task: str = "multiclass"
    ids: tuple[str, ...] | None = None

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


DIGITS784_SEED = 20261206
DOCSTRING_PACKAGES = ("numpy", "scipy", "sklearn", "matplotlib", "redis", "onnx")


def digits784(seed: int = DIGITS784_SEED) -> Dataset:
    """An image-like 784-feature set built from scikit-learn's bundled digits (no download).

    No labeled set of 400+ features ships inside the installed packages (Olivetti faces,
    MNIST and scikit-image's samples are downloaded or unlabeled), so each 8x8 digit is
    upsampled to 28x28 (bilinear, ``scipy.ndimage.zoom``), shifted by up to 2 pixels either
    way and given Gaussian pixel noise (sd 0.5 on a 0-16 scale), all drawn from ``seed``:
    1,797 items, 784 features, 10 classes. As with real images, most pixels are correlated
    and a raw-feature distance is dominated by position and noise, not by the class.

    Returns
    -------
    The dataset (X: (1797, 784) float32).
    """
    from scipy import ndimage
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    imgs = d.images.astype(np.float64)
    big = np.stack([ndimage.zoom(im, 3.5, order=1) for im in imgs])  # (n, 28, 28)
    shifts = rng.integers(-2, 3, size=(len(big), 2))
    big = np.stack([np.roll(im, tuple(s), axis=(0, 1)) for im, s in zip(big, shifts, strict=True)])
    big += rng.normal(0.0, 0.5, size=big.shape)
    return from_arrays("digits 28x28 (upsampled)", big.reshape(len(big), -1), d.target)


def _docstrings_of(package: str) -> list[str]:
    """Docstrings (200+ characters) of the functions and classes in ``package``'s installed sources, read with ``ast`` (nothing imported)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"docstrings: package {package!r} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    out: list[str] = []
    for f in sorted(root.rglob("*.py")):
        if "tests" in f.relative_to(root).parts:
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 200:
                    out.append(doc)
    return list(dict.fromkeys(out))  # (re-exported copies once)


def docstrings(packages: Sequence[str] = DOCSTRING_PACKAGES, *, per_package: int = 500, dims: int = 100, seed: int = 0) -> Dataset:
    """A text set embedded locally: docstrings of installed packages, labeled by package.

    Up to ``per_package`` docstrings of 200+ characters per package (a seeded sample), TF-IDF
    (words, 1-2 grams, sublinear tf, min_df 2) then truncated SVD to ``dims`` dimensions (LSA).
    The items depend on the installed versions (the numbers in ``benchmarks/suites.py`` say
    which). With the default packages: 6 classes, about 3,000 items.

    Returns
    -------
    The dataset (X: (n, dims) float32, classes: the package names).
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[str] = []
    for pkg in packages:
        docs = _docstrings_of(pkg)
        if len(docs) > per_package:
            docs = [docs[i] for i in sorted(rng.choice(len(docs), per_package, replace=False))]
        texts += docs
        labels += [pkg] * len(docs)
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=50_000).fit_transform(texts)
    X = TruncatedSVD(n_components=dims, random_state=seed).fit_transform(tfidf)
    return from_arrays("package docstrings (TF-IDF + SVD)", X, np.array(labels))


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
    exclude = list(columns_named(p, table.column_names, exclude, "--exclude"))  # (a prefix too: --exclude tag_)
    if id_required and id_column is not None:
        require_columns(p, table.column_names, "--id-column", [id_column])
    return _from_table(p, table, label_columns, [*exclude, *([id_column] if id_column else [])], id_column=id_column)


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
    unlabeled = np.zeros(len(y), dtype=bool)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.floating):
        unlabeled = _without_label(p, [ykey], np.isnan(y))
    X = X.astype(np.float32)
    ok = _finite_rows(p, X, lambda i: f"X[{i}, {int(np.flatnonzero(~np.isfinite(X[i]))[0])}] is not a finite number", unlabeled)
    return _finish(from_arrays(p.name, X[ok], y[ok]))


def _from_table(p: Path, table: pa.Table, label_columns: Sequence[str], exclude: Sequence[str] = (), id_column: str | None = None) -> Dataset:
    cols = table.column_names
    if not label_columns:
        raise DatasetError(f"{p}: give --label-column")
    classes = label_columns_of(p, cols, label_columns)  # (column -> class name: a prefix's columns less the prefix)
    chosen = list(classes)
    exclude = [*exclude, *export_bookkeeping(p, cols, chosen)]
    unlabeled = _unlabeled_rows(p, table, chosen)
    names = feature_columns(p, table, {*chosen, *exclude})
    if not names:
        raise DatasetError(f"{p}: no numeric feature column besides the label column(s)")
    X = feature_matrix(table, names).astype(np.float32)
    ok = _finite_rows(p, X, lambda i: bad_cell(table, names, X[i], i), unlabeled)
    if not ok.all():
        import pyarrow as pa

        table, X = table.filter(pa.array(ok)), X[ok]
    raw_ids = table.column(id_column).to_pylist() if id_column is not None and id_column in table.column_names else None
    ids = tuple(str(v) for v in raw_ids) if raw_ids is not None and None not in raw_ids else None

    def done(ds: Dataset) -> Dataset:
        return _finish(dataclasses.replace(ds, ids=ids))

    single = not tag_columns(classes)  # (one column of classes, or of label lists; else 0/1 tag columns)
    text = single and is_text(table.column(chosen[0]).type)
    sets = label_sets(p, chosen[0], table.column(chosen[0]).to_pylist()) if text else None  # (JSON lists, as export writes CSV)
    if sets is not None:
        import pyarrow as pa

        if len({type(x) for v in sets for x in v}) > 1:
            raise DatasetError(f"{p}: column {chosen[0]!r}: label lists mix numbers and text; give every label as one or the other")
        table = table.set_column(table.column_names.index(chosen[0]), chosen[0], pa.array([list(v) for v in sets]))
    if single and _is_list(table.column(chosen[0]).type):
        Y, label_names = _label_lists(p, table.column(chosen[0]), chosen[0])
        return done(Dataset(p.name, X, Y, label_names, "multilabel"))
    if single:
        y = table.column(chosen[0]).to_numpy(zero_copy_only=False)
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in y):
            raise DatasetError(f"{p}: column {chosen[0]!r}: has missing labels")
        y = np.array([_py(v) for v in y], dtype=object)
        if all(isinstance(v, int) for v in y):
            y = y.astype(np.int64)
        else:
            y = y.astype(str)
        return done(from_arrays(p.name, X, y))
    Y = np.column_stack([_binary_column(p, table.column(c), c) for c in chosen])
    ds = from_arrays(p.name, X, Y)
    return done(Dataset(ds.name, ds.X, ds.y, tuple(classes.values()), "multilabel"))


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
    if is_numeric(arr.type):
        values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = np.flatnonzero(~np.isin(values, (0, 1)))
    else:  # text such as yes/no: which text means 1 is not ours to guess
        values, bad = np.zeros(len(arr)), np.arange(len(arr))
    if len(bad):
        raise DatasetError(f"{p}: multi-label column {name!r}: must hold only 0/1 (found {arr[int(bad[0])].as_py()!r})")
    return values


def _unlabeled_rows(p: Path, table: pa.Table, chosen: Sequence[str]) -> np.ndarray:
    """(n,) bool: the rows with no value in a label column (empty, null or NaN). They are left out with one warning
    (a campaign's file often holds rows still to label: the replay needs the truth of every row it uses); none labeled
    is an error (see :func:`_without_label`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    unlabeled = np.zeros(table.num_rows, dtype=bool)
    for c in chosen:  # (checked on the Arrow column: a categorical's to_numpy() fills its nulls with a class)
        col = table.column(c)
        unlabeled |= np.asarray(pc.is_null(col, nan_is_null=True).to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_dictionary(col.type) and is_text(col.type.value_type):  # (a pandas categorical, saved to Parquet)
            col = col.cast(col.type.value_type)
        if is_text(col.type):  # (an empty string, as Parquet keeps a blank cell: no class named "")
            unlabeled |= np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), False).to_numpy(zero_copy_only=False), dtype=bool)
    return _without_label(p, chosen, unlabeled)


def _without_label(p: Path, chosen: Sequence[str], unlabeled: np.ndarray) -> np.ndarray:
    """``unlabeled`` (n,) bool, once warned of (or refused: no row labeled)."""
    if unlabeled.all():
        raise DatasetError(f"{p}: column(s) {', '.join(map(repr, chosen))}: no row has a label")
    if unlabeled.any():
        log.warning("%s: %d row(s) without a label left out (first: row %d): the replay needs the truth of every row it uses",
                    p, int(unlabeled.sum()), int(np.flatnonzero(unlabeled)[0]) + 1)
    return unlabeled


def _finite_rows(p: Path, X: np.ndarray, why: Callable[[int], str], unlabeled: np.ndarray) -> np.ndarray:
    """(n,) bool: the rows of ``X`` (n, d) that have a label (``unlabeled``: (n,) bool, those left out already, see
    :func:`_without_label`) and whose features are all finite. The labeled ones with a feature that is not are left out
    too, with one warning that counts them and says, by ``why(i)``, what is wrong with the first: ``produce`` refuses
    such rows too, so the estimate covers the rows a campaign would take."""
    finite: np.ndarray = np.isfinite(X).all(axis=1)
    bad = ~finite & ~unlabeled
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        log.warning("%s: %d row(s) left out: a feature is missing or not a finite number (first: row %d: %s); produce refuses such "
                    "rows too, so the estimate covers the rows a campaign would take", p, int(bad.sum()), first + 1, why(first))
    return finite & ~unlabeled


def _finish(ds: Dataset) -> Dataset:
    if len(ds.X) < 20:
        raise DatasetError(f"{ds.name}: only {len(ds.X)} rows; simulation needs at least 20")
    if ds.task == "multiclass" and len(ds.classes) < 2:
        raise DatasetError(f"{ds.name}: the label column holds a single class")
    if ds.task == "multilabel" and not ds.y.any():  # no label to learn: the retrainer would wait for one forever
        names = ", ".join(repr(c) for c in ds.classes)
        raise DatasetError(f"{ds.name}: multi-label classes {names}: every value is 0 (no row has a label)")
    return ds
