"""Week and month rollups of the daily marts: `analytics.zone_period_stats` and
`analytics.camera_period_stats` (site-local ISO weeks starting Monday, calendar months).

Incremental: after the daily marts of some days are built, only the weeks and months holding those days
are recomputed (deleted and re-inserted in one transaction) from the daily rows; every other period is
untouched. Because every build of a day goes through `build_marts` (first build, late data, restatement),
a period is restated whenever a day inside it changes. A period row is the plain sum of its days (ratios
recomputed from the sums), so it always equals the sum of the daily rows it covers.

The daily sources are named once in ROLLUPS: switching to other daily tables (e.g. per-grain performance
marts) means editing the specs' `source` and column lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

GRAINS = ("week", "month")


@dataclass(frozen=True)
class RollupSpec:
    table: str  # the rollup table, in schema analytics
    source: str  # the daily mart it sums
    keys: tuple[tuple[str, str], ...]  # (column, SQL type) identifying the row besides grain and period
    sums: tuple[tuple[str, str], ...]  # additive columns: SUM
    maxes: tuple[tuple[str, str], ...] = ()  # MAX over the days
    # Derived columns: name -> SQL over the summed columns (evaluated on the aggregated row).
    ratios: tuple[tuple[str, str], ...] = ()
    comment: str = ""


ZONE_ROLLUP = RollupSpec(
    table="analytics.zone_period_stats",
    source="analytics.daily_zone_stats",
    keys=(
        ("zone_id", "VARCHAR"),
        ("zone_name", "VARCHAR"),
        ("zone_type", "VARCHAR"),
        ("camera_id", "VARCHAR"),
    ),
    sums=(
        ("sessions", "BIGINT"),
        ("unique_visitors", "BIGINT"),  # summed over days: visitor-days, not distinct people of the period
        ("total_dwell_seconds", "DOUBLE PRECISION"),
        ("total_active_seconds", "DOUBLE PRECISION"),
        ("total_idle_seconds", "DOUBLE PRECISION"),
        ("occupied_seconds", "DOUBLE PRECISION"),
        ("scheduled_seconds", "DOUBLE PRECISION"),
        ("occupied_working_seconds", "DOUBLE PRECISION"),
        ("anomalies", "BIGINT"),
    ),
    maxes=(("peak_people", "INTEGER"),),
    ratios=(
        ("productivity", "total_active_seconds / NULLIF(total_active_seconds + total_idle_seconds, 0)"),
        ("utilization", "occupied_working_seconds / NULLIF(scheduled_seconds, 0)"),
        ("mean_dwell_seconds", "total_dwell_seconds / NULLIF(sessions, 0)"),
    ),
    comment="Week and month rollups of analytics.daily_zone_stats (site-local ISO weeks, calendar months): "
    "sums of the days, ratios recomputed from the sums; unique_visitors is visitor-days.",
)

CAMERA_ROLLUP = RollupSpec(
    table="analytics.camera_period_stats",
    source="analytics.daily_camera_stats",
    keys=(("camera_id", "VARCHAR"), ("camera_name", "VARCHAR")),
    sums=(
        ("detections", "BIGINT"),
        ("frames_read", "BIGINT"),
        ("frames_processed", "BIGINT"),
        ("frames_dropped", "BIGINT"),
        ("decode_errors", "BIGINT"),
        ("sessions", "BIGINT"),
        ("total_dwell_seconds", "DOUBLE PRECISION"),
        ("total_active_seconds", "DOUBLE PRECISION"),
        ("total_idle_seconds", "DOUBLE PRECISION"),
        ("uptime_days", "DOUBLE PRECISION"),  # sum of the days' uptime: uptime = uptime_days / days
        ("anomalies", "BIGINT"),
    ),
    maxes=(("latency_ms_p95_max", "DOUBLE PRECISION"),),
    ratios=(
        ("productivity", "total_active_seconds / NULLIF(total_active_seconds + total_idle_seconds, 0)"),
        ("uptime", "uptime_days / NULLIF(days, 0)"),
    ),
    comment="Week and month rollups of analytics.daily_camera_stats (site-local ISO weeks, calendar months).",
)

ROLLUPS = (ZONE_ROLLUP, CAMERA_ROLLUP)
# Daily columns that are not stored as such: how each summed name is read from the source row.
_SOURCE_EXPR = {
    "occupied_working_seconds": "COALESCE(utilization * scheduled_seconds, 0)",
    "uptime_days": "uptime",
}


def period_start(grain: str, day: date) -> date:
    """The first day of the site-local ISO week (Monday) or calendar month holding `day`."""
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown rollup grain {grain!r}: use one of {', '.join(GRAINS)}")


def period_end(grain: str, start: date) -> date:
    """Exclusive end of the period starting on `start`."""
    if grain == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def touched_periods(days: Iterable[date]) -> dict[str, list[date]]:
    """The week and month starts holding `days`, per grain, sorted."""
    return {g: sorted({period_start(g, d) for d in days}) for g in GRAINS}


_COMMENTS = {
    "grain": "week (site-local ISO week, Monday first) | month (calendar month)",
    "period_start": "first site-local day of the period",
    "period_end": "day after the period's last day (exclusive)",
    "days": "days of the period with a daily row",
    "unique_visitors": "sum over the days of the daily distinct visitors (visitor-days)",
    "occupied_working_seconds": "occupied time inside scheduled working time (utilization x scheduled)",
    "uptime_days": "sum of the days' uptime (1 = a whole day delivering frames)",
    "peak_people": "most people present at once on any day of the period",
    "latency_ms_p95_max": "worst 10 s window p95 latency of the period, ms",
    "productivity": "active / (active + idle) over the period; null without sessions",
    "utilization": "occupied_working_seconds / scheduled_seconds; null without scheduled time",
    "mean_dwell_seconds": "total_dwell_seconds / sessions; null without sessions",
    "uptime": "mean daily uptime over the days of the period",
}


def comment_sql(spec: RollupSpec) -> list[str]:
    """COMMENT ON the table and every column (BI reads every analytics relation with its comments)."""
    names = [
        "grain",
        "period_start",
        "period_end",
        *(n for n, _ in spec.keys),
        "days",
        *(n for n, _ in spec.sums),
        *(n for n, _ in spec.maxes),
        *(n for n, _ in spec.ratios),
    ]
    out = [f"COMMENT ON TABLE {spec.table} IS '{spec.comment.replace(chr(39), chr(39) * 2)}'"]
    for n in names:
        text = _COMMENTS.get(n) or (
            f"from {spec.source}" if n in {k for k, _ in spec.keys} else f"sum over the period's days of {n}"
        )
        out.append(f"COMMENT ON COLUMN {spec.table}.{n} IS '{text.replace(chr(39), chr(39) * 2)}'")
    return out


def create_sql(spec: RollupSpec, backend: str) -> str:
    def sql_type(t: str) -> str:
        names = {"VARCHAR": "TEXT"} if backend == "postgres" else {"DOUBLE PRECISION": "DOUBLE"}
        return names.get(t, t)

    cols = [
        ("grain", "VARCHAR"),
        ("period_start", "DATE"),
        ("period_end", "DATE"),
        *spec.keys,
        ("days", "INTEGER"),
        *spec.sums,
        *spec.maxes,
        *((n, "DOUBLE PRECISION") for n, _ in spec.ratios),
    ]
    body = ",\n    ".join(f"{n} {sql_type(t)}" for n, t in cols)
    # No PRIMARY KEY: DuckDB rejects deleting and re-inserting a key in one transaction; the refresh's
    # DELETE of exactly the periods it inserts keeps (grain, period_start, key) unique.
    return f"CREATE TABLE IF NOT EXISTS {spec.table} (\n    {body}\n)"


def refresh_sql(spec: RollupSpec, grain: str, starts: list[date]) -> list[str]:
    """DELETE and INSERT statements recomputing the `grain` periods starting on `starts` from the days."""
    if not starts:
        return []
    literals = ", ".join(f"CAST('{s.isoformat()}' AS DATE)" for s in starts)
    lo, hi = min(starts), period_end(grain, max(starts))
    # DATE_TRUNC on a date: ISO weeks start on Monday on both engines; the cast drops the time part.
    start_expr = f"CAST(DATE_TRUNC('{grain}', local_date) AS DATE)"
    keys = [n for n, _ in spec.keys]
    inner = ", ".join(
        [
            *keys,
            "local_date",
            f"{start_expr} AS period_start",
            *(f"{_SOURCE_EXPR.get(n, n)} AS {n}" for n, _ in spec.sums),
            *(n for n, _ in spec.maxes),
        ]
    )
    aggregated = ", ".join(
        [
            "grain",
            "period_start",
            *keys,
            "CAST(COUNT(DISTINCT local_date) AS INTEGER) AS days",
            *(f"CAST(COALESCE(SUM({n}), 0) AS {_cast(t)}) AS {n}" for n, t in spec.sums),
            *(f"MAX({n}) AS {n}" for n, _ in spec.maxes),
        ]
    )
    ratios = ", ".join(f"CAST({expr} AS DOUBLE PRECISION) AS {n}" for n, expr in spec.ratios)
    end_expr = (
        "CAST(period_start + INTERVAL '7 days' AS DATE)"
        if grain == "week"
        else "CAST(period_start + INTERVAL '1 month' AS DATE)"
    )
    summed = ", ".join([n for n, _ in spec.sums] + [n for n, _ in spec.maxes])
    window = f"local_date >= CAST('{lo}' AS DATE) AND local_date < CAST('{hi}' AS DATE)"
    columns = ", ".join(
        [
            "grain",
            "period_start",
            "period_end",
            *keys,
            "days",
            *(n for n, _ in spec.sums),
            *(n for n, _ in spec.maxes),
            *(n for n, _ in spec.ratios),
        ]
    )
    return [
        f"DELETE FROM {spec.table} WHERE grain = '{grain}' AND period_start IN ({literals})",
        f"""INSERT INTO {spec.table} ({columns})
SELECT grain, period_start, {end_expr} AS period_end, {", ".join(keys)}, days,
    {summed}{", " + ratios if ratios else ""}
FROM (
  SELECT {aggregated}
  FROM (SELECT '{grain}' AS grain, {inner} FROM {spec.source}
        WHERE {window}) AS d
  WHERE period_start IN ({literals})
  GROUP BY grain, period_start, {", ".join(keys)}
) AS agg""",
    ]


def _cast(sql_type: str) -> str:
    return "DOUBLE PRECISION" if sql_type.startswith("DOUBLE") else sql_type


@dataclass(frozen=True)
class RollupRefresh:
    periods: dict[str, list[date]]
    seconds: float


def refresh_rollups(
    execute: Callable[[str], object],
    backend: str,
    days: Iterable[date],
    specs: tuple[RollupSpec, ...] = ROLLUPS,
) -> RollupRefresh:
    """Recompute the week and month rows holding `days`, for every spec. `execute` runs one statement
    inside the caller's transaction (the SQLMesh engine adapter's, in build_marts)."""
    began = time.perf_counter()
    periods = touched_periods(days)
    for spec in specs:
        execute(create_sql(spec, backend))
        for statement in comment_sql(spec):
            execute(statement)
        for grain, starts in periods.items():
            for statement in refresh_sql(spec, grain, starts):
                execute(statement)
    return RollupRefresh(periods, time.perf_counter() - began)
