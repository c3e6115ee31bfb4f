"""analytics.track_links: the visitor of every (camera, track), built by linking track fragments.

A Python model because the one-to-one, least-cost assignment of fragments is not SQL: the per-track end
summaries come from the warehouse in one aggregate query (ingestion.linking.track_ends_sql, the same SQL
on DuckDB and PostgreSQL) and the linking runs in numpy/scipy (ingestion.linking).
"""

import datetime as dt
import typing as t

import pandas as pd
import polars as pl
from sqlglot import exp
from sqlmesh import ExecutionContext, model
from sqlmesh.core.model.kind import ModelKindName

from ingestion.linking import TRACK_LINKS_COLUMNS, LinkParams, track_ends_sql, track_links_rows


@model(
    "analytics.track_links",
    kind=dict(
        name=ModelKindName.INCREMENTAL_BY_TIME_RANGE, time_column="first_seen", batch_size=24, lookback=24
    ),
    depends_on=["staging.stg_detections", "ref.cameras"],
    grain=["camera_id", "track_id", "first_seen"],
    columns={**TRACK_LINKS_COLUMNS, "camera_name": "text"},
    audits=[
        (
            "unique_combination_of_columns",
            {"columns": [exp.column(c) for c in ("camera_id", "track_id", "first_seen")]},
        ),
        (
            "not_null",
            {
                "columns": [
                    exp.column(c)
                    for c in (
                        "camera_id",
                        "track_id",
                        "visitor_id",
                        "first_seen",
                        "last_seen",
                        "track_index",
                        "local_date",
                    )
                ]
            },
        ),
        "track_links_chain_consistent",
    ],
    description=(
        "One row per (camera, track), on the site-local day of its first sample: the visitor it belongs "
        "to. Track B continues track A (same camera) when B starts 0 < gap <= link_max_gap_seconds after "
        "A ends, B's first position (bbox bottom-centre, mean of its first second) lies within "
        "link_max_distance + 0.1 x sqrt(gap seconds) box heights of A's last position extrapolated by "
        "A's last velocity (least squares over A's last second, shrunk by its standard error so that "
        "a standing person's sway or a short track's jitter is no velocity), and the box heights "
        "differ by at most link_max_size_ratio. Links "
        "are one-to-one with the least total cost (distance, then gap and size change) and chain: "
        "visitor_id is the track id of the chain's first track. Tracks first seen up to "
        "session_lookahead_hours before the day take part, so a visitor who arrived earlier keeps their id."
    ),
    column_descriptions={
        "camera_id": "camera (analytics.cameras)",
        "camera_name": "camera name from site.yaml",
        "track_id": "tracker id",
        "visitor_id": "track id of the first track of the chain (its own id when it continues nothing)",
        "previous_track_id": "the track this one continues; null for the first track of a visitor",
        "track_index": "position in the chain: 0 for the first track, 1 for the next, ...",
        "first_seen": "first sample of the track (UTC)",
        "last_seen": "last sample of the track (UTC)",
        "link_gap_seconds": "seconds between the previous track's last sample and this track's first",
        "link_cost": "cost of the link: distance in box heights + 0.1 x gap / link_max_gap_seconds "
        "+ 0.1 x (size ratio - 1)",
        "local_date": "site-local day of first_seen",
    },
)
def execute(context: ExecutionContext, start: dt.datetime, end: dt.datetime, **kwargs: t.Any) -> pd.DataFrame:
    utc = dt.UTC
    start = start.replace(tzinfo=utc)
    end = end.replace(tzinfo=utc) + dt.timedelta(microseconds=1)  # SQLMesh passes an inclusive end
    params = LinkParams(
        float(context.var("link_max_gap_seconds")),
        float(context.var("link_max_distance")),
        float(context.var("link_max_size_ratio")),
    )
    # Tracks first seen up to the lookahead before the batch decide its chains; samples run a little past
    # its end so a track's true last sample is known.
    lo = start - dt.timedelta(hours=float(context.var("session_lookahead_hours")))
    hi = end + dt.timedelta(seconds=params.max_gap_seconds + 60)

    def lit(ts: dt.datetime) -> str:
        return f"CAST('{ts.isoformat(sep=' ')}' AS TIMESTAMPTZ)"

    sql = track_ends_sql(context.resolve_table("staging.stg_detections"), lit(lo), lit(hi))
    sums = pl.from_pandas(context.fetchdf(sql))
    links = track_links_rows(sums, start, end, params, context.var("timezone"))
    names = pl.from_pandas(
        context.fetchdf(f"SELECT camera_id, name AS camera_name FROM {context.resolve_table('ref.cameras')}")
    )
    return links.join(
        names.cast({"camera_id": pl.String, "camera_name": pl.String}), on="camera_id", how="left"
    ).to_pandas()
