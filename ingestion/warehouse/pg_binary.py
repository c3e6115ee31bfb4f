"""Vectorised encoder for PostgreSQL's binary COPY format, straight from a polars frame.

psycopg's `copy.write_row` converts every value in Python; for millions of detections that loop is the
bottleneck. Here each column is converted once with numpy into big-endian bytes, and rows are laid out
as numpy structured records. A binary COPY row is `int16 nfields` then `int32 length + bytes` per field,
so text fields make rows variable-sized: rows are grouped by the byte length of every variable field
(few distinct lengths in practice: ids have fixed formats, NULL has none) and each group is one
fixed-layout structured array. The groups are then put back into the frame's row order with one Arrow
`take` (a memcpy per row, in C++): the server maintains the unique index (camera_id, ts, track_id)
while it ingests, and rows arriving in key order (validation sorts them) append to the index's rightmost
page, where grouped order (e.g. rows with a zone, then rows without) makes every later group insert
into the middle of pages already filled: 1.3x slower on the same bytes (bench/landing.py). The output is
byte-identical to psycopg's `write_row` of the same rows.

Format reference: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)

_PG_EPOCH_US = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000

# PostgreSQL type -> big-endian numpy dtype of its binary send format (text is handled separately).
_FIXED = {
    "timestamptz": ">i8",
    "bigint": ">i8",
    "integer": ">i4",
    "smallint": ">i2",
    "real": ">f4",
    "double precision": ">f8",
    "boolean": "u1",
    "date": ">i4",
}
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01


class _Column:
    """One column prepared for layout: per-row byte length (-1 = NULL) and a way to fetch its bytes."""

    def __init__(self, name: str, pg_type: str, series: pl.Series):
        self.name = name
        self.pg_type = pg_type
        n = len(series)
        valid = ~series.is_null().to_numpy() if series.null_count() else np.ones(n, dtype=bool)
        if pg_type == "text":
            # Dictionary-encode: ids repeat heavily, so each distinct value is turned into bytes once.
            uniques = series.drop_nulls().unique().sort().to_list()
            codes = series.cast(pl.Enum(uniques)).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
            self.dictionary = [u.encode() for u in uniques]
            self.codes = codes
            # Per row: the index of its byte length among the distinct lengths (NULL is length -1).
            code_lengths = np.array([-1] + [len(e) for e in self.dictionary], dtype=np.int64)
            self.distinct_lengths, code_to_length_id = np.unique(code_lengths, return_inverse=True)
            self.length_id = code_to_length_id.reshape(-1)[codes + 1]
        elif pg_type in _FIXED:
            dtype = np.dtype(_FIXED[pg_type])
            if pg_type == "timestamptz":
                values = series.dt.cast_time_unit("us").dt.epoch("us").fill_null(0).to_numpy() - _PG_EPOCH_US
            elif pg_type == "date":
                values = series.to_physical().fill_null(0).to_numpy().astype(np.int64) - _PG_EPOCH_DAYS
            elif pg_type == "boolean":
                values = series.fill_null(False).to_numpy()
            else:
                values = series.fill_null(0).to_numpy()
            self.values = values.astype(dtype, copy=False)
            self.distinct_lengths = np.array([-1, dtype.itemsize])
            self.length_id = valid.astype(np.int64)
        else:
            raise ValueError(f"binary COPY encoder does not support PostgreSQL type {pg_type!r}")

    def field_dtype(self, length: int) -> list[tuple[str, str]]:
        parts = [(f"{self.name}__len", ">i4")]
        if length > 0:
            parts.append((self.name, f"S{length}" if self.pg_type == "text" else _FIXED[self.pg_type]))
        return parts

    def fill(self, records: np.ndarray, rows: np.ndarray, length: int) -> None:
        records[f"{self.name}__len"] = length
        if length <= 0:
            return
        if self.pg_type == "text":
            table = np.array([e if len(e) == length else b"" for e in self.dictionary], dtype=f"S{length}")
            records[self.name] = table[self.codes[rows]]
        else:
            records[self.name] = self.values[rows]


def encode(frame: pl.DataFrame, columns: list[tuple[str, str]], chunk_rows: int = 250_000) -> Iterator[bytes]:
    """Yield the binary COPY payload (header, rows, trailer) for `columns` [(name, pg type)] of `frame`.

    The COPY statement must list the columns in the same order as `columns`.
    """
    yield HEADER
    for offset in range(0, frame.height, chunk_rows):
        yield _encode_rows(frame.slice(offset, chunk_rows), columns)
    yield TRAILER


def _encode_rows(frame: pl.DataFrame, columns: list[tuple[str, str]]) -> bytes:
    n = frame.height
    if n == 0:
        return b""
    prepared = [_Column(name, pg_type, frame.get_column(name)) for name, pg_type in columns]
    # Group rows by the combination of their fields' byte lengths (mixed-radix id over each column's few
    # distinct lengths): each group has one fixed record layout.
    group_id = np.zeros(n, dtype=np.int64)
    radix = 1
    for c in prepared:
        group_id += c.length_id * radix
        radix *= len(c.distinct_lengths)
    groups, group_of_row = np.unique(group_id, return_inverse=True)
    group_of_row = group_of_row.reshape(-1)
    order = np.argsort(group_of_row, kind="stable")
    bounds = np.searchsorted(group_of_row[order], np.arange(len(groups) + 1))
    out = []
    sizes = []
    for g, gid in enumerate(groups.tolist()):
        rows = order[bounds[g] : bounds[g + 1]]
        lengths = []
        for c in prepared:
            gid, digit = divmod(gid, len(c.distinct_lengths))
            lengths.append(int(c.distinct_lengths[digit]))
        fields = [("nfields", ">i2")]
        for c, length in zip(prepared, lengths, strict=True):
            fields += c.field_dtype(length)
        records = np.empty(len(rows), dtype=np.dtype(fields))
        records["nfields"] = len(prepared)
        for c, length in zip(prepared, lengths, strict=True):
            c.fill(records, rows, length)
        out.append(records.view(np.uint8).reshape(-1))
        sizes.append(records.dtype.itemsize)
    if len(out) == 1:
        return out[0].tobytes()
    # Back to row order: the grouped records as one Arrow binary array (a row per element, no copy),
    # gathered by each row's position in the grouped order.
    grouped = np.concatenate(out)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.repeat(np.array(sizes, dtype=np.int64), np.diff(bounds)), out=offsets[1:])
    records = pa.Array.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(grouped)]
    )
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n, dtype=np.int64)
    in_row_order = records.take(pa.array(position))
    return in_row_order.buffers()[2].to_pybytes()[: grouped.size]
