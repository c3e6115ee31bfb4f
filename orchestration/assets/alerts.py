"""Alerts in Dagster: the day's anomalies become alerts after the marts (an asset downstream of them), and a
sensor delivers pending notifications, so runs and ticks show what was raised, sent and what failed.
The work is ingestion.alerts (the same code as `sightline alerts evaluate` and `sightline alerts deliver`)."""

import dagster as dg

from orchestration.assets.ingestion import WAREHOUSE_POOL
from orchestration.resources import SiteResource, WarehouseResource
from orchestration.translator import SightlineTranslator

ALERTS_KEY = dg.AssetKey(["ops", "alerts"])
UPSTREAM_MARTS = ("analytics.anomalies", "analytics.index_records", "analytics.sessions")


def build_alerts_asset(
    day_partitions: dg.PartitionsDefinition, translator: SightlineTranslator
) -> dg.AssetsDefinition:
    @dg.asset(
        key=ALERTS_KEY,
        deps=[translator.asset_key(table) for table in UPSTREAM_MARTS],
        partitions_def=day_partitions,
        group_name="alerts",
        pool=WAREHOUSE_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),  # as the marts: one run evaluates the whole range
        description="ops.alerts for the day: anomalies (and productivity drops) raised as alerts per the "
        "site.yaml rules, matched to alerts the stream raised live; cleared ones auto-resolved. "
        "Acknowledgements survive any rebuild.",
    )
    def alerts(context: dg.AssetExecutionContext, warehouse: WarehouseResource, site: SiteResource):
        from ingestion.alerts.batch import evaluate_day
        from orchestration.partitions import days_of_range

        s = site.load()
        totals = dict.fromkeys(("anomalies", "raised", "already_known", "auto_resolved", "suppressed"), 0)
        with warehouse.connect() as wh:
            for day in days_of_range(context.partition_key_range.start, context.partition_key_range.end):
                r = evaluate_day(wh, s, day)
                o = r.outcome
                for k, n in (
                    ("anomalies", r.anomalies),
                    ("raised", len(o.raised)),
                    ("already_known", len(o.matched)),
                    ("auto_resolved", len(o.auto_resolved) + len(r.cleared)),
                    ("suppressed", o.suppressed),
                ):
                    totals[k] += n
        return dg.MaterializeResult(metadata=totals)

    return alerts


def build_delivery_sensor(running: bool = True) -> dg.SensorDefinition:
    """`running=False` (the embedded DuckDB file, which one process at a time may open): the sensor starts
    stopped, so its ticks never hold the file while a run needs it; `sightline alerts deliver` sends."""

    @dg.sensor(
        name="deliver_alerts",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        description="Sends pending alert notifications (webhook, e-mail, MQTT), each alert once per channel; "
        "failed tries are retried with backoff. Same code as `sightline alerts deliver`.",
    )
    def deliver_alerts(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, site: SiteResource):
        from ingestion.alerts.deliver import deliver_pending
        from orchestration.sensors import _warehouse_busy

        s = site.load()
        if not (s.alerts and s.alerts.channels):
            return dg.SkipReason("no alert channels in the site config")
        try:
            with warehouse.connect() as wh:
                report = deliver_pending(wh, s)
        except Exception as exc:
            if _warehouse_busy(exc):
                return dg.SkipReason(f"warehouse busy ({exc}); trying again next tick")
            raise
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
                    ALERTS_KEY,
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

    return deliver_alerts
