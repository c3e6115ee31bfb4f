"""Jobs: Dagster runs one partitioning per job, so ingestion (day x camera) and marts (day) are separate."""

from __future__ import annotations

import dagster as dg

from orchestration.translator import SITE_REFERENCE

INGESTION_JOB = "ingestion_job"
MARTS_JOB = "marts_job"
REFERENCE_JOB = "site_reference_job"
# Deployed mode limits runs carrying this tag to one at a time (deploy/dagster.yaml): one SQLMesh run per
# warehouse.
SQLMESH_TAG = {"sightline/sqlmesh": "run"}


def build_jobs(
    raw_assets: dg.AssetsDefinition,
    mart_assets: dg.AssetsDefinition,
    quality_report: dg.AssetsDefinition,
    alerts: dg.AssetsDefinition | None = None,
    *after_marts: dg.AssetsDefinition,
) -> list:
    """Partitioning comes from the selected assets: day x camera for ingestion, day for the marts.
    `after_marts`: day-partitioned assets built from the marts in the same run (the daily report)."""
    return [
        dg.define_asset_job(
            INGESTION_JOB,
            selection=dg.AssetSelection.assets(raw_assets),
            description="Land one camera-day of detections and camera health (day x camera partitions).",
        ),
        dg.define_asset_job(
            MARTS_JOB,
            selection=dg.AssetSelection.assets(
                mart_assets, quality_report, *([alerts] if alerts else []), *after_marts
            ),
            tags=SQLMESH_TAG,
            description="Build every SQLMesh mart for a site-local day (or a range, as one SQLMesh run), "
            "run the audits and quality checks, raise the day's alerts and write its report.",
        ),
        dg.define_asset_job(
            REFERENCE_JOB,
            selection=dg.AssetSelection.assets(SITE_REFERENCE),
            description="Reload ref.cameras, ref.zones and ref.index_timeline from the site config.",
        ),
    ]
