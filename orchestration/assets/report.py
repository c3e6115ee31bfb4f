"""The daily report as a day-partitioned asset: the HTML page (PDF on request) per site-day, with its
headline numbers, recommendations and charts in the asset's metadata (shown inline in the Dagster UI)."""

from pathlib import Path

import dagster as dg

from orchestration.assets.ingestion import WAREHOUSE_POOL
from orchestration.partitions import days_of_range
from orchestration.resources import SiteResource, WarehouseResource

GROUP = "reports"


class DailyReportConfig(dg.Config):
    out_dir: str | None = (
        None  # <out_dir>/<date>/daily_report.html; default $SIGHTLINE_REPORTS_DIR or data/reports
    )
    pdf: bool = False  # also print a PDF with headless Chromium


def build_daily_report_asset(day_partitions: dg.PartitionsDefinition, upstream: list[dg.AssetKey]):
    @dg.asset(
        name="daily_report",
        group_name=GROUP,
        partitions_def=day_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),  # same policy as the marts it follows
        deps=upstream,
        pool=WAREHOUSE_POOL,
        kinds={"html"},
        description="The report a supervisor reads, one self-contained HTML page per site-day: headline KPIs "
        "against the previous 7 workdays, productivity per index block, occupancy per zone, a heatmap per "
        "camera over its view, anomalies, workers and recommendations (orchestration/report.py).",
    )
    def daily_report(
        context: dg.AssetExecutionContext,
        config: DailyReportConfig,
        warehouse: WarehouseResource,
        site: SiteResource,
    ) -> dg.MaterializeResult:
        from orchestration.charts import png_markdown
        from orchestration.report import build_daily_report, reports_dir, write_report

        s = site.load()
        days = days_of_range(context.partition_key_range.start, context.partition_key_range.end)
        written, report = [], None
        with warehouse.connect() as wh:
            for day in days:
                report = build_daily_report(wh, s, day)
                files = write_report(report, Path(config.out_dir or reports_dir()), pdf=config.pdf)
                written.append(files)
                context.log.info("daily report of %s: %s", day, files.html.resolve())
        last = written[-1]
        kpis = "\n".join(
            ["| KPI | day | 7-workday median |", "|---|---|---|"]
            + [
                f"| {k['label']} | {_show(k['value'], k['unit'])} | {_show(k['median_7'], k['unit'])} |"
                for k in report.kpis
            ]
        )
        charts = "\n\n".join(png_markdown(png, name) for name, png in report.pngs.items())
        metadata = {
            "report": dg.MetadataValue.path(str(last.html.resolve())),
            "kpis": dg.MetadataValue.md(kpis),
            "recommendations": dg.MetadataValue.md("\n".join(f"- {r}" for r in report.recommendations)),
            "charts": dg.MetadataValue.md(charts),
            "days written": len(written),
        }
        if last.pdf:
            metadata["pdf"] = dg.MetadataValue.path(str(last.pdf.resolve()))
        return dg.MaterializeResult(metadata=metadata)

    return daily_report


def _show(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    return f"{value:.0%}" if unit == "pct" else f"{value:,.0f}"
