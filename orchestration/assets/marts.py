"""One Dagster asset per SQLMesh model, built together per day partition by one SQLMesh run.

A backfill over a date range runs as one SQLMesh run over the whole range (BackfillPolicy.single_run):
SQLMesh walks the days in order itself, so the rows equal building each day one by one. Re-materialising
a day that was built before restates exactly that day's window (SQLMesh clears and rebuilds its intervals).
"""

from datetime import date, timedelta

import dagster as dg
import polars as pl

from ingestion.site import Site
from ingestion.warehouse import Warehouse
from orchestration.assets.ingestion import WAREHOUSE_POOL
from orchestration.charts import heatmap_image, markdown_table, occupancy_chart, png_markdown, save_png
from orchestration.checks import blocking_check_keys, raw_blocking_failures
from orchestration.partitions import DAY, days_of_range
from orchestration.resources import SiteResource, SQLMeshResource, WarehouseResource
from orchestration.sqlmesh_models import (
    MartModel,
    audit_check_specs,
    audit_outcome_checks,
    model_asset_specs,
    run_audits,
)
from orchestration.translator import CAMERA_HEALTH, RAW_DETECTIONS, SightlineTranslator

MARTS_STEP = "sqlmesh_marts"


def build_mart_assets(
    models: tuple[MartModel, ...],
    day_partitions: dg.PartitionsDefinition,
    translator: SightlineTranslator,
    freshness_policy: dg.FreshnessPolicy | None = None,
) -> dg.AssetsDefinition:
    day_of_camera_day = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=DAY)
    raw_blocking_checks = blocking_check_keys(translator)
    specs = model_asset_specs(
        models,
        translator,
        freshness_policy=freshness_policy,
        partition_mapping_for={RAW_DETECTIONS: day_of_camera_day, CAMERA_HEALTH: day_of_camera_day},
    )

    @dg.multi_asset(
        name=MARTS_STEP,
        specs=specs,
        check_specs=audit_check_specs(models, translator, day_partitions),
        partitions_def=day_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        # SQLMesh restates a model's downstream models with it, so the marts are always built together.
        can_subset=False,
    )
    def sqlmesh_marts(
        context: dg.AssetExecutionContext,
        sqlmesh: SQLMeshResource,
        warehouse: WarehouseResource,
        site: SiteResource,
    ):
        s = site.load()
        days = days_of_range(context.partition_key_range.start, context.partition_key_range.end)
        start, end = s.day_window(days[0])[0], s.day_window(days[-1])[1]
        context.log.info(
            "SQLMesh run over %s .. %s (site-local), UTC [%s, %s)", days[0], days[-1], start, end
        )
        blocked = raw_blocking_failures(context.instance, s, days, raw_blocking_checks)
        if blocked:  # a critical raw check failed for a camera of these days: fix or re-land first
            raise dg.Failure(
                "the marts of these days are blocked by failing raw checks: " + "; ".join(blocked),
                metadata={"blocking checks": dg.MetadataValue.json(blocked)},
            )
        try:
            result = sqlmesh.build(days[0], days[-1] + timedelta(days=1))
        except Exception as exc:
            # A blocking audit (or anything else) failed: show the audits as checks, then fail the step.
            try:
                with sqlmesh.open() as ctx:
                    yield from run_audits(ctx, models, translator, start, end)
            except Exception as audit_exc:  # noqa: BLE001 - tables may not exist; the build error matters
                context.log.warning("could not evaluate the audits after the failed build: %s", audit_exc)
            raise dg.Failure(f"SQLMesh could not build {days[0]}..{days[-1]}: {exc}") from exc
        context.log.info("SQLMesh built %s..%s in %.1f s", days[0], days[-1], result.seconds)
        with warehouse.connect() as wh:
            for m in models:
                yield dg.MaterializeResult(
                    asset_key=translator.asset_key(m.name), metadata=mart_metadata(wh, s, m, days)
                )
        checks = list(audit_outcome_checks(models, translator, result.audits))
        reported = {dg.AssetCheckKey(c.asset_key, c.check_name) for c in checks}
        missing = [m for m in models if any(key not in reported for key, _ in translator.audit_checks(m))]
        if missing:  # every check needs a result: run the audits the build did not report ourselves
            with sqlmesh.open() as ctx:
                checks += [
                    c
                    for c in run_audits(ctx, missing, translator, start, end)
                    if dg.AssetCheckKey(c.asset_key, c.check_name) not in reported
                ]
        yield from checks

    return sqlmesh_marts


def _window_filter(m: MartModel, site: Site, days: list[date]) -> tuple[str, list]:
    if not m.time_column:
        return "", []
    if m.time_column_is_date:
        return f" WHERE {m.time_column} >= {{p}} AND {m.time_column} <= {{p}}", [days[0], days[-1]]
    start, end = site.day_window(days[0])[0], site.day_window(days[-1])[1]
    return f" WHERE {m.time_column} >= {{p}} AND {m.time_column} < {{p}}", [start, end]


def mart_metadata(wh: Warehouse, site: Site, m: MartModel, days: list[date]) -> dict:
    """Rows of the built window, a preview, and pictures for the occupancy and heatmap marts."""
    meta: dict = {"window": f"{days[0]} .. {days[-1]} ({site.timezone})"}
    if m.kind == "VIEW":  # computed when read, over all days: nothing of its own to count or preview per day
        return meta
    where, params = _window_filter(m, site, days)
    preview = wh.query(f"SELECT * FROM {m.table}{where} LIMIT 5", params)
    meta["preview"] = dg.MetadataValue.md(markdown_table(preview))
    n = int(wh.query(f"SELECT count(*) AS n FROM {m.table}{where}", params)["n"][0])
    # A range run records one materialisation per day with the same metadata: say it is the range's count.
    meta["dagster/row_count" if len(days) == 1 else "rows in the run's range"] = n
    label = f"{days[0]}" if len(days) == 1 else f"{days[0]}_{days[-1]}"
    table = m.name.split(".")[-1]
    if table == "zone_occupancy_minutely" and n:
        df = wh.query(f"SELECT zone_id, minute_start, mean_people FROM {m.table}{where}", params)
        png = occupancy_chart(
            df.with_columns(pl.col("minute_start").dt.convert_time_zone(site.timezone)),
            time_col="minute_start",
            zone_col="zone_id",
            value_col="mean_people",
            title=f"People present per zone, {label} ({site.timezone})",
        )
        meta["occupancy over the day"] = dg.MetadataValue.md(png_markdown(png, "zone occupancy"))
        meta["occupancy chart file"] = dg.MetadataValue.path(str(save_png(png, f"occupancy_{label}.png")))
    if table == "heatmap_hourly" and n:
        df = wh.query(f"SELECT camera_id, cell_x, cell_y, samples FROM {m.table}{where}", params)
        png = heatmap_image(
            df,
            camera_col="camera_id",
            x_col="cell_x",
            y_col="cell_y",
            value_col="samples",
            title=f"Where people stood, {label} (detections per grid cell)",
        )
        meta["heatmap"] = dg.MetadataValue.md(png_markdown(png, "heatmap"))
        meta["heatmap file"] = dg.MetadataValue.path(str(save_png(png, f"heatmap_{label}.png")))
    return meta
