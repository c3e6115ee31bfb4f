"""Alerts in Dagster: the day's anomalies become alerts after the marts (an asset downstream of them), and a
sensor (orchestration.sensors.deliver_alerts) delivers pending notifications, so runs and ticks show what
was raised, sent and what failed. The work is ingestion.alerts (the same code as `sightline alerts
evaluate` and `sightline alerts deliver`)."""

import dagster as dg

from orchestration.assets.ingestion import WAREHOUSE_POOL
from orchestration.resources import SiteResource, WarehouseResource
from orchestration.translator import SightlineTranslator

ALERTS_TABLE = "ops.alerts"
ALERTS_STEP = "alerts"  # the asset's op
UPSTREAM_MARTS = ("analytics.anomalies", "analytics.index_records", "analytics.sessions")


def build_alerts_asset(
    day_partitions: dg.PartitionsDefinition, translator: SightlineTranslator
) -> dg.AssetsDefinition:
    spec = dg.AssetSpec(
        translator.asset_key(ALERTS_TABLE),
        deps=[translator.asset_key(table) for table in UPSTREAM_MARTS],
        group_name="alerts",
        description="ops.alerts for the day: anomalies (and productivity drops) raised as alerts per the "
        "site.yaml rules, matched to alerts the stream raised live; cleared ones auto-resolved. "
        "Acknowledgements survive any rebuild.",
    )

    # One asset, but named as a step (not after its key) so the deliver_alerts sensor finds it by name.
    @dg.multi_asset(
        name=ALERTS_STEP,
        specs=[spec],
        partitions_def=day_partitions,
        pool=WAREHOUSE_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),  # as the marts: one run evaluates the whole range
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
