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

from quality.partition import Partition
from quality.results import CRITICAL, WARN

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
# Row-level invariants of the marts (keys, not-null, ranges, enumerations, cross-column rules, ids known to
# the site) are SQLMesh audits beside each model (transforms/models, transforms/audits), run by every build
# and shown in Dagster as the transforms' asset checks. What stays here is coverage: every row the day must
# have is there.


def _index_records_coverage(p: Partition) -> list[Expect]:
    return [
        Expect(
            "ExpectTableRowCountToEqual",
            {"value": len(p.index_blocks)},
            "one row per block of the day's index timeline",
        ),
    ]


def _hourly_coverage(key: str, count: Callable[[Partition], int]) -> Callable[[Partition], list[Expect]]:
    def expectations(p: Partition) -> list[Expect]:
        hours = int((p.window[1] - p.window[0]).total_seconds() // 3600)
        return [
            Expect(
                "ExpectTableRowCountToEqual",
                {"value": count(p) * hours},
                f"every {key.removesuffix('_id')} of the site, every hour of the day",
            ),
        ]

    return expectations


def _daily_zone_stats_coverage(p: Partition) -> list[Expect]:
    return [
        Expect(
            "ExpectTableRowCountToEqual", {"value": len(p.site.zones)}, "every zone of the site, every day"
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
        "index_records_coverage",
        "analytics.index_records",
        "index_records",
        CRITICAL,
        "One row per index block of the day.",
        _index_records_coverage,
    ),
    *[
        Suite(
            f"{scope}_hourly_coverage",
            f"analytics.{scope}_hourly",
            f"{scope}_hourly",
            CRITICAL,
            f"One row per {scope} of the site and hour of the day.",
            _hourly_coverage(f"{scope}_id", count),
        )
        for scope, count in (("zone", lambda p: len(p.site.zones)), ("camera", lambda p: len(p.site.cameras)))
    ],
    Suite(
        "daily_zone_stats_coverage",
        "analytics.daily_zone_stats",
        "daily_zone_stats",
        CRITICAL,
        "One row per zone of the site for the day.",
        _daily_zone_stats_coverage,
    ),
]
