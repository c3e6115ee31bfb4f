"""Vectorised validation of rows before they land.

Two kinds of problems, handled differently:
- A frame with missing columns or wrong types is a programming error of the producer: `conform` raises
  `BatchSchemaError` naming the column and the fix, before anything is written.
- Bad values in otherwise well-formed rows (NaN, out-of-range scores, unknown cameras, timestamps outside
  the batch window, duplicate keys) are data problems: those rows are split off with a reason and go to
  `raw.rejected_detections`, while the good rows land.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from ingestion.schema import (
    CAMERA_HEALTH_COLUMNS,
    CAMERA_HEALTH_KEY,
    DETECTION_COLUMNS,
    DETECTION_KEY,
    UTC_TS,
)
from ingestion.site import Site

# Columns a producer may leave out: they are filled with nulls (batch_id is filled by the landing layer).
_OPTIONAL = {"zone_id", "worker_id", "batch_id", "latency_ms_mean", "latency_ms_p95"}
REJECTED_COLUMNS = ("camera_id", "payload", "reason")


class BatchSchemaError(ValueError):
    """The frame's columns or types do not match the raw table; nothing was written."""


@dataclass(frozen=True)
class Split:
    good: pl.DataFrame  # conformed rows that passed every rule
    rejected: pl.DataFrame  # camera_id, payload (row as JSON), reason


def conform(
    frame: pl.DataFrame,
    columns: dict[str, tuple] = DETECTION_COLUMNS,
    what: str = "detections",
) -> pl.DataFrame:
    """Select and order the table's columns, casting lossless type differences (Int32 -> Int64, ...).

    Raises BatchSchemaError naming the column and the fix for a missing column or an incompatible type.
    """
    if not isinstance(frame, pl.DataFrame):
        raise BatchSchemaError(
            f"{what}: expected a polars DataFrame, got {type(frame).__name__}; "
            "build it with ingestion.schema's schema"
        )
    exprs = []
    for name, (dtype, *_rest) in columns.items():
        if name not in frame.columns:
            if name in _OPTIONAL:
                exprs.append(pl.lit(None, dtype=dtype).alias(name))
                continue
            raise BatchSchemaError(
                f"{what}: missing column {name!r} ({dtype}); the frame has {frame.columns}. "
                f"Add it: every {what} frame needs the columns of ingestion.schema"
            )
        exprs.append(_cast(frame.schema[name], dtype, name, what))
    try:
        return frame.select(exprs)
    except pl.exceptions.InvalidOperationError as exc:  # e.g. an integer that overflows the target type
        raise BatchSchemaError(
            f"{what}: values do not fit the column types ({exc}). "
            "Cast the frame to ingestion.schema's schema first"
        ) from exc


def _cast(actual: pl.DataType, expected: pl.DataType, name: str, what: str) -> pl.Expr:
    col = pl.col(name)
    if actual == expected or actual == pl.Null:
        return col.cast(expected)
    if expected == UTC_TS:
        if isinstance(actual, pl.Datetime) and actual.time_zone is not None:
            return col.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        if isinstance(actual, pl.Datetime):
            fix = (
                f"attach the zone: pl.col({name!r}).dt.replace_time_zone('UTC') "
                "(or the camera's local zone, then convert to UTC)"
            )
        else:
            fix = (
                f"parse it into pl.Datetime('us', 'UTC'), "
                f"e.g. pl.col({name!r}).str.to_datetime(time_zone='UTC')"
            )
        raise BatchSchemaError(
            f"{what}: column {name!r} has type {actual}, expected {expected} (timezone-aware UTC). Fix: {fix}"
        )
    if expected.is_integer() and actual.is_integer():
        return col.cast(expected, strict=True)
    if expected.is_float() and (actual.is_float() or actual.is_integer()):
        return col.cast(expected)
    if expected == pl.String and isinstance(actual, pl.Categorical | pl.Enum):
        return col.cast(pl.String)
    raise BatchSchemaError(
        f"{what}: column {name!r} has type {actual}, expected {expected}. "
        f"Fix: cast it (pl.col({name!r}).cast(pl.{expected})) or correct the producer"
    )


def _payload(frame: pl.DataFrame) -> pl.Expr:
    return pl.struct(frame.columns).struct.json_encode()


def split_rows(frame: pl.DataFrame, reason: pl.Expr) -> Split:
    """Split by a reason expression (empty string = row is good)."""
    tagged = frame.with_columns(reason.alias("__reason"))
    bad = tagged.filter(pl.col("__reason") != "")
    rejected = bad.select(
        pl.col("camera_id"), _payload(frame).alias("payload"), pl.col("__reason").alias("reason")
    )
    return Split(tagged.filter(pl.col("__reason") == "").drop("__reason"), rejected)


def _rule(condition: pl.Expr, message: str) -> pl.Expr:
    return pl.when(condition).then(pl.lit(message))


def _reasons(rules: list[pl.Expr]) -> pl.Expr:
    return pl.concat_str(rules, separator="; ", ignore_nulls=True)


def _common_rules(columns: dict[str, tuple], site: Site, camera_id: str | None) -> list[pl.Expr]:
    rules = [
        _rule(pl.col(name).is_null(), f"{name} is null")
        for name, spec in columns.items()
        if not spec[3] and name != "batch_id"
    ]
    rules += [
        _rule(pl.col(name).is_nan() | pl.col(name).is_infinite(), f"{name} is NaN or infinite")
        for name, spec in columns.items()
        if spec[0].is_float()
    ]
    known = list(site.camera_ids)
    rules.append(
        _rule(
            ~pl.col("camera_id").is_in(known),
            f"unknown camera_id (the site config {site.path} has {', '.join(known)})",
        )
    )
    if camera_id is not None:
        rules.append(
            _rule(pl.col("camera_id") != camera_id, f"camera_id differs from the batch's camera {camera_id}")
        )
    return rules


def _window_rule(ts: str, window: tuple[datetime, datetime] | None) -> list[pl.Expr]:
    if window is None:
        return []
    start, end = window
    return [
        _rule(
            (pl.col(ts) < start) | (pl.col(ts) >= end),
            f"{ts} outside the batch window [{start.isoformat()}, {end.isoformat()})",
        )
    ]


def validate_detections(
    frame: pl.DataFrame,
    site: Site,
    *,
    camera_id: str | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> Split:
    """Conform, then split off rows that break a rule; within-batch duplicate keys keep their first row.

    The good rows come back sorted by (camera_id, ts, track_id): the order of the unique index, which
    keeps PostgreSQL's index inserts and DuckDB's zone maps cheap."""
    frame = conform(frame, DETECTION_COLUMNS, "detections")
    rules = (
        _common_rules(DETECTION_COLUMNS, site, camera_id)
        + _window_rule("ts", window)
        + [
            _rule((pl.col("confidence") < 0) | (pl.col("confidence") > 1), "confidence outside 0..1"),
            _rule((pl.col("motion_score") < 0) | (pl.col("motion_score") > 1), "motion_score outside 0..1"),
            _rule(pl.col("w") <= 0, "w <= 0"),
            _rule(pl.col("h") <= 0, "h <= 0"),
        ]
    )
    return _drop_duplicates(split_rows(frame, _reasons(rules)), DETECTION_KEY)


def validate_camera_health(
    frame: pl.DataFrame,
    site: Site,
    *,
    camera_id: str | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> Split:
    frame = conform(frame, CAMERA_HEALTH_COLUMNS, "camera_health")
    counts = ("frames_read", "frames_processed", "frames_dropped", "decode_errors")
    rules = _common_rules(CAMERA_HEALTH_COLUMNS, site, camera_id) + _window_rule("window_start", window)
    rules += [_rule(pl.col(c) < 0, f"{c} < 0") for c in counts]
    rules += [_rule(pl.col(c) < 0, f"{c} < 0") for c in ("latency_ms_mean", "latency_ms_p95")]
    split = split_rows(frame, _reasons(rules))
    split = _drop_duplicates(split, CAMERA_HEALTH_KEY)
    # Health rows share the dead-letter table with detections: say which table they were meant for.
    return Split(split.good, split.rejected.with_columns(pl.format("camera_health: {}", pl.col("reason"))))


def _drop_duplicates(split: Split, key: tuple[str, ...]) -> Split:
    """Sort by the key (stable: the first row of a key stays first) and send later rows of a key to the
    dead letters. Comparing neighbours after the sort is much cheaper than hashing every key."""
    good = split.good.sort(list(key), maintain_order=True)
    if good.height < 2:
        return Split(good, split.rejected)
    dup = pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in key]).fill_null(False)
    marked = good.with_columns(dup.alias("__dup"))
    if not marked["__dup"].any():
        return Split(good, split.rejected)
    rejected = rejected_rows(
        good.filter(marked["__dup"]), f"duplicate key ({', '.join(key)}) within the batch"
    )
    return Split(good.filter(~marked["__dup"]), pl.concat([split.rejected, rejected]))


def rejected_rows(frame: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Dead-letter rows (camera_id, payload = the row as JSON, reason) for every row of `frame`."""
    return frame.select(pl.col("camera_id"), _payload(frame).alias("payload"), pl.lit(reason).alias("reason"))
