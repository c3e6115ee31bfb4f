"""The day's quality verdict: every asset check on that day's raw and mart partitions, in one table.

The checks themselves live on the assets they guard (SQLMesh audits on the marts, Great Expectations suites
and reconciliations from orchestration/checks.py); this asset only gathers their latest results per
partition so a person sees one page per day, with the link to the Great Expectations Data Docs.
"""

from datetime import date

import dagster as dg

from ingestion.site import Site
from orchestration.charts import markdown_table
from orchestration.partitions import day_camera_key, days_of_range

GROUP = "quality"


def build_quality_report(
    site: Site,
    day_partitions: dg.PartitionsDefinition,
    upstream: list[dg.AssetKey],
    check_keys: list[dg.AssetCheckKey],
):
    """`check_keys`: every asset check of the code location, whose per-partition results it gathers."""

    @dg.asset(
        name="quality_report",
        group_name=GROUP,
        partitions_def=day_partitions,
        # Same policy as the marts, so a marts_job backfill over a range stays one run (Dagster takes the
        # smallest policy of a job's assets).
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=upstream,
        kinds={"dagster"},
        description="One page per day: the latest result of every asset check on the day's raw (per camera) "
        "and mart partitions, and the Great Expectations Data Docs. Built after the marts; a failing "
        "blocking check stops it (the failure is on the check itself).",
    )
    def quality_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        import polars as pl

        from quality.runner import docs_index

        days = days_of_range(context.partition_key_range.start, context.partition_key_range.end)
        infos = context.instance.event_log_storage.get_asset_check_partition_info(
            check_keys, partition_keys=_partition_keys(site, days)
        )
        rows = pl.DataFrame(
            {
                "asset": [i.check_key.asset_key.to_user_string() for i in infos],
                "check": [i.check_key.name for i in infos],
                "partition": [i.partition_key for i in infos],
                "status": [
                    i.latest_execution_status.value if i.latest_execution_status else "" for i in infos
                ],
            },
            schema={"asset": pl.String, "check": pl.String, "partition": pl.String, "status": pl.String},
        ).sort("status", "asset", "check", "partition")
        counts = dict(rows.group_by("status").len().iter_rows())
        docs = docs_index()
        return dg.MaterializeResult(
            metadata={
                "checks evaluated": rows.height,
                "passed": counts.get("SUCCEEDED", 0),
                "failed": counts.get("FAILED", 0),
                "results": dg.MetadataValue.md(markdown_table(rows, max_rows=300)),
                "check results": dg.MetadataValue.path(str(docs)),
            }
        )

    return quality_report


def _partition_keys(site: Site, days: list[date]) -> list[str]:
    return [d.isoformat() for d in days] + [str(day_camera_key(d, c)) for d in days for c in site.camera_ids]
