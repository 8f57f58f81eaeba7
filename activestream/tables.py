"""Tabular input files (CSV, compressed CSV, Parquet) as Arrow tables, and their feature columns.

Shared by ``activestream produce`` (items to the items topic) and the simulator (labeled
datasets), so a model trained in one sees the columns the other sends.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """An input file that cannot be read or simulated, with the file, column and reason."""


TABLE_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.lz4", ".parquet", ".pq")


_CSV_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}


def read_table(p: Path, *, text_columns: Sequence[str] = ()) -> pa.Table:
    """A CSV (plain or compressed) or Parquet file, by its extension in any case, as an Arrow table.

    ``text_columns`` are read as strings, not numbers (ids: ``001`` stays ``001``).

    Raises
    ------
    DatasetError
        Naming the file: empty, a header without rows, ragged, not really CSV / Parquet, or a column name repeated.
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
            table, ragged = _read_csv(p, opts, threads=True)
            if ragged:  # (read again on one thread: only then does Arrow know each bad row's line)
                _, ragged = _read_csv(p, opts, threads=False)
                first = ragged[0]
                raise DatasetError(f"{p}: line {first.number}: {first.actual_columns} fields where the header has {first.expected_columns} "
                                   f"({first.text[:60]!r}; {len(ragged)} such line(s)): the file is refused, mend or drop them")
            table = _nulls_in_strings(table, keep=text_columns, tokens=opts.null_values)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{p}: cannot be read: {exc}") from None
    check_unique_columns(p, table.column_names)
    if table.num_rows == 0:  # (before its columns are judged: a header alone types every column as null)
        raise DatasetError(f"{p}: no rows (a header only)")
    return table


def _read_csv(p: Path, opts: Any, *, threads: bool) -> tuple[pa.Table, list[Any]]:
    """A CSV's table without its ragged rows (another number of fields than the header's), and those rows (Arrow's
    ``InvalidRow``: line ``number`` known when read on one thread)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    ragged: list[Any] = []

    def keep(row: Any) -> str:
        ragged.append(row)
        return "skip"

    with pa.input_stream(str(p), compression=_CSV_COMPRESSION.get(p.suffix.lower())) as stream:
        table = pacsv.read_csv(stream, read_options=pacsv.ReadOptions(use_threads=threads), convert_options=opts,
                               parse_options=pacsv.ParseOptions(invalid_row_handler=keep))
    return table, ragged


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


def check_unique_columns(p: Path, names: Sequence[str]) -> None:
    """Refuse a header that repeats a column name: which of them a flag or a feature means would be a guess."""
    for name, n in Counter(names).items():
        if n > 1:
            raise DatasetError(f"{p}: column {name!r} appears {n} times in the header; column names must be unique")


def require_columns(p: Path, columns: Sequence[str], flag: str, names: Iterable[str]) -> None:
    """Refuse a column named with ``flag`` that ``columns`` lacks, naming the closest ones (any case) as a hint."""
    by_lower: dict[str, list[str]] = {}
    for c in columns:
        by_lower.setdefault(c.lower(), []).append(c)
    for name in names:
        if name in columns:
            continue
        close = [c for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6) for c in by_lower[m]]
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"columns: {names_shown(columns, 20)}"
        raise DatasetError(f"{p}: {flag} {name!r}: no such column ({hint})")


#: The columns ``activestream export`` writes of its own (besides the metadata and the features).
EXPORT_COLUMNS = ("item_id", "label", "all_labels", "majority_votes", "source", "labeler_ids", "seconds", "label_ids", "labeled_at",
                  "times", "model_version", "control", "auto_confidence", "auto_threshold", "held_out")


def export_bookkeeping(p: Path, columns: Sequence[str], keep: Collection[str]) -> list[str]:
    """The export's own columns in ``columns`` (less ``keep``: the id and label columns chosen) when the file is an
    ``activestream export`` (it has ``label_ids`` and ``labeler_ids``): who labeled when, not features of the items."""
    if not {"label_ids", "labeler_ids"} <= set(columns):
        return []
    out = [c for c in EXPORT_COLUMNS if c in columns and c not in keep]
    log.info("%s: an activestream export: its own columns %s are not features", p, ", ".join(out))
    return out


def label_set(value: object) -> tuple[object, ...] | None:
    """A label cell that holds a label set: a list, or a JSON list as text (``export`` writes a set so in CSV);
    ``None`` for any other cell."""
    if isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        if isinstance(parsed, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in parsed):
            return tuple(parsed)
    return None


def label_sets(p: Path, column: str, cells: Sequence[object]) -> list[tuple[object, ...]] | None:
    """A label column's cells as label sets when every (non-null) one is a set (:func:`label_set`), ``None`` when none
    is; a column mixing sets and single labels is refused (one file, one answer shape)."""
    sets = [label_set(v) for v in cells if v is not None]
    n_sets = sum(v is not None for v in sets)
    if n_sets == 0:
        return None
    if n_sets < len(sets):
        raise DatasetError(f"{p}: column {column!r}: {n_sets} cell(s) are label lists and {len(sets) - n_sets} single labels; "
                           "give every row one or the other")
    return [v for v in sets if v is not None]


def label_columns(p: Path, columns: Sequence[str], given: Sequence[str]) -> dict[str, str]:
    """The label columns ``--label-column`` names, each with its class name (``simulate``'s and ``import-labels``' rule).

    Each name is a column exactly, else a prefix of several 0/1 columns whose classes are the rest of their names
    (``--label-column tag_`` over ``tag_cat``, ``tag_dog``: ``cat``, ``dog``).

    Returns
    -------
    Column -> class name, in the file's order for a prefix.
    """
    return columns_named(p, columns, given, "--label-column")


def columns_named(p: Path, columns: Sequence[str], given: Sequence[str], option: str) -> dict[str, str]:
    """The columns ``option`` names: each name a column exactly, else a prefix of columns (``--exclude tag_``); one that
    is neither is a :class:`DatasetError` with the closest names.

    Returns
    -------
    Column -> its name less the prefix (itself, when named exactly), in the order given, a prefix's in the file's order.
    """
    chosen: dict[str, str] = {}
    for lc in given:
        if lc in columns:
            chosen.setdefault(lc, lc)
            continue
        pref = [c for c in columns if c.startswith(lc)]
        if not pref:
            require_columns(p, columns, option, [lc])  # (raises, with the closest names)
        # (said: a typo that is a prefix, --exclude label over label_id and labeler, would drop those columns unseen; a
        # prefix that ends a name's part, tag_, is meant so)
        loud = option == "--exclude" and not lc.endswith(("_", "-", ".", ":", "/"))
        shown = ", ".join(pref[:5]) + (f" and {len(pref) - 5} more" if len(pref) > 5 else "")
        log.log(logging.WARNING if loud else logging.INFO, "%s: %s %r: no column of that name: taken as the prefix of %s", p, option, lc, shown)
        for c in pref:
            chosen.setdefault(c, c[len(lc):])
    return chosen


def tag_columns(chosen: Mapping[str, str]) -> bool:
    """Whether :func:`label_columns`' ``chosen`` are 0/1 tag columns (several, or one a prefix named: ``--label-column
    tag_`` over only ``tag_even`` is the tag ``even``), not one column of classes."""
    return len(chosen) > 1 or any(column != name for column, name in chosen.items())


def is_numeric(typ: pa.DataType) -> bool:
    """Whether an Arrow column type is integer, floating point or boolean (a 0/1 feature)."""
    import pyarrow as pa

    return bool(pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ))


def number(v: object) -> float | None:
    """A cell as a number: ints, floats, booleans (0/1) and text that reads as a number; else ``None``."""
    if isinstance(v, bool | int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _number_counts(values: Iterable[object]) -> tuple[int, int]:
    """How many of the present (not null, not empty) cells are numbers, and how many are present."""
    present = [v for v in values if v is not None and v != ""]
    return sum(number(v) is not None for v in present), len(present)


def mostly_numbers(values: Iterable[object]) -> bool:
    """Whether more than half of the present cells are numbers: a feature with a few bad cells, not a text column."""
    numbers, present = _number_counts(values)
    return numbers * 2 > present


def _number_column_with_bad_cells(column: pa.ChunkedArray) -> bool:
    """A text column that is a number column with a few bad cells (mostly numbers, at least one not): CSV typing made it
    text because of them. One of numbers only was text on purpose (Parquet: a zip code, an account number)."""
    if not mostly_numbers(column.slice(0, 1000).to_pylist()):  # (a text column, the usual case, is told by its head)
        return False
    numbers, present = _number_counts(column.to_pylist())
    return numbers * 2 > present and numbers < present


def is_text(typ: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ))


def feature_columns(p: Path, table: pa.Table, skip: Collection[str]) -> list[str]:
    """The feature columns of ``table``: every numeric or boolean column not in ``skip`` (labels, id, excluded).

    A text column whose cells are mostly, but not all, numbers is a feature too (a number column with a few bad cells,
    such as ``high`` among magnesium values: each such row is then refused on its own, naming the cell, instead of
    the column vanishing for one typo; a text column of numbers only was typed so on purpose and is left out).
    ``simulate`` and ``produce`` both choose features here, so a model trained in one sees the columns the other
    sends; one warning names the columns left out.
    """
    names, left_out = [], []
    for c in table.column_names:
        if c in skip:
            continue
        typ = table.column(c).type
        if is_numeric(typ) or (is_text(typ) and _number_column_with_bad_cells(table.column(c))):
            names.append(c)
        else:
            left_out.append(f"{c!r} ({typ})")
    if left_out:
        log.warning("%s: column(s) %s are not numeric: left out of the features", p, ", ".join(left_out))
    return names


def json_value(v: object) -> object:
    """A metadata cell as a JSON value (dates and decimals as text, a non-finite float as null)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list | tuple):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    return str(v)


def feature_matrix(table: pa.Table, names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) float64 of those columns; booleans are 0/1; a missing value, or a text cell that is not a number, is NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def column(c: str) -> np.ndarray:
        col = table.column(c)
        if is_text(col.type):  # (a number column with a few bad cells: see feature_columns)
            return np.array([np.nan if (x := number(v)) is None else x for v in col.to_pylist()], dtype=np.float64)
        # safe=False: an int64 above 2**53 (a nanosecond timestamp, a hash) rounds, as numpy's conversion does
        return np.asarray(pc.cast(col, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)

    return np.column_stack([column(c) for c in names])


def bad_cell(table: pa.Table, names: Sequence[str], row: np.ndarray, i: int) -> str:
    """What is wrong with row ``i`` (0-based) of ``table``, whose feature vector ``row`` holds a NaN or an infinity:
    ``"column 'magnesium': not a finite number ('high')"`` for its first such column."""
    j = int(np.flatnonzero(~np.isfinite(row))[0])
    raw = table.column(names[j])[i].as_py()
    return f"column {names[j]!r}: {'no value' if raw is None or raw == '' else f'not a finite number ({raw!r})'}"


def names_shown(names: Sequence[str], first: int = 8) -> str:
    """``a, b, c, ...``: the first ``first`` of ``names``, for a message."""
    return ", ".join(names[:first]) + (", ..." if len(names) > first else "")


def campaign_order(columns: Sequence[str], known: Sequence[str] | None) -> list[int] | None:
    """Where each of the campaign's features (``known``: its recorded names) is among a file's feature ``columns``, when
    they are the same names in another order (the file's vectors are put in the campaign's order by name, as the
    scorer and the model read them); ``None`` when they are in its order already, or are not the same names.

    >>> campaign_order(["b", "a", "c"], ["a", "b", "c"])
    [1, 0, 2]
    """
    if not known or list(columns) == list(known) or sorted(columns) != sorted(known) or len(set(known)) != len(known):
        return None
    at = {name: j for j, name in enumerate(columns)}
    return [at[name] for name in known]


def width_mismatch(columns: Sequence[str], held: int, known: Sequence[str] | None = None) -> str:
    """Why a file's feature columns are not the campaign's ``held`` features, and what to do: which columns to leave
    out, or which it lacks (by name when the campaign's names, ``known``, are recorded)."""
    said = f"{len(columns)} feature column(s) ({names_shown(columns)}), but this campaign's items have {held} features; "
    if known is not None and len(known) == held:
        extra, missing = [c for c in columns if c not in known], [c for c in known if c not in columns]
        parts = ([f"leave out {names_shown(extra)} with --exclude"] if extra else []) + ([f"the file lacks {names_shown(missing)}"] if missing else [])
        if parts:
            return said + " and ".join(parts)
    if len(columns) > held:
        return said + f"leave the {len(columns) - held} column(s) that are not features out with --exclude"
    return said + f"the file lacks {held - len(columns)} of them"
