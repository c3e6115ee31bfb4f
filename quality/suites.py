"""Great Expectations suites as code: what each table's partition must satisfy.

A suite here is plain data (expectation class name + arguments) so that importing this module, or listing the
checks for Dagster, never imports great_expectations; `quality.gx_validate` builds the GX objects when a
check runs. Each suite is one check: grain, values, distribution and freshness are separate checks so a
failure names what is wrong.

Each suite validates one *dataset*: a frame read from the warehouse for the partition (see
`quality.datasets`), sometimes with derived columns (e.g. `seconds_mismatch`) that turn a cross-column rule
into a per-row one that GX can count and point at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ingestion.vocabulary import ANOMALY_TYPES, COMPLETION_STATUSES, SESSION_STATUSES, SEVERITIES, ZONE_TYPES
from quality.partition import Partition
from quality.results import CRITICAL, WARN

# Float sums computed two ways (e.g. active + idle vs duration) may differ by rounding only.
SECONDS_TOLERANCE = 1e-3
# A camera's detections must cover its working day to within this many minutes at either end.
COVERAGE_MINUTES = 60


@dataclass(frozen=True)
class Expect:
    """One expectation: a GX 1.x expectation class (great_expectations.expectations) name and arguments."""

    kind: str
    kwargs: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Suite:
    """One check: a named expectation suite on one dataset of a table's partition."""

    name: str  # the check name (Dagster asset check name), unique per table
    table: str  # the guarded table
    dataset: str  # key into quality.datasets.DATASETS
    severity: str
    description: str
    expectations: Callable[[Partition], list[Expect]] = field(repr=False)
    per_camera: bool = False  # raw partitions are day x camera

    @property
    def gx_name(self) -> str:
        return f"{self.table}.{self.name}"


def _between(column: str, low: float | None, high: float | None, why: str, **kw: Any) -> Expect:
    return Expect(
        "ExpectColumnValuesToBeBetween", {"column": column, "min_value": low, "max_value": high, **kw}, why
    )


def _not_null(columns: list[str]) -> list[Expect]:
    return [Expect("ExpectColumnValuesToNotBeNull", {"column": c}, f"{c} is always set") for c in columns]


def _in_set(column: str, values: list, why: str) -> Expect:
    return Expect("ExpectColumnValuesToBeInSet", {"column": column, "value_set": list(values)}, why)


def _unique(columns: list[str], why: str) -> Expect:
    if len(columns) == 1:
        return Expect("ExpectColumnValuesToBeUnique", {"column": columns[0]}, why)
    return Expect("ExpectCompoundColumnsToBeUnique", {"column_list": columns}, why)


def _window_seconds(column: str, p: Partition, why: str) -> Expect:
    """`column` (seconds since the day's start, derived by the dataset) lies inside the local day."""
    start, end = p.window
    return _between(column, 0, (end - start).total_seconds(), why, strict_max=True)


# ------------------------------------------------------------------------------------------ raw.detections


def _detections_grain(p: Partition) -> list[Expect]:
    return [
        _unique(
            ["camera_id", "ts", "track_id"], "one row per camera, frame time and track (DESIGN unique key)"
        )
    ]


def _detections_values(p: Partition) -> list[Expect]:
    cameras = [p.camera_id] if p.camera_id else list(p.site.camera_ids)
    return [
        *_not_null(
            [
                "ts",
                "camera_id",
                "frame_idx",
                "track_id",
                "class_id",
                "x",
                "y",
                "w",
                "h",
                "motion_score",
                "batch_id",
            ]
        ),
        _in_set("camera_id", cameras, "rows belong to the partition's camera(s)"),
        _between("confidence", 0, 1, "detector confidence is a probability (null: no calibrated score)"),
        _between("motion_score", 0, 1, "motion_score is a share of moving pixels"),
        _between("w", 0, None, "bbox width is positive", strict_min=True),
        _between("h", 0, None, "bbox height is positive", strict_min=True),
        _between("frame_idx", 0, None, "frame index is never negative"),
        _in_set("zone_id", p.zone_ids(), "zone_id names a zone of the row's camera (or is null)"),
    ]


def _camera_activity(p: Partition) -> list[Expect]:
    return [
        _between(
            "detections",
            1,
            None,
            "every camera-hour of working time has detections: zero means a broken or silent camera "
            "(frames_read tells a dead camera from a detector that stopped seeing)",
        )
    ]


def _detections_coverage(p: Partition) -> list[Expect]:
    return [
        _between(
            "minutes_after_work_start",
            None,
            COVERAGE_MINUTES,
            "the camera's first detection comes soon after work starts",
        ),
        _between(
            "minutes_before_work_end",
            None,
            COVERAGE_MINUTES,
            "the camera's last detection comes close to the end of work (or to now, today): data is fresh",
        ),
    ]


# --------------------------------------------------------------------------------------- raw.camera_health


def _camera_health_grain(p: Partition) -> list[Expect]:
    return [_unique(["camera_id", "window_start"], "one health row per camera and 10 s window")]


def _camera_health_values(p: Partition) -> list[Expect]:
    return [
        *_not_null(
            ["window_start", "camera_id", "frames_read", "frames_processed", "frames_dropped", "batch_id"]
        ),
        _in_set("camera_id", [p.camera_id], "rows belong to the partition's camera"),
        _window_seconds("window_seconds_into_day", p, "the window starts inside the camera's local day"),
        _in_set("window_offset_us", [0], "windows start on the 10 s grid (aligned to the epoch)"),
        _between(
            "unaccounted_frames",
            None,
            0,
            "processed + dropped frames never exceed the frames read in the window",
        ),
        _in_set(
            "latency_missing",
            [False],
            "a window that processed frames reports their latency (an idle window has none)",
        ),
        _between("latency_ms_mean", 0, None, "latencies are durations (or null)"),
        _between("latency_ms_p95", 0, None, "latencies are durations (or null)"),
    ]


# ---------------------------------------------------------------------------------------- analytics marts


def _sessions_grain(p: Partition) -> list[Expect]:
    return [
        _unique(["session_id"], "session_id identifies a visit"),
        _unique(["camera_id", "track_id", "entry_time"], "a track enters a zone once per entry time"),
    ]


def _sessions_values(p: Partition) -> list[Expect]:
    n = len(p.index_blocks)
    return [
        *_not_null(
            [
                "session_id",
                "camera_id",
                "zone_id",
                "track_id",
                "entry_time",
                "exit_time",
                "duration_seconds",
                "total_active_seconds",
                "total_idle_seconds",
                "status",
            ]
        ),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "exit_time", "column_B": "entry_time", "or_equal": True},
            "exit_time >= entry_time",
        ),
        _between(
            "duration_seconds",
            p.site.thresholds.min_session_seconds,
            None,
            "visits shorter than min_session_seconds are dropped, so none is shorter (or negative)",
        ),
        _between("total_active_seconds", 0, None, "active seconds are never negative"),
        _between("total_idle_seconds", 0, None, "idle seconds are never negative"),
        _between(
            "seconds_mismatch",
            0,
            SECONDS_TOLERANCE,
            "active + idle seconds equal the duration (and the duration equals exit - entry)",
        ),
        _in_set("status", SESSION_STATUSES, "status is completed, interrupted or active"),
        _in_set("zone_id", p.zone_ids(), "zone_id is a zone of the site"),
        _between(
            "index_number", 1, max(n, 1), "index_number is a block of the day's index timeline (or null)"
        ),
        _window_seconds("entry_seconds_into_day", p, "the session enters inside the partition's local day"),
    ]


def _index_records_grain(p: Partition) -> list[Expect]:
    return [
        _unique(["date", "index_number"], "one row per date and index block"),
        Expect(
            "ExpectTableRowCountToEqual",
            {"value": len(p.index_blocks)},
            "one row per block of the day's index timeline",
        ),
    ]


def _index_records_values(p: Partition) -> list[Expect]:
    return [
        *_not_null(
            [
                "date",
                "index_number",
                "scheduled_start",
                "scheduled_end",
                "completion_status",
                "total_active_seconds",
                "total_idle_seconds",
            ]
        ),
        _between("index_number", 1, len(p.index_blocks), "index_number is a block of the day's timeline"),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "scheduled_end", "column_B": "scheduled_start"},
            "scheduled_end > scheduled_start",
        ),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {
                "column_A": "actual_end",
                "column_B": "actual_start",
                "or_equal": True,
                "ignore_row_if": "either_value_is_missing",
            },
            "actual_end >= actual_start",
        ),
        _between("productivity_score", 0, 1, "productivity = active / (active + idle) lies in 0..1"),
        _between("total_active_seconds", 0, None, "active seconds are never negative"),
        _between("total_idle_seconds", 0, None, "idle seconds are never negative"),
        _between("total_workers", 0, None, "worker counts are never negative"),
        _between("anomalies_count", 0, None, "anomaly counts are never negative"),
        _in_set(
            "completion_status",
            COMPLETION_STATUSES,
            "completion_status is on_time, delayed, overrun or incomplete",
        ),
        _between("productivity_mismatch", 0, 1e-6, "productivity_score equals active / (active + idle)"),
    ]


def _hourly_grain(key: str, count: Callable[[Partition], int]) -> Callable[[Partition], list[Expect]]:
    def expectations(p: Partition) -> list[Expect]:
        hours = int((p.window[1] - p.window[0]).total_seconds() // 3600)
        return [
            _unique([key, "hour_start"], f"one row per {key.removesuffix('_id')} and hour"),
            Expect("ExpectTableRowCountToEqual", {"value": count(p) * hours},
                   f"every {key.removesuffix('_id')} of the site, every hour of the day"),
        ]

    return expectations


def _hourly_values(scope: str) -> Callable[[Partition], list[Expect]]:
    def expectations(p: Partition) -> list[Expect]:
        named = ["zone_id", "zone_name"] if scope == "zone" else []
        return [
            *_not_null(["hour_start", "hour_end", "local_hour", "camera_id", "camera_name", *named,
                        "occupied_seconds", "sessions"]),
            _in_set("camera_id", list(p.site.camera_ids), "camera_id is a camera of the site"),
            *([_in_set("zone_id", p.zone_ids(), "zone_id is a zone of the site")] if scope == "zone" else []),
            _between("local_hour", 0, 23, "local_hour is an hour of the day"),
            Expect(
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "hour_end", "column_B": "hour_start"},
                "hour_end > hour_start",
            ),
            *[
                _between(c, 0, 1, f"{c} is a share in 0..1")
                for c in ("utilization", "productivity", "idle_ratio", "camera_uptime")
            ],
            *[
                _between(c, 0, None, f"{c} is never negative")
                for c in ("occupied_seconds", "person_seconds", "active_seconds", "idle_seconds", "sessions",
                          "mean_dwell_seconds", "scheduled_seconds")
            ],
            _between("occupied_beyond_period", None, SECONDS_TOLERANCE,
                     "occupied time fits in the hour (occupied_seconds <= hour_end - hour_start)"),
            _between("share_mismatch", 0, 1e-6, "productivity + idle_ratio = 1 where there are sessions"),
        ]

    return expectations


def _daily_zone_stats_grain(p: Partition) -> list[Expect]:
    return [
        _unique(["local_date", "zone_id"], "one row per day and zone"),
        Expect(
            "ExpectTableRowCountToEqual", {"value": len(p.site.zones)}, "every zone of the site, every day"
        ),
    ]


def _daily_zone_stats_values(p: Partition) -> list[Expect]:
    return [
        *_not_null(["local_date", "zone_id", "camera_id", "sessions", "total_dwell_seconds"]),
        _in_set("zone_id", p.zone_ids(), "zone_id is a zone of the site"),
        _in_set("zone_type", ZONE_TYPES, "zone_type is work_area, inspection, break_area or restricted"),
        *[
            _between(c, 0, None, f"{c} is never negative")
            for c in (
                "sessions",
                "unique_visitors",
                "total_dwell_seconds",
                "total_active_seconds",
                "total_idle_seconds",
                "occupied_seconds",
                "peak_people",
                "anomalies",
            )
        ],
        _between("productivity", 0, 1, "productivity lies in 0..1"),
        _between("utilization", 0, 1, "utilization lies in 0..1"),
        _between("dwell_mismatch", 0, SECONDS_TOLERANCE, "dwell seconds = active + idle seconds"),
    ]


def _anomalies_grain(p: Partition) -> list[Expect]:
    return [_unique(["anomaly_id"], "anomaly_id identifies an anomaly")]


def _anomalies_values(p: Partition) -> list[Expect]:
    return [
        *_not_null(["anomaly_id", "anomaly_type", "severity", "ts", "camera_id", "description"]),
        _in_set("anomaly_type", ANOMALY_TYPES, "anomaly_type is one the marts know"),
        _in_set("severity", SEVERITIES, "severity is info, warning, error or critical"),
        _in_set("camera_id", list(p.site.camera_ids), "camera_id is a camera of the site"),
        _in_set("zone_id", p.zone_ids(), "zone_id is a zone of the site (or null)"),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {
                "column_A": "ts_end",
                "column_B": "ts",
                "or_equal": True,
                "ignore_row_if": "either_value_is_missing",
            },
            "an anomaly ends after it starts",
        ),
        _between(
            "index_number", 1, max(len(p.index_blocks), 1), "index_number is a block of the day (or null)"
        ),
        _in_set(
            "overlaps_day", [True], "the anomaly happens (at least partly) inside the partition's local day"
        ),
    ]


SUITES: list[Suite] = [
    Suite(
        "detections_grain",
        "raw.detections",
        "detections",
        CRITICAL,
        "No duplicate detections: (camera_id, ts, track_id) is unique in the partition.",
        _detections_grain,
        per_camera=True,
    ),
    Suite(
        "detections_values",
        "raw.detections",
        "detections",
        CRITICAL,
        "Detections are well-formed: not-null columns set, confidence and motion in 0..1, positive boxes, "
        "known zones.",
        _detections_values,
        per_camera=True,
    ),
    Suite(
        "camera_activity",
        "raw.detections",
        "camera_hours",
        CRITICAL,
        "Every camera-hour of working time has detections; a camera that goes silent fails here.",
        _camera_activity,
        per_camera=True,
    ),
    Suite(
        "detections_freshness",
        "raw.detections",
        "camera_coverage",
        WARN,
        "The camera's detections cover its working day (or reach close to now, today).",
        _detections_coverage,
        per_camera=True,
    ),
    Suite(
        "camera_health_grain",
        "raw.camera_health",
        "camera_health",
        WARN,
        "One health row per camera and 10 s window.",
        _camera_health_grain,
        per_camera=True,
    ),
    Suite(
        "camera_health_values",
        "raw.camera_health",
        "camera_health",
        WARN,
        "Health rows are consistent: on the 10 s grid inside the day, processed + dropped <= read, "
        "a window that processed frames reports its latency.",
        _camera_health_values,
        per_camera=True,
    ),
    Suite(
        "sessions_grain",
        "analytics.sessions",
        "sessions",
        CRITICAL,
        "One row per visit: session_id and (camera_id, track_id, entry_time) are unique.",
        _sessions_grain,
    ),
    Suite(
        "sessions_values",
        "analytics.sessions",
        "sessions",
        CRITICAL,
        "Sessions are consistent: exit >= entry, durations >= min_session_seconds, active + idle = duration, "
        "known status, zone and index.",
        _sessions_values,
    ),
    Suite(
        "index_records_grain",
        "analytics.index_records",
        "index_records",
        CRITICAL,
        "One row per index block of the day.",
        _index_records_grain,
    ),
    Suite(
        "index_records_values",
        "analytics.index_records",
        "index_records",
        CRITICAL,
        "Index records are consistent: productivity in 0..1 and equal to active / (active + idle), "
        "non-negative totals, known completion status.",
        _index_records_values,
    ),
    *[
        suite
        for scope, count in (("zone", lambda p: len(p.site.zones)), ("camera", lambda p: len(p.site.cameras)))
        for suite in (
            Suite(
                f"{scope}_hourly_grain",
                f"analytics.{scope}_hourly",
                f"{scope}_hourly",
                CRITICAL,
                f"One row per {scope} of the site and hour of the day.",
                _hourly_grain(f"{scope}_id", count),
            ),
            Suite(
                f"{scope}_hourly_values",
                f"analytics.{scope}_hourly",
                f"{scope}_hourly",
                CRITICAL,
                "Shares (utilization, productivity, idle ratio, uptime) in 0..1 and consistent, counts and "
                "seconds non-negative, occupied time within the hour, names and local hour set.",
                _hourly_values(scope),
            ),
        )
    ],
    Suite(
        "daily_zone_stats_grain",
        "analytics.daily_zone_stats",
        "daily_zone_stats",
        CRITICAL,
        "One row per zone of the site for the day.",
        _daily_zone_stats_grain,
    ),
    Suite(
        "daily_zone_stats_values",
        "analytics.daily_zone_stats",
        "daily_zone_stats",
        CRITICAL,
        "Daily zone totals are non-negative, productivity and utilization in 0..1, dwell = active + idle, "
        "zones and zone types known.",
        _daily_zone_stats_values,
    ),
    Suite(
        "anomalies_grain",
        "analytics.anomalies",
        "anomalies",
        CRITICAL,
        "One row per anomaly: anomaly_id is unique.",
        _anomalies_grain,
    ),
    Suite(
        "anomalies_values",
        "analytics.anomalies",
        "anomalies",
        CRITICAL,
        "Anomalies have a known type, camera and zone and happen inside the day.",
        _anomalies_values,
    ),
]
