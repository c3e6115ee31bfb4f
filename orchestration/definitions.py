"""The Dagster code location: `dagster dev` (or `dg dev`) from the repository root loads `defs` from here.

Embedded defaults: the DuckDB warehouse file, simulated cameras, the repository's site.yaml. Deployed:
SIGHTLINE_WAREHOUSE_URL=postgresql://..., SIGHTLINE_SITE, SIGHTLINE_SOURCE / SIGHTLINE_SOURCE_PATH.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from ingestion.site import load_site
from ingestion.warehouse import DEFAULT_WAREHOUSE_URL, resolve_url
from orchestration.assets.alerts import build_alerts_asset
from orchestration.assets.ingestion import build_raw_assets, site_reference
from orchestration.assets.marts import build_mart_assets
from orchestration.assets.quality import build_quality_report
from orchestration.assets.report import build_daily_report_asset
from orchestration.executors import executor_from_env
from orchestration.jobs import build_jobs
from orchestration.partitions import day_camera_partitions, day_partitions
from orchestration.resources import (
    DEFAULT_SEGMENTS_DIR,
    DetectionSourceResource,
    SiteResource,
    SQLMeshResource,
    WarehouseResource,
    env_or,
)
from orchestration.schedules import build_schedules, marts_freshness_policy
from orchestration.sensors import SENSORS, deliver_alerts_sensor
from orchestration.sqlmesh_models import load_mart_models
from orchestration.translator import SightlineTranslator

# Per-partition asset checks are a preview feature in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)
# Dagster flags the multi-partition run tags (dagster/partition/<dimension>) it derives itself from our
# MultiPartitionKey run requests as non-compliant keys; only warnings raised in Dagster's own modules.
warnings.filterwarnings(
    "ignore",
    message=r"Non-compliant tag keys like \['dagster/partition/",
    category=DeprecationWarning,
    module=r"dagster\.",
)


def build_definitions(
    *,
    site_path: str | Path | None = None,
    warehouse_url: str | None = None,
    detection_source: DetectionSourceResource | None = None,
    translator: SightlineTranslator | None = None,
) -> dg.Definitions:
    """The whole code location. Arguments override the environment (tests build isolated copies);
    `translator` maps tables and SQLMesh models to asset keys, groups and checks."""
    translator = translator or SightlineTranslator()
    site = load_site(site_path)
    days = day_partitions(site)
    day_camera = day_camera_partitions(site)
    models = load_mart_models(str(site_path) if site_path else None)
    mart_keys = [translator.asset_key(m.name) for m in models]
    raw_assets = build_raw_assets(day_camera)
    mart_assets = build_mart_assets(models, days, translator, marts_freshness_policy(site))
    checks = quality_checks(site, days, day_camera, translator, [raw_assets, mart_assets])
    check_keys = [key for d in (raw_assets, mart_assets, *checks) for key in d.check_keys]
    report = build_quality_report(site, days, mart_keys, check_keys)
    alerts = build_alerts_asset(days, translator)
    daily_report = build_daily_report_asset(days, mart_keys)

    site_resource = SiteResource(path=str(site_path) if site_path else env_or("SIGHTLINE_SITE", None))
    warehouse = WarehouseResource(
        url=warehouse_url or env_or("SIGHTLINE_WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL), site=site_resource
    )
    source = detection_source or DetectionSourceResource(
        # `kind` is a Literal: an EnvVar there fails validation, so its value is read when loading.
        kind=os.environ.get("SIGHTLINE_SOURCE") or "simulated",
        path=env_or("SIGHTLINE_SOURCE_PATH", None),
        segments_dir=env_or("SIGHTLINE_SEGMENTS_DIR", DEFAULT_SEGMENTS_DIR),
    )
    delivery = deliver_alerts_sensor(embedded=resolve_url(warehouse_url).startswith("duckdb"))
    return dg.Definitions(
        assets=[site_reference, raw_assets, mart_assets, report, alerts, daily_report],
        asset_checks=checks,
        jobs=build_jobs(raw_assets, mart_assets, report, alerts, daily_report),
        schedules=build_schedules(site),
        sensors=[*SENSORS, delivery],
        executor=executor_from_env(),  # SIGHTLINE_EXECUTOR: in_process, multiprocess or celery
        resources={
            "site": site_resource,
            "warehouse": warehouse,
            "sqlmesh": SQLMeshResource(warehouse=warehouse),
            "detection_source": source,
        },
    )


def quality_checks(
    site,
    days: dg.PartitionsDefinition,
    day_camera: dg.PartitionsDefinition,
    translator: SightlineTranslator,
    assets: list[dg.AssetsDefinition],
) -> list[dg.AssetChecksDefinition]:
    """The Great Expectations suites and reconciliations (orchestration/checks.py) on the assets here."""
    from orchestration.checks import build_quality_checks

    keys = [key for a in assets for key in a.keys]
    return build_quality_checks(site, days, day_camera, translator, asset_keys=keys)


@dg.definitions
def defs() -> dg.Definitions:
    """What `dagster dev` loads: built on load, so importing this module (tests, the CLI) stays cheap."""
    return build_definitions()
