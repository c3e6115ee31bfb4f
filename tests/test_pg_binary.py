"""The vectorised binary COPY encoder against psycopg's own encoder, and the row order it keeps.

psycopg's `write_row` is the reference: the same rows must give the same bytes, in the frame's order
(the server's index maintenance depends on it; see pg_binary's docstring).
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import psycopg
from psycopg.copy import Copy, FileWriter

from ingestion.warehouse import ddl, pg_binary
from tests.conftest import ADMIN_URL


def psycopg_bytes(frame: pl.DataFrame, columns: list[tuple[str, str]]) -> bytes:
    """The binary COPY payload psycopg builds row by row (needs a connection for its type adapters)."""
    out = io.BytesIO()
    with psycopg.connect(ADMIN_URL) as conn, conn.cursor(binary=True) as cur:
        with Copy(cur, binary=True, writer=FileWriter(out)) as copy:
            copy.set_types([pg_type for _, pg_type in columns])
            for row in frame.select([name for name, _ in columns]).iter_rows():
                copy.write_row(row)
    return out.getvalue()


def mixed_frame(n: int = 5000, seed: int = 1) -> pl.DataFrame:
    """Detections whose text columns vary in length and nullness row by row: many layout groups."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 15, 8, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start + timedelta(milliseconds=200 * int(i)) for i in range(n)],
            "camera_id": rng.choice(["C1", "CAM01", "CAMERA-0003"], n).tolist(),
            "frame_idx": np.arange(n, dtype=np.int64),
            "track_id": rng.integers(1, 10**12, n),
            "class_id": rng.integers(0, 3, n).astype(np.int16),
            "confidence": rng.uniform(0, 1, n).astype(np.float32),
            "x": rng.uniform(0, 1200, n).astype(np.float32),
            "y": rng.uniform(0, 600, n).astype(np.float32),
            "w": rng.uniform(20, 80, n).astype(np.float32),
            "h": rng.uniform(60, 200, n).astype(np.float32),
            "zone_id": rng.choice(np.array(["Z1", "Z001", "zone ü", None], dtype=object), n).tolist(),
            "motion_score": pl.Series(rng.uniform(0, 1, n).astype(np.float32)).scatter([3, 7], None),
            "worker_id": rng.choice(np.array(["W001", None], dtype=object), n).tolist(),
            "batch_id": ["b"] * n,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def test_bytes_equal_psycopg_write_row_in_row_order():
    frame = mixed_frame()
    columns = ddl.DETECTIONS.pg_copy_columns()
    expected = psycopg_bytes(frame, columns)
    # Several chunks, each with many layout groups, and one chunk: all the frame's order, byte for byte.
    assert b"".join(pg_binary.encode(frame, columns, chunk_rows=777)) == expected
    assert b"".join(pg_binary.encode(frame, columns)) == expected


def test_one_layout_and_dates_and_booleans():
    frame = pl.DataFrame(
        {
            "d": [date(2000, 1, 1), date(1999, 12, 31), None, date(2025, 6, 30)],
            "flag": [True, None, False, True],
            "label": ["a", "bb", None, "ccc"],
            "value": [1.5, None, -2.25, 0.0],
        }
    )
    columns = [("d", "date"), ("flag", "boolean"), ("label", "text"), ("value", "double precision")]
    assert b"".join(pg_binary.encode(frame, columns, chunk_rows=3)) == psycopg_bytes(frame, columns)
    single = frame.head(1)
    assert b"".join(pg_binary.encode(single, columns)) == psycopg_bytes(single, columns)
