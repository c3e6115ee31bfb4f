"""The embedded demo: simulate site-days, materialise every asset through Dagster on the DuckDB warehouse,
run every check, and summarise what the marts say.

Runs execute in process (one at a time, so DuckDB's single writer is never contended) against the embedded
Dagster instance in .dagster_home/, so `make ui` afterwards shows these runs, partitions and checks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from ingestion.redact import redact_url

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class DemoReport:
    days: list[date]
    warehouse_url: str
    dagster_home: Path
    runs: int = 0
    failed_runs: list[str] = field(default_factory=list)
    checks: Counter = field(default_factory=Counter)  # passed / failed / warned
    failed_checks: list[str] = field(default_factory=list)
    sessions: dict[date, int] = field(default_factory=dict)
    productivity: dict[date, pl.DataFrame] = field(default_factory=dict)
    anomalies: dict[date, pl.DataFrame] = field(default_factory=dict)
    alerts: dict[date, pl.DataFrame] = field(default_factory=dict)  # ops.alerts by type and severity
    reports: dict[date, Path] = field(default_factory=dict)  # the daily_report asset's HTML pages

    @property
    def ok(self) -> bool:
        return not self.failed_runs and not self.failed_checks


def run_demo(
    *,
    start: date = date(2025, 1, 15),
    days: int = 2,
    fps: float = 1.0,
    cameras: list[str] | None = None,
    warehouse_url: str | None = None,
    dagster_home: str | Path | None = None,
    site_path: str | None = None,
    progress: bool = True,
) -> DemoReport:
    import dagster as dg
    from tqdm import tqdm

    from ingestion.site import load_site
    from ingestion.warehouse import resolve_url
    from orchestration.definitions import build_definitions
    from orchestration.embedded import embedded_instance, ensure_home
    from orchestration.jobs import INGESTION_JOB, MARTS_JOB, REFERENCE_JOB
    from orchestration.partitions import day_camera_key
    from orchestration.resources import DetectionSourceResource

    site = load_site(site_path)
    url = resolve_url(warehouse_url)
    day_list = [start + timedelta(days=i) for i in range(days)]
    cams = cameras or list(site.camera_ids)
    report = DemoReport(day_list, url, ensure_home(dagster_home))
    defs = build_definitions(
        site_path=site_path,
        warehouse_url=url,
        detection_source=DetectionSourceResource(kind="simulated", fps=fps, noise="realistic"),
    )
    instance = embedded_instance(report.dagster_home)
    release_abandoned_demo_runs(instance)
    plan: list[tuple[str, str | dg.MultiPartitionKey | None]] = [(REFERENCE_JOB, None)]
    plan += [(INGESTION_JOB, day_camera_key(d, c)) for d in day_list for c in cams]
    plan += [(MARTS_JOB, d.isoformat()) for d in day_list]
    with tqdm(plan, desc="sightline demo", unit="run", disable=not progress) as bar:
        for job_name, partition in bar:
            bar.set_postfix_str(f"{job_name} {partition or ''}".strip())
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance,
                partition_key=partition,
                run_config=QUIET,
                raise_on_error=False,
                tags={"sightline/trigger": "demo"},
            )
            report.runs += 1
            if not result.success:
                report.failed_runs.append(f"{job_name} {partition or ''}: {_failure_message(result)}")
            _collect_checks(result, report)
    _summarise(report, site)
    return report


def release_abandoned_demo_runs(instance) -> None:
    """A demo interrupted mid-run (Ctrl-C) leaves its run "started" and holding the warehouse pool slot;
    no daemon runs in the demo to clean up, so mark such runs failed and free their slots."""
    import dagster as dg

    in_flight = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]
    for run in instance.get_runs(dg.RunsFilter(statuses=in_flight, tags={"sightline/trigger": "demo"})):
        instance.report_run_failed(run, "abandoned: the demo that started it was interrupted")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _failure_message(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            return event.step_failure_data.error.message.strip().splitlines()[0]
    return "failed (see the run in the Dagster UI)"


def _collect_checks(result, report: DemoReport) -> None:
    for event in result.all_events:
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        ev = event.event_specific_data
        if ev.passed:
            report.checks["passed"] += 1
        elif ev.severity.value == "WARN":
            report.checks["warned"] += 1
        else:
            report.checks["failed"] += 1
            report.failed_checks.append(
                f"{ev.asset_key.to_user_string()}:{ev.check_name} [{ev.partition or ''}]"
            )


def _summarise(report: DemoReport, site) -> None:
    from ingestion.warehouse import connect
    from orchestration.report import reports_dir

    for day in report.days:
        page = reports_dir() / day.isoformat() / "daily_report.html"
        if page.is_file():
            report.reports[day] = page.resolve()
    with connect(report.warehouse_url, site) as wh:
        for day in report.days:
            start, end = site.day_window(day)
            window = [start, end]
            report.sessions[day] = int(
                wh.query(
                    "SELECT count(*) AS n FROM analytics.sessions "
                    "WHERE entry_time >= {p} AND entry_time < {p}",
                    window,
                )["n"][0]
            )
            report.productivity[day] = wh.query(
                "SELECT index_number, round(avg(productivity_score), 3) AS productivity "
                "FROM analytics.index_records WHERE scheduled_start >= {p} AND scheduled_start < {p} "
                "GROUP BY index_number ORDER BY index_number",
                window,
            )
            report.anomalies[day] = wh.query(
                "SELECT anomaly_type, count(*) AS n FROM analytics.anomalies WHERE ts >= {p} AND ts < {p} "
                "GROUP BY anomaly_type ORDER BY n DESC, anomaly_type",
                window,
            )
            report.alerts[day] = wh.query(
                "SELECT alert_type, severity, count(*) AS n FROM ops.alerts "
                "WHERE started_at >= {p} AND started_at < {p} "
                "GROUP BY alert_type, severity ORDER BY n DESC, alert_type, severity",
                window,
            )


def format_report(report: DemoReport, seconds: float) -> str:
    lines = [
        f"Sightline demo: {len(report.days)} site-days, {report.runs} Dagster runs in {seconds:.0f} s "
        f"(warehouse {redact_url(report.warehouse_url)})",
        "",
    ]
    for day in report.days:
        lines.append(f"{day} ({day:%A})  sessions: {report.sessions.get(day, 0)}")
        prod = report.productivity.get(day)
        if prod is not None and not prod.is_empty():
            cells = [f"{i}:{'-' if p is None else f'{p:.2f}'}" for i, p in prod.iter_rows()]
            lines.append("  productivity by index  " + "  ".join(cells))
        anomalies = report.anomalies.get(day)
        if anomalies is not None and not anomalies.is_empty():
            lines.append("  anomalies  " + ", ".join(f"{t} {n}" for t, n in anomalies.iter_rows()))
        else:
            lines.append("  anomalies  none")
        alerts = report.alerts.get(day)
        if alerts is not None and not alerts.is_empty():
            lines.append("  alerts     " + ", ".join(f"{t} ({sev}) {n}" for t, sev, n in alerts.iter_rows()))
        else:
            lines.append("  alerts     none")
        if day in report.reports:
            lines.append(f"  daily report  {report.reports[day]}")
    checks = report.checks
    lines += [
        "",
        f"checks: {checks['passed']} passed, {checks['warned']} warnings, {checks['failed']} failed",
    ]
    lines += [f"  FAILED {c}" for c in report.failed_checks]
    lines += [f"  RUN FAILED {r}" for r in report.failed_runs]
    lines += [
        "",
        "Next: `make ui`, then open http://127.0.0.1:3000",
        "  Assets: groups ingestion (day x camera), transforms (one per SQLMesh model, per day), quality",
        "  Charts: analytics/zone_occupancy_minutely and analytics/heatmap_hourly, latest materialisation",
        "  Alerts: `sightline alerts list`, `sightline alerts ack ID --by NAME`; set "
        "SIGHTLINE_ALERT_WEBHOOK_URL and run `sightline alerts deliver` to send them",
        "  Daily report: reports/daily_report (charts in its metadata); the HTML pages are listed above,",
        "  `sightline report --date <day> --pdf` prints one to PDF",
        f"  Runs and checks of this demo are kept in {report.dagster_home}",
    ]
    return "\n".join(lines)
