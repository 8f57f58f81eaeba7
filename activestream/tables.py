"""Tabular input files (CSV, compressed CSV, Parquet) as Arrow tables, and their feature columns.

Shared by ``activestream produce`` (items to the items topic) and the simulator (labeled
datasets), so a model trained in one sees the columns the other sends.
"""

from __future__ import annotations

import difflib
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"columns: {', '.join(columns[:20])}"
        raise DatasetError(f"{p}: {flag} {name!r}: no such column ({hint})")


def is_numeric(typ: pa.DataType) -> bool:
    """Whether an Arrow column type is integer, floating point or boolean (a 0/1 feature)."""
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
        if is_numeric(typ):
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
