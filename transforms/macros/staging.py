"""The landed detections the staging view reads, one row per (camera_id, ts, track_id) on each engine."""

from sqlglot import exp
from sqlmesh import macro


@macro()
def landed_detections(evaluator) -> exp.Expr:
    """raw.detections with one row per (camera_id, ts, track_id).

    On PostgreSQL (and TimescaleDB) the table's primary key already guarantees it, so the view reads the
    table itself: a dedup window there would sort every day a mart reads by the key and hide the table's
    statistics from the planner, for nothing. DuckDB's raw.detections has no unique index (the landing
    layer keeps the key), so a key landed twice keeps one row there: the greatest batch_id."""
    if evaluator.gateway == "postgres":
        return exp.to_table("raw.detections")
    return exp.maybe_parse(
        "(SELECT * FROM raw.detections"
        " QUALIFY ROW_NUMBER() OVER (PARTITION BY camera_id, ts, track_id ORDER BY batch_id DESC) = 1)",
        dialect="duckdb",
    )


@macro()
def landed_key_enforced(evaluator) -> exp.Expr:
    """TRUE where raw.detections itself enforces one row per (camera_id, ts, track_id) with non-null keys
    (the primary key on PostgreSQL and TimescaleDB), FALSE on DuckDB (no unique index: see above)."""
    return exp.true() if evaluator.gateway == "postgres" else exp.false()
