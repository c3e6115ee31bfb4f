"""Sensors: marts follow their inputs, new recorded segments get ingested, late data gets rebuilt.

- marts_when_day_complete: once every camera partition of a day has landed (through Dagster), build that
  day's marts; a re-landed camera-day triggers a rebuild (the run key carries the newest landing).
- marts_when_stream_passes_day: streamed data lands outside Dagster; once every camera's watermark in
  raw.camera_watermarks has passed a day's end, build that day's marts.
- rebuild_late_days: the stream marks days that received late data in raw.days_to_rebuild; rebuild them.
- new_recorded_segments: new video files under the detection source's `segments_dir` ($SIGHTLINE_SEGMENTS_DIR)
  launch the ingestion of their camera-day (through the DetectionSourceResource in `segments` mode).
- deliver_alerts: sends pending alert notifications (`deliver_alerts_sensor`: its default status depends on
  the warehouse).

Sensors are module-level and take what they read as resources (site, warehouse, detection_source); the
marts step's asset and the blocking raw checks come from the code location they are evaluated in
(`context.repository_def`), as does the alerts asset deliver_alerts observes, so they follow the
SightlineTranslator the definitions were built with.
The warehouse sensors read the warehouse; in embedded mode a running step may hold DuckDB's single-writer
lock, in which case the sensor skips this tick and tries again on the next.
"""

import json
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import dagster as dg

from ingestion.site import Site
from ingestion.warehouse import Warehouse
from orchestration.assets.alerts import ALERTS_STEP
from orchestration.assets.marts import MARTS_STEP
from orchestration.checks import raw_blocking_failures
from orchestration.jobs import INGESTION_JOB, MARTS_JOB
from orchestration.partitions import PARTITIONS_START, day_camera_key, split_day_camera_key
from orchestration.resources import (
    DEFAULT_SEGMENTS_DIR,
    DetectionSourceResource,
    SiteResource,
    WarehouseResource,
)
from orchestration.translator import RAW_DETECTIONS

T = TypeVar("T")

LOOKBACK_DAYS = 7  # days the stream sensor looks back over
SEGMENT_SETTLE_SECONDS = 30  # a segment file untouched this long is finished being written


def _first_day() -> date:
    return date.fromisoformat(PARTITIONS_START)


def days_completed_since(
    site: Site, instance: dg.DagsterInstance, after_storage_id: int, marts_key: dg.AssetKey
) -> tuple[dict[date, int], int]:
    """Days that had a camera partition of raw_detections materialised after `after_storage_id`, now have
    every camera in, and whose marts were not built after that newest landing; each mapped to the storage
    id of its newest landing. Also returns the new cursor."""
    storage = instance.event_log_storage
    materialized = dg.DagsterEventType.ASSET_MATERIALIZATION
    latest = storage.get_latest_storage_id_by_partition(RAW_DETECTIONS, materialized)
    built = storage.get_latest_storage_id_by_partition(marts_key, materialized)
    by_day: dict[date, dict[str, int]] = {}
    for key, storage_id in latest.items():
        day, camera = split_day_camera_key(key)
        by_day.setdefault(day, {})[camera] = storage_id
    cams = set(site.camera_ids)
    ready = {}
    for day, ids in sorted(by_day.items()):
        newest = max(ids.values())
        if newest > after_storage_id and set(ids) >= cams and built.get(day.isoformat(), 0) < newest:
            ready[day] = newest
    return ready, max(latest.values(), default=after_storage_id)


def _warehouse_busy(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "being used" in text


def _with_warehouse(warehouse: WarehouseResource, work: Callable[[Warehouse], T]) -> T | dg.SkipReason:
    """`work(wh)` on a connection of its own; a SkipReason instead when a running step holds the embedded
    DuckDB file (the next tick tries again)."""
    try:
        with warehouse.connect() as wh:
            return work(wh)
    except Exception as exc:
        if _warehouse_busy(exc):
            return dg.SkipReason(f"warehouse busy ({exc}); trying again next tick")
        raise


def _step_key(repository_def: dg.RepositoryDefinition | None, step: str, sensor: str) -> dg.AssetKey:
    """An asset of the step (the op) named `step` in the code location the sensor is evaluated in, so the
    key follows the SightlineTranslator the definitions were built with; for a multi-asset step (the
    marts, built all together) its first key."""
    if repository_def is None:
        raise dg.DagsterInvariantViolationError(f"{sensor} needs its code location's repository")
    step_def = next(d for d in repository_def.assets_defs_by_key.values() if d.node_def.name == step)
    return sorted(step_def.keys)[0]


def _marts_step(repository_def: dg.RepositoryDefinition | None) -> tuple[dg.AssetKey, list[dg.AssetCheckKey]]:
    """One asset of the marts step (its materialisations say when a day's marts were built: the step
    builds them all together), and the blocking checks on raw_detections that gate it."""
    marts_key = _step_key(repository_def, MARTS_STEP, "marts_when_day_complete")
    graph = repository_def.asset_graph
    blocking = [
        k
        for k in sorted(graph.asset_check_keys, key=str)
        if k.asset_key == RAW_DETECTIONS and graph.get_check_spec(k).blocking
    ]
    return marts_key, blocking


@dg.sensor(
    name="marts_when_day_complete",
    job_name=MARTS_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Builds a day's marts once every camera of that day has landed; rebuilds them "
    "when a camera-day is landed again.",
)
def marts_when_day_complete(context: dg.SensorEvaluationContext, site: SiteResource):
    s = site.load()
    marts_key, blocking_checks = _marts_step(context.repository_def)
    ready, cursor = days_completed_since(s, context.instance, int(context.cursor or 0), marts_key)
    context.update_cursor(str(cursor))
    requests = []
    for day, storage_id in ready.items():
        blocked = raw_blocking_failures(context.instance, s, [day], blocking_checks)
        if blocked:  # re-landing the camera-day after a fix moves the cursor and brings the day back
            context.log.warning("not building %s: %s", day, "; ".join(blocked))
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{day}@{storage_id}",
                partition_key=day.isoformat(),
                tags={"sightline/trigger": "marts_when_day_complete"},
            )
        )
    return requests or dg.SkipReason("no day has all of its cameras landed since the last tick")


@dg.sensor(
    name="marts_when_stream_passes_day",
    job_name=MARTS_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="For streamed cameras: builds a day's marts once every camera's watermark "
    "(raw.camera_watermarks) has passed the day's end.",
)
def marts_when_stream_passes_day(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, site: SiteResource
):
    s = site.load()
    marks = _with_warehouse(
        warehouse, lambda wh: wh.query("SELECT camera_id, max_event_ts FROM raw.camera_watermarks")
    )
    if isinstance(marks, dg.SkipReason):
        return marks
    passed = dict(zip(marks["camera_id"].to_list(), marks["max_event_ts"].to_list(), strict=True))
    if set(s.camera_ids) - set(passed):
        return dg.SkipReason(f"no watermark yet for {sorted(set(s.camera_ids) - set(passed))}")
    # Every camera is past the end of the day before the oldest watermark's own day.
    oldest = min(passed.values())
    last_complete = s.local_day(oldest) - timedelta(days=1)
    first = max(_first_day(), last_complete - timedelta(days=LOOKBACK_DAYS))
    return [
        dg.RunRequest(
            run_key=f"stream:{d}",
            partition_key=d.isoformat(),
            tags={"sightline/trigger": "marts_when_stream_passes_day"},
        )
        for d in _days(first, last_complete)
    ]


@dg.sensor(
    name="rebuild_late_days",
    job_name=MARTS_JOB,
    minimum_interval_seconds=120,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Rebuilds the marts of days that received late data (raw.days_to_rebuild).",
)
def rebuild_late_days(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    marked = _with_warehouse(
        warehouse,
        lambda wh: wh.query(
            "SELECT day, max(marked_at) AS marked_at FROM raw.days_to_rebuild "
            "WHERE day >= {p} GROUP BY day ORDER BY day",
            [_first_day()],
        ),
    )
    if isinstance(marked, dg.SkipReason):
        return marked
    if marked.is_empty():
        return dg.SkipReason("no day is marked for rebuild")
    # The run key carries the newest mark: a day marked again after its rebuild is rebuilt again.
    return [
        dg.RunRequest(
            run_key=f"rebuild:{day}@{marked_at.isoformat()}",
            partition_key=day.isoformat(),
            tags={"sightline/trigger": "rebuild_late_days"},
        )
        for day, marked_at in marked.iter_rows()
    ]


@dg.sensor(
    name="new_recorded_segments",
    job_name=INGESTION_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Ingests the camera-day of every new or changed recorded segment under "
    "the detection source's segments_dir ($SIGHTLINE_SEGMENTS_DIR, default "
    f"{DEFAULT_SEGMENTS_DIR}/<camera>/<start>.mp4).",
)
def new_recorded_segments(
    context: dg.SensorEvaluationContext, detection_source: DetectionSourceResource, site: SiteResource
):
    from ingestion.video.segments import discover_segments

    s = site.load()
    root = Path(detection_source.segments_dir)
    if not root.is_dir():
        return dg.SkipReason(f"segments folder {root} does not exist (set SIGHTLINE_SEGMENTS_DIR)")
    seen: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
    settled_before = time.time() - SEGMENT_SETTLE_SECONDS
    changed: dict[tuple[str, date], float] = {}
    for seg in discover_segments(root, s):
        mtime = seg.path.stat().st_mtime
        if mtime > settled_before or seen.get(str(seg.path)) == mtime:
            continue  # still being written, or already ingested
        seen[str(seg.path)] = mtime
        cam_day = (seg.camera_id, s.local_day(seg.start_time))
        changed[cam_day] = max(changed.get(cam_day, 0.0), mtime)
    context.update_cursor(json.dumps(seen))
    if not changed:
        return dg.SkipReason("no new recorded segments")
    # Run config replaces the resource's whole config, so carry over the configured vision settings.
    source_config = {
        "config": {
            "kind": "segments",
            "path": str(root.resolve()),
            "fps": detection_source.fps,
            "detector": detection_source.detector,
            "weights": detection_source.weights,
            "segments_dir": str(root),
        }
    }
    return [
        dg.RunRequest(
            run_key=f"segments:{camera}|{day}@{mtime}",
            partition_key=day_camera_key(day, camera),
            run_config={"resources": {"detection_source": source_config}},
            tags={"sightline/trigger": "new_recorded_segments"},
        )
        for (camera, day), mtime in sorted(changed.items())
    ]


def deliver_alerts(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, site: SiteResource):
    """Sends pending alert notifications; the tick observes the alerts asset with what was sent."""
    from ingestion.alerts.deliver import deliver_pending

    s = site.load()
    if not (s.alerts and s.alerts.channels):
        return dg.SkipReason("no alert channels in the site config")
    alerts_key = _step_key(context.repository_def, ALERTS_STEP, "deliver_alerts")
    report = _with_warehouse(warehouse, lambda wh: deliver_pending(wh, s))
    if isinstance(report, dg.SkipReason):
        return report
    for alert_id, channel, event, error in report.failed:
        context.log.warning("alert %s -> %s (%s) failed: %s", alert_id[:10], channel, event, error)
    text = f"{len(report.sent)} sent, {len(report.failed)} failed, {len(report.gave_up)} given up" + (
        f"; not configured: {', '.join(sorted(report.not_configured))}" if report.not_configured else ""
    )
    if not (report.sent or report.failed or report.gave_up):
        return dg.SkipReason(f"nothing to deliver ({text})")
    context.log.info(text)
    return dg.SensorResult(
        asset_events=[
            dg.AssetObservation(
                alerts_key,
                metadata={
                    "sent": len(report.sent),
                    "failed": len(report.failed),
                    "gave_up": len(report.gave_up),
                    "summary": text,
                },
            )
        ],
        skip_reason=None,
    )


def deliver_alerts_sensor(embedded: bool) -> dg.SensorDefinition:
    """The `deliver_alerts` sensor: running by default, but stopped on the embedded DuckDB file
    (`embedded`), which one process at a time may open, so that its ticks never hold the file while a run
    needs it (`sightline alerts deliver` sends there). Dagster fixes a sensor's default status when it is
    defined, and no setting decides it later (dagster-io/dagster#11152), so this is the one sensor
    built with the code location: the decorator applied to the module-level `deliver_alerts`."""
    return dg.sensor(
        name="deliver_alerts",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED if embedded else dg.DefaultSensorStatus.RUNNING,
        description="Sends pending alert notifications (webhook, e-mail, MQTT), each alert once per channel; "
        "failed tries are retried with backoff. Same code as `sightline alerts deliver`.",
    )(deliver_alerts)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


SENSORS = [marts_when_day_complete, marts_when_stream_passes_day, rebuild_late_days, new_recorded_segments]
