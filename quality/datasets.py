"""The frames the suites validate: a table's partition rows, or a small aggregate of them, read from the
warehouse (both backends return Arrow-backed polars frames through `Warehouse.query`).

Derived columns are computed here, vectorised in polars, so the suites can state cross-column rules
(e.g. processed + dropped <= read) as per-row ranges that GX counts and points at. Mart tables are selected by
their site-local day column (`local_date`; `date` in index_records), one day per partition, for their
coverage (the marts' row-level rules are SQLMesh audits); raw tables by the UTC window of the camera's day.

Validating a dataframe keeps one code path for both engines; its cost grows with the partition (a
camera-day at the demo's 1-2 fps is a few hundred thousand rows, fine; at full camera fps, sample or push
the raw suites down to SQL).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl

from ingestion.schema import HEALTH_WINDOW_SECONDS
from ingestion.warehouse.base import Warehouse
from quality.partition import Partition

HOUR = timedelta(hours=1)
# An hour counts as working time when at least this much of it is working time (not a break, not off hours).
MIN_WORKING_MINUTES_PER_HOUR = 15

DETECTION_COLUMNS = (
    "ts, camera_id, frame_idx, track_id, class_id, confidence, x, y, w, h, zone_id, "
    "motion_score, worker_id, batch_id"
)


def _seconds_since(column: str, origin) -> pl.Expr:
    return (pl.col(column) - pl.lit(origin)).dt.total_microseconds() / 1e6


def detections(wh: Warehouse, p: Partition) -> pl.DataFrame:
    start, end = p.window
    return wh.query(
        f"SELECT {DETECTION_COLUMNS} FROM raw.detections "
        "WHERE camera_id = {p} AND ts >= {p} AND ts < {p} ORDER BY ts, track_id",
        [p.camera_id, start, end],
    )


def working_hours(p: Partition) -> pl.DataFrame:
    """The partition's clock hours that hold working time and have ended (today's later hours cannot have
    data yet): hour_start (UTC) and working_minutes."""
    rows = []
    intervals = p.working_intervals
    if intervals:
        hour = intervals[0][0].replace(minute=0, second=0, microsecond=0)
        now = datetime.now(UTC)
        while hour < intervals[-1][1] and hour + HOUR <= now:
            minutes = sum(
                max(timedelta(0), min(b, hour + HOUR) - max(a, hour)) / timedelta(minutes=1)
                for a, b in intervals
            )
            if minutes >= MIN_WORKING_MINUTES_PER_HOUR:
                rows.append((hour, minutes))
            hour += HOUR
    return pl.DataFrame(
        rows, schema={"hour_start": pl.Datetime("us", "UTC"), "working_minutes": pl.Float64}, orient="row"
    )


def camera_hours(wh: Warehouse, p: Partition) -> pl.DataFrame:
    """Per working hour of the camera's day: detections landed and frames the camera reported reading.

    Zero detections with frames read means the detector or the landing lost data; zero of both (or no
    health rows) means the camera itself was down.
    """
    start, end = p.window
    # Hour buckets from epoch seconds: the same on both backends whatever the session time zone.
    counts = wh.query(
        "SELECT CAST(floor(extract(epoch FROM ts) / 3600) AS BIGINT) AS hour_bucket, "
        "count(*) AS detections FROM raw.detections WHERE camera_id = {p} AND ts >= {p} AND ts < {p} "
        "GROUP BY 1",
        [p.camera_id, start, end],
    )
    health = wh.query(
        "SELECT CAST(floor(extract(epoch FROM window_start) / 3600) AS BIGINT) AS hour_bucket, "
        "sum(frames_read) AS frames_read FROM raw.camera_health "
        "WHERE camera_id = {p} AND window_start >= {p} AND window_start < {p} GROUP BY 1",
        [p.camera_id, start, end],
    )
    hours = working_hours(p).with_columns(
        hour_bucket=(pl.col("hour_start").dt.epoch("s") // 3600).cast(pl.Int64),
        hour_local=pl.col("hour_start").dt.convert_time_zone(p.site.timezone).dt.strftime("%H:%M"),
        camera_id=pl.lit(p.camera_id),
    )
    return (
        hours.join(counts.with_columns(pl.col("hour_bucket").cast(pl.Int64)), on="hour_bucket", how="left")
        .join(health.with_columns(pl.col("hour_bucket").cast(pl.Int64)), on="hour_bucket", how="left")
        .select(
            "camera_id",
            "hour_local",
            "hour_start",
            "working_minutes",
            pl.col("detections").fill_null(0).cast(pl.Int64),
            pl.col("frames_read").cast(pl.Int64),
        )
        .sort("hour_start")
    )


def camera_coverage(wh: Warehouse, p: Partition) -> pl.DataFrame:
    """How far the camera's first and last detections are from the start and end of its working day.

    For today the end is `now` (data cannot be newer than that), so this doubles as a freshness check.
    """
    intervals = p.working_intervals
    schema = {
        "camera_id": pl.String,
        "first_ts": pl.Datetime("us", "UTC"),
        "last_ts": pl.Datetime("us", "UTC"),
        "minutes_after_work_start": pl.Float64,
        "minutes_before_work_end": pl.Float64,
    }
    if not intervals:  # no working time, nothing is expected
        return pl.DataFrame(schema=schema)
    start, end = p.window
    seen = wh.query(
        "SELECT min(ts) AS first_ts, max(ts) AS last_ts FROM raw.detections "
        "WHERE camera_id = {p} AND ts >= {p} AND ts < {p}",
        [p.camera_id, start, end],
    )
    work_start, work_end = intervals[0][0], intervals[-1][1]
    expected_end = min(work_end, datetime.now(UTC))
    if expected_end <= work_start:  # today, before work starts: nothing is expected yet
        return pl.DataFrame(schema=schema)
    frame = seen.with_columns(camera_id=pl.lit(p.camera_id)).with_columns(
        minutes_after_work_start=(_seconds_since("first_ts", work_start) / 60).fill_null(float("inf")),
        minutes_before_work_end=(-_seconds_since("last_ts", expected_end) / 60).fill_null(float("inf")),
    )
    return frame.select(list(schema)).cast(schema)


def camera_health(wh: Warehouse, p: Partition) -> pl.DataFrame:
    start, end = p.window
    frame = wh.query(
        "SELECT * FROM raw.camera_health "
        "WHERE camera_id = {p} AND window_start >= {p} AND window_start < {p} ORDER BY window_start",
        [p.camera_id, start, end],
    )
    return frame.with_columns(
        window_seconds_into_day=_seconds_since("window_start", start),
        window_offset_us=pl.col("window_start").dt.epoch("us") % (HEALTH_WINDOW_SECONDS * 1_000_000),
        unaccounted_frames=pl.col("frames_processed") + pl.col("frames_dropped") - pl.col("frames_read"),
        latency_missing=(pl.col("frames_processed") > 0) & pl.col("latency_ms_mean").is_null(),
    )


def _mart_day(table: str, day_column: str = "local_date") -> Callable[[Warehouse, Partition], pl.DataFrame]:
    """A mart's rows of the partition's day (the suites count them: coverage)."""

    def read(wh: Warehouse, p: Partition) -> pl.DataFrame:
        return wh.query(f"SELECT * FROM analytics.{table} WHERE {day_column} = {{p}}", [p.day])

    return read


DATASETS: dict[str, Callable[[Warehouse, Partition], pl.DataFrame]] = {
    "detections": detections,
    "camera_hours": camera_hours,
    "camera_coverage": camera_coverage,
    "camera_health": camera_health,
    "index_records": _mart_day("index_records", "date"),
    "zone_hourly": _mart_day("zone_hourly"),
    "camera_hourly": _mart_day("camera_hourly"),
    "daily_zone_stats": _mart_day("daily_zone_stats"),
}
