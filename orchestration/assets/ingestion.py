"""Ingestion assets: the site's reference tables, and each camera-day of raw detections and health."""

import dagster as dg

from orchestration.charts import markdown_table
from orchestration.partitions import split_day_camera_key
from orchestration.resources import DetectionSourceResource, SiteResource, WarehouseResource
from orchestration.translator import CAMERA_HEALTH, INGESTION_GROUP, RAW_DETECTIONS, SITE_REFERENCE

# Every step that opens the warehouse claims a slot in this pool; embedded mode (DuckDB: one writing
# process per file) limits it to 1, so concurrent runs queue instead of failing on the file lock.
WAREHOUSE_POOL = "warehouse"


@dg.asset(
    key=SITE_REFERENCE,
    group_name=INGESTION_GROUP,
    pool=WAREHOUSE_POOL,
    kinds={"yaml"},
    description="ref.cameras, ref.zones and ref.index_timeline loaded from the site config. "
    "Re-run after editing site.yaml. Creates no tables: `sightline db setup` does (embedded DuckDB: "
    "on first use).",
)
def site_reference(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, site: SiteResource
) -> dg.MaterializeResult:
    with warehouse.connect() as wh:
        wh.require_setup()
        wh.load_reference()
        counts = {
            t: int(wh.query(f"SELECT count(*) AS n FROM ref.{t}")["n"][0])  # noqa: S608 - fixed names
            for t in ("cameras", "zones", "index_timeline")
        }
        zones = wh.query("SELECT * FROM ref.zones ORDER BY camera_id, zone_id")
    s = site.load()
    return dg.MaterializeResult(
        metadata={
            "site": s.name,
            "site file": dg.MetadataValue.path(s.path),
            "timezone": s.timezone,
            **{f"ref.{t} rows": n for t, n in counts.items()},
            "zones": dg.MetadataValue.md(markdown_table(zones, max_rows=20)),
        }
    )


def build_raw_assets(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                RAW_DETECTIONS,
                group_name=INGESTION_GROUP,
                deps=[site_reference],
                kinds={"polars"},
                description="raw.detections: one row per tracked object per processed frame, "
                "landed exactly once per camera-day (re-running replaces the partition).",
            ),
            dg.AssetSpec(
                CAMERA_HEALTH,
                group_name=INGESTION_GROUP,
                deps=[site_reference],
                kinds={"polars"},
                description="raw.camera_health: frames read, processed, dropped and latency per "
                "camera per 10 s, so a silent camera shows as downtime, not as an empty zone.",
            ),
        ],
        partitions_def=partitions_def,
        pool=WAREHOUSE_POOL,
        name="land_camera_day",
    )
    def land_camera_day(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        site: SiteResource,
        detection_source: DetectionSourceResource,
    ):
        day, camera_id = split_day_camera_key(context.partition_key)
        s = site.load()
        start, end = s.day_window(day)
        with warehouse.connect() as wh:
            wh.require_setup()
            landed = detection_source.land(wh, s, camera_id, day)
            window = (camera_id, start, end)
            stats = wh.query(
                "SELECT count(*) AS rows, count(DISTINCT track_id) AS tracks, "
                "avg(CASE WHEN zone_id IS NULL THEN 0.0 ELSE 1.0 END) AS share_in_zone "
                "FROM raw.detections WHERE camera_id = {p} AND ts >= {p} AND ts < {p}",
                window,
            )
            preview = wh.query(
                "SELECT * FROM raw.detections WHERE camera_id = {p} AND ts >= {p} AND ts < {p} "
                "ORDER BY ts, track_id LIMIT 5",
                window,
            )
            health = wh.query(
                "SELECT count(*) AS rows, coalesce(sum(frames_read), 0) AS frames_read, "
                "coalesce(sum(frames_dropped), 0) AS frames_dropped FROM raw.camera_health "
                "WHERE camera_id = {p} AND window_start >= {p} AND window_start < {p}",
                window,
            )
        context.log.info(
            "%s %s: landed %d detections (%d rejected) from %s",
            camera_id,
            day,
            landed.landed,
            landed.rejected,
            landed.source,
        )
        yield dg.MaterializeResult(
            asset_key=RAW_DETECTIONS,
            metadata={
                "dagster/row_count": int(stats["rows"][0]),
                "landed": landed.landed,
                "rejected (dead letters)": landed.rejected,
                "tracks": int(stats["tracks"][0]),
                "share of samples in a zone": float(stats["share_in_zone"][0] or 0.0),
                "source": landed.source,
                "inputs": dg.MetadataValue.json(list(landed.inputs)),
                "preview": dg.MetadataValue.md(markdown_table(preview)),
            },
        )
        yield dg.MaterializeResult(
            asset_key=CAMERA_HEALTH,
            metadata={
                "dagster/row_count": int(health["rows"][0]),
                "frames read": int(health["frames_read"][0]),
                "frames dropped": int(health["frames_dropped"][0]),
            },
        )

    return land_camera_day
