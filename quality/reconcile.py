"""Reconciliations across tables, in SQL that runs unchanged on DuckDB and PostgreSQL.

Each query returns only the disagreeing rows (with both sides' numbers), so an empty result is a pass and
a non-empty one is exactly what a person needs to look at:

- `ledger_row_counts` (raw.detections, per camera-day): every committed ledger batch of the camera whose
  window overlaps the day has exactly row_count rows carrying its batch_id (anywhere in its window, so a
  batch that crosses midnight is counted whole). Batches landed without a window or a camera cannot be
  attributed to a camera-day and are not checked here.
- `zone_seconds_reconciliation` (analytics.daily_zone_stats, per day): per zone, the sessions' active and
  idle seconds add up to the daily totals (session counts are shown alongside; the count itself is
  daily_zone_stats' own audit).
- `index_seconds_reconciliation` (analytics.index_records, per day): per index block, the totals equal
  the sessions' time clipped to the block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from ingestion.warehouse.base import Warehouse
from quality.partition import Partition
from quality.results import CRITICAL, MAX_OFFENDING_ROWS, CheckResult, jsonable

# Seconds summed two ways differ by float rounding only; anything above this is a real disagreement.
SECONDS_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Reconciliation:
    name: str
    table: str  # the table it guards (its Dagster asset)
    description: str
    mismatches: Callable[[Warehouse, Partition], tuple[pl.DataFrame, dict]]  # (disagreeing rows, observed)
    severity: str = CRITICAL
    per_camera: bool = False

    def run(self, wh: Warehouse, p: Partition) -> CheckResult:
        bad, observed = self.mismatches(wh, p)
        rows = [{k: jsonable(v) for k, v in r.items()} for r in bad.head(MAX_OFFENDING_ROWS).to_dicts()]
        failed = [f"{bad.height} {observed.get('unit', 'rows')} disagree"] if bad.height else []
        return CheckResult(
            name=self.name,
            table=self.table,
            partition=p.key,
            passed=bad.height == 0,
            severity=self.severity,
            description=self.description,
            observed={k: v for k, v in observed.items() if k != "unit"},
            failed_expectations=failed,
            unexpected_count=bad.height,
            offending_rows=rows,
        )


LEDGER_SQL = """
WITH batches AS (
    SELECT batch_id, row_count, window_start, window_end
    FROM raw.ingest_batches
    WHERE status = 'committed' AND camera_id = {p} AND window_start < {p} AND window_end > {p}
),
landed AS (
    SELECT d.batch_id, count(*) AS rows_found
    FROM raw.detections d
    WHERE d.batch_id IN (SELECT batch_id FROM batches)
      AND d.ts >= (SELECT min(window_start) FROM batches) AND d.ts < (SELECT max(window_end) FROM batches)
    GROUP BY d.batch_id
)
SELECT b.batch_id, b.window_start, b.window_end, b.row_count AS ledger_rows,
       coalesce(l.rows_found, 0) AS rows_found
FROM batches b LEFT JOIN landed l ON l.batch_id = b.batch_id
ORDER BY b.window_start, b.batch_id
"""


def ledger_row_counts(wh: Warehouse, p: Partition) -> tuple[pl.DataFrame, dict]:
    start, end = p.window
    batches = wh.query(LEDGER_SQL, [p.camera_id, end, start])
    bad = batches.filter(pl.col("ledger_rows") != pl.col("rows_found")).with_columns(
        missing=pl.col("ledger_rows") - pl.col("rows_found")
    )
    return bad, {
        "batches": batches.height,
        "ledger_rows": int(batches["ledger_rows"].sum() or 0),
        "rows_found": int(batches["rows_found"].sum() or 0),
        "unit": "ledger batches",
    }


def _epoch(expr: str) -> str:
    # Seconds since the epoch as a double on both engines (PostgreSQL's extract returns numeric).
    return f"CAST(extract(epoch FROM {expr}) AS FLOAT8)"


# Each session counts in a block for its part inside [scheduled_start, scheduled_end), its active and idle
# seconds split in proportion to that part (DESIGN: "totals equal the sessions clipped to each block").
INDEX_SQL = f"""
WITH blocks AS (
    SELECT index_number, scheduled_start, scheduled_end FROM ref.index_timeline WHERE date = {{p}}
),
clipped AS (
    SELECT b.index_number,
           s.total_active_seconds * ({_epoch("LEAST(s.exit_time, b.scheduled_end)")}
                                     - {_epoch("GREATEST(s.entry_time, b.scheduled_start)")})
               / NULLIF({_epoch("s.exit_time")} - {_epoch("s.entry_time")}, 0) AS active_part,
           s.total_idle_seconds * ({_epoch("LEAST(s.exit_time, b.scheduled_end)")}
                                   - {_epoch("GREATEST(s.entry_time, b.scheduled_start)")})
               / NULLIF({_epoch("s.exit_time")} - {_epoch("s.entry_time")}, 0) AS idle_part
    FROM blocks b
    JOIN analytics.sessions s ON s.entry_time < b.scheduled_end AND s.exit_time > b.scheduled_start
),
from_sessions AS (
    SELECT b.index_number, coalesce(sum(c.active_part), 0) AS active_seconds,
           coalesce(sum(c.idle_part), 0) AS idle_seconds
    FROM blocks b LEFT JOIN clipped c ON c.index_number = b.index_number
    GROUP BY b.index_number
)
SELECT f.index_number,
       r.total_active_seconds AS index_active_seconds, f.active_seconds AS session_active_seconds,
       r.total_idle_seconds AS index_idle_seconds, f.idle_seconds AS session_idle_seconds
FROM from_sessions f
LEFT JOIN analytics.index_records r ON r.date = {{p}} AND r.index_number = f.index_number
ORDER BY f.index_number
"""


def index_seconds(wh: Warehouse, p: Partition) -> tuple[pl.DataFrame, dict]:
    blocks = wh.query(INDEX_SQL, [p.day, p.day])
    bad = blocks.filter(
        pl.col("index_active_seconds").is_null()
        | ((pl.col("index_active_seconds") - pl.col("session_active_seconds")).abs() > SECONDS_TOLERANCE)
        | ((pl.col("index_idle_seconds") - pl.col("session_idle_seconds")).abs() > SECONDS_TOLERANCE)
    )
    return bad, {
        "blocks": blocks.height,
        "active_seconds": round(float(blocks["session_active_seconds"].sum() or 0), 3),
        "idle_seconds": round(float(blocks["session_idle_seconds"].sum() or 0), 3),
        "unit": "index blocks",
    }


ZONE_SQL = """
WITH from_sessions AS (
    SELECT zone_id, count(*) AS sessions, sum(total_active_seconds) AS active_seconds,
           sum(total_idle_seconds) AS idle_seconds
    FROM analytics.sessions WHERE local_date = {p}
    GROUP BY zone_id
),
stats AS (
    SELECT zone_id, sessions, total_active_seconds, total_idle_seconds
    FROM analytics.daily_zone_stats WHERE local_date = {p}
)
SELECT coalesce(st.zone_id, f.zone_id) AS zone_id,
       st.sessions AS stats_sessions, coalesce(f.sessions, 0) AS session_rows,
       st.total_active_seconds AS stats_active_seconds,
       coalesce(f.active_seconds, 0) AS session_active_seconds,
       st.total_idle_seconds AS stats_idle_seconds, coalesce(f.idle_seconds, 0) AS session_idle_seconds
FROM stats st FULL OUTER JOIN from_sessions f ON f.zone_id = st.zone_id
ORDER BY 1
"""


def zone_seconds(wh: Warehouse, p: Partition) -> tuple[pl.DataFrame, dict]:
    zones = wh.query(ZONE_SQL, [p.day, p.day])
    bad = zones.filter(
        pl.col("stats_active_seconds").is_null()
        | ((pl.col("stats_active_seconds") - pl.col("session_active_seconds")).abs() > SECONDS_TOLERANCE)
        | ((pl.col("stats_idle_seconds") - pl.col("session_idle_seconds")).abs() > SECONDS_TOLERANCE)
    )
    return bad, {
        "zones": zones.height,
        "sessions": int(zones["session_rows"].sum() or 0),
        "active_seconds": round(float(zones["session_active_seconds"].sum() or 0), 3),
        "idle_seconds": round(float(zones["session_idle_seconds"].sum() or 0), 3),
        "unit": "zones",
    }


RECONCILIATIONS: list[Reconciliation] = [
    Reconciliation(
        "ledger_row_counts",
        "raw.detections",
        "Every committed batch in raw.ingest_batches has exactly its row_count rows in raw.detections "
        "(nothing lost or added after landing).",
        ledger_row_counts,
        per_camera=True,
    ),
    Reconciliation(
        "index_seconds_reconciliation",
        "analytics.index_records",
        "Each index block's active and idle seconds equal the sessions' seconds clipped to the block.",
        index_seconds,
    ),
    Reconciliation(
        "zone_seconds_reconciliation",
        "analytics.daily_zone_stats",
        "Per zone, the day's sessions' active and idle seconds add up to daily_zone_stats.",
        zone_seconds,
    ),
]
