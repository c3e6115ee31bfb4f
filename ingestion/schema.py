"""The column contract of the raw tables (DESIGN.md, "Warehouse contract"), in one place.

Every producer (simulator, vision pipeline, detection logs, MQTT stream) builds frames with
`DETECTION_SCHEMA`; the landing layer derives its DDL from the SQL types here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(ts: datetime) -> int:
    """`ts` as microseconds since the epoch (the unit of every UTC_TS column), exactly: no float rounding."""
    return (ts - EPOCH) // timedelta(microseconds=1)


# name -> (polars dtype, PostgreSQL type, DuckDB type, nullable)
DETECTION_COLUMNS: dict[str, tuple[pl.DataType, str, str, bool]] = {
    "ts": (UTC_TS, "timestamptz", "TIMESTAMPTZ", False),
    "camera_id": (pl.String(), "text", "VARCHAR", False),
    "frame_idx": (pl.Int64(), "bigint", "BIGINT", False),
    "track_id": (pl.Int64(), "bigint", "BIGINT", False),
    "class_id": (pl.Int16(), "smallint", "SMALLINT", False),
    "confidence": (pl.Float32(), "real", "REAL", True),  # null: no calibrated score (MOT conf -1)
    "x": (pl.Float32(), "real", "REAL", False),
    "y": (pl.Float32(), "real", "REAL", False),
    "w": (pl.Float32(), "real", "REAL", False),
    "h": (pl.Float32(), "real", "REAL", False),
    "zone_id": (pl.String(), "text", "VARCHAR", True),
    "motion_score": (pl.Float32(), "real", "REAL", False),
    "worker_id": (pl.String(), "text", "VARCHAR", True),
    "batch_id": (pl.String(), "text", "VARCHAR", False),
}
DETECTION_SCHEMA = pl.Schema({name: spec[0] for name, spec in DETECTION_COLUMNS.items()})
DETECTION_KEY = ("camera_id", "ts", "track_id")

# One row per camera per 10 s window: what the camera delivered, whatever it saw.
CAMERA_HEALTH_COLUMNS: dict[str, tuple[pl.DataType, str, str, bool]] = {
    "window_start": (UTC_TS, "timestamptz", "TIMESTAMPTZ", False),
    "camera_id": (pl.String(), "text", "VARCHAR", False),
    "frames_read": (pl.Int32(), "integer", "INTEGER", False),
    "frames_processed": (pl.Int32(), "integer", "INTEGER", False),
    "frames_dropped": (pl.Int32(), "integer", "INTEGER", False),
    "decode_errors": (pl.Int32(), "integer", "INTEGER", False),
    "latency_ms_mean": (pl.Float32(), "real", "REAL", True),
    "latency_ms_p95": (pl.Float32(), "real", "REAL", True),
    "batch_id": (pl.String(), "text", "VARCHAR", False),
}
CAMERA_HEALTH_SCHEMA = pl.Schema({name: spec[0] for name, spec in CAMERA_HEALTH_COLUMNS.items()})
CAMERA_HEALTH_KEY = ("camera_id", "window_start")
HEALTH_WINDOW_SECONDS = 10


def empty_detections() -> pl.DataFrame:
    return pl.DataFrame(schema=DETECTION_SCHEMA)


def empty_camera_health() -> pl.DataFrame:
    return pl.DataFrame(schema=CAMERA_HEALTH_SCHEMA)
