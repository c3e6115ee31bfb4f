"""The daily report a supervisor reads: one self-contained HTML page per site-day (and a PDF on request).

    report = build_daily_report(warehouse, site, date(2025, 1, 15))
    paths = write_report(report, Path("data/reports"), pdf=True)

Everything comes from the marts (analytics.*), the worker registry and the site config; nothing is
recomputed from detections. The page holds no external reference: charts are inline SVG (matplotlib) and
the camera heatmaps PNG in data URIs, so the file can be mailed or archived as is. Its numbers are also
embedded as JSON (`<script id="report-data">`), which is what the tests compare with the marts.

Recommendations are rules over those numbers, each naming the zone, block or camera and the measured
value; the thresholds are the constants below.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import polars as pl

from ingestion.site import Camera, Site
from ingestion.vocabulary import WORK_ZONE_TYPES
from ingestion.warehouse import Warehouse

log = logging.getLogger(__name__)

HISTORY_WORKDAYS = 7  # headline KPIs are compared with the median of this many previous workdays
UNDERSTAFFED_SHARE = 0.20  # a zone below min_workers for more of its working time than this is flagged
OVERFLOW_SHARE = 0.05  # a zone above max_workers for more of its working time than this is flagged
OVERRUN_DAYS = (3, 5)  # a block overrunning on at least 3 of the last 5 workdays is flagged
LOW_PRODUCTIVITY = 0.85  # a block below this share of its 7-workday median productivity is flagged
STATUS_COLOURS = {"on_time": "#2e7d32", "delayed": "#f9a825", "overrun": "#c62828", "incomplete": "#9e9e9e"}


@dataclass
class DailyReport:
    site: Site
    day: date
    history: list[date]  # previous workdays with data, newest first
    kpis: list[dict[str, Any]]
    blocks: pl.DataFrame
    block_median: dict[int, float]
    zones: pl.DataFrame  # daily_zone_stats of the day
    occupancy: pl.DataFrame
    heatmap: pl.DataFrame
    anomalies: pl.DataFrame
    workers: pl.DataFrame
    cameras: pl.DataFrame
    recommendations: list[str]
    charts: dict[str, str] = field(default_factory=dict)  # name -> inline SVG or <img> HTML
    pngs: dict[str, bytes] = field(default_factory=dict)  # name -> PNG (for Dagster metadata)

    def data(self) -> dict[str, Any]:
        """The report's numbers as JSON-able values (embedded in the page)."""
        return {
            "site": self.site.name,
            "date": self.day.isoformat(),
            "history": [d.isoformat() for d in self.history],
            "kpis": self.kpis,
            "blocks": _records(
                self.blocks.select(
                    "index_number",
                    "completion_status",
                    "productivity_score",
                    "overrun_seconds",
                    "start_delay_seconds",
                )
            ),
            "block_median": {str(k): v for k, v in self.block_median.items()},
            "anomalies": _records(self.anomalies.group_by("anomaly_type").len().sort("anomaly_type")),
            "workers": _records(
                self.workers.select("worker_id", "registered", "presence_seconds", "productivity")
            ),
            "recommendations": self.recommendations,
        }


def _records(df: pl.DataFrame) -> list[dict]:
    return [
        {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in r.items()}
        for r in df.iter_rows(named=True)
    ]


# ----------------------------------------------------------------------------------------------- data


def _day_query(wh: Warehouse, sql: str, days: list[date]) -> pl.DataFrame:
    marks = ", ".join("{p}" for _ in days)
    return wh.query(sql.replace("{days}", marks), days)


def build_daily_report(wh: Warehouse, site: Site, day: date, *, charts: bool = True) -> DailyReport:
    """Read the marts of `day` and the previous workdays and derive KPIs, charts and recommendations."""
    built = wh.query(
        "SELECT DISTINCT local_date FROM analytics.daily_zone_stats WHERE local_date <= {p} "
        "ORDER BY local_date DESC",
        [day],
    )["local_date"].to_list()
    if day not in built:
        raise ValueError(f"no marts for {day}: build them first (sightline transform --start {day})")
    history = [d for d in built if d < day and site.is_workday(d)][:HISTORY_WORKDAYS]
    days = [day, *history]

    zones = _day_query(wh, "SELECT * FROM analytics.daily_zone_stats WHERE local_date IN ({days})", days)
    cameras = _day_query(wh, "SELECT * FROM analytics.daily_camera_stats WHERE local_date IN ({days})", days)
    blocks = _day_query(
        wh,
        "SELECT date, index_number, scheduled_start, scheduled_end, actual_start, actual_end, "
        "completion_status, productivity_score, overrun_seconds, start_delay_seconds, "
        "total_workers, anomalies_count FROM analytics.index_records "
        "WHERE date IN ({days}) ORDER BY date, index_number",
        days,
    )
    anomalies = wh.query(
        "SELECT anomaly_type, severity, ts, ts_end, duration_seconds, camera_id, zone_id, "
        "description FROM analytics.anomalies WHERE local_date = {p} ORDER BY ts",
        [day],
    )
    workers = wh.query(
        "SELECT * FROM analytics.worker_daily WHERE local_date = {p} ORDER BY worker_id", [day]
    )
    occupancy = wh.query(
        "SELECT zone_id, minute_start, mean_people, max_people, in_working_time "
        "FROM analytics.zone_occupancy_minutely WHERE local_date = {p}",
        [day],
    )
    heatmap = wh.query(
        "SELECT camera_id, cell_x, cell_y, MAX(cell_px) AS cell_px, SUM(samples) AS samples "
        "FROM analytics.heatmap_hourly WHERE local_date = {p} "
        "GROUP BY camera_id, cell_x, cell_y",
        [day],
    )

    today_blocks = blocks.filter(pl.col("date") == day)
    past = blocks.filter(pl.col("date") != day)
    block_median = {
        int(k): float(median(v))
        for k, v in (
            (r["index_number"], r["values"])
            for r in past.drop_nulls("productivity_score")
            .group_by("index_number")
            .agg(values=pl.col("productivity_score"))
            .iter_rows(named=True)
        )
    }
    report = DailyReport(
        site=site,
        day=day,
        history=history,
        kpis=_kpis(site, day, history, zones, cameras, blocks, anomalies, wh),
        blocks=today_blocks,
        block_median=block_median,
        zones=zones.filter(pl.col("local_date") == day).sort("zone_id"),
        occupancy=occupancy,
        heatmap=heatmap,
        anomalies=anomalies,
        workers=workers,
        cameras=cameras.filter(pl.col("local_date") == day).sort("camera_id"),
        recommendations=[],
    )
    report.recommendations = recommendations(report, blocks)
    if charts:
        _charts(report)
    return report


def _kpi_values(
    site: Site,
    d: date,
    zones: pl.DataFrame,
    cameras: pl.DataFrame,
    blocks: pl.DataFrame,
    anomaly_counts: dict[date, int],
    workers: dict[date, int],
) -> dict[str, float | None]:
    z = zones.filter((pl.col("local_date") == d) & pl.col("zone_type").is_in(WORK_ZONE_TYPES))
    active, idle = float(z["total_active_seconds"].sum()), float(z["total_idle_seconds"].sum())
    scheduled = float(z["scheduled_seconds"].sum())
    occupied_working = float((z["utilization"].fill_null(0) * z["scheduled_seconds"]).sum())
    b = blocks.filter(pl.col("date") == d)
    c = cameras.filter(pl.col("local_date") == d)
    return {
        "productivity": active / (active + idle) if active + idle else None,
        "utilization": occupied_working / scheduled if scheduled else None,
        "sessions": float(zones.filter(pl.col("local_date") == d)["sessions"].sum()),
        "blocks_on_time": float((b["completion_status"] == "on_time").sum()) / b.height if b.height else None,
        "anomalies": float(anomaly_counts.get(d, 0)),
        "identified_workers": float(workers.get(d, 0)),
        "cameras_delivering": float((c["frames_read"] > 0).sum()) / c.height if c.height else None,
    }


KPI_LABELS = {
    "productivity": ("Productivity (work zones)", "pct", True),
    "utilization": ("Utilization of working time", "pct", True),
    "sessions": ("Zone visits", "int", True),
    "blocks_on_time": ("Index blocks on time", "pct", True),
    "anomalies": ("Anomalies", "int", False),
    "identified_workers": ("Identified workers", "int", True),
    "cameras_delivering": ("Cameras delivering frames", "pct", True),
}


def _kpis(site, day, history, zones, cameras, blocks, anomalies, wh) -> list[dict[str, Any]]:
    days = [day, *history]
    counts = _day_query(
        wh,
        "SELECT local_date, COUNT(*) AS n FROM analytics.anomalies "
        "WHERE local_date IN ({days}) GROUP BY local_date",
        days,
    )
    anomaly_counts = dict(counts.iter_rows())
    identified = _day_query(
        wh,
        "SELECT local_date, COUNT(*) AS n FROM analytics.worker_daily "
        "WHERE local_date IN ({days}) GROUP BY local_date",
        days,
    )
    workers = dict(identified.iter_rows())
    per_day = {d: _kpi_values(site, d, zones, cameras, blocks, anomaly_counts, workers) for d in days}
    out = []
    for name, (label, unit, higher_is_better) in KPI_LABELS.items():
        past = [per_day[d][name] for d in history if per_day[d][name] is not None]
        out.append(
            {
                "name": name,
                "label": label,
                "unit": unit,
                "higher_is_better": higher_is_better,
                "value": per_day[day][name],
                "median_7": float(median(past)) if past else None,
                "history": [per_day[d][name] for d in reversed(history)],
            }
        )
    return out


# ------------------------------------------------------------------------------------- recommendations


def recommendations(report: DailyReport, blocks: pl.DataFrame) -> list[str]:
    """Rule-based advice, most actionable first; each line names the place and the measured number."""
    site, out = report.site, []
    zone_by_id = {z.id: z for z in site.zones}
    # A camera that delivered nothing gets one line; its zones' staffing cannot be judged.
    silent = set(report.cameras.filter(pl.col("frames_read") == 0)["camera_id"].to_list())
    if site.is_workday(report.day):
        for camera_id in sorted(silent):
            out.append(
                f"{camera_id} delivered no frames all day: nothing it watches is measured; check the "
                "camera, its network and its ingestion."
            )
    working = report.occupancy.filter(pl.col("in_working_time"))
    for zone_id, part in sorted(working.group_by("zone_id"), key=lambda g: g[0][0]):
        zone = zone_by_id.get(zone_id[0])
        if zone is None or part.is_empty() or zone.camera in silent:
            continue
        if zone.min_workers > 0:
            share = float((part["mean_people"] < zone.min_workers).mean())
            if share > UNDERSTAFFED_SHARE:
                out.append(
                    f"{zone.id} ({zone.name}) under-staffed {share:.0%} of working time "
                    f"(fewer than {zone.min_workers} present): assign another worker or rebalance."
                )
        over = float((part["max_people"] > zone.max_workers).mean())
        if over > OVERFLOW_SHARE:
            what = "entered" if zone.max_workers == 0 else f"over its {zone.max_workers}-person capacity"
            out.append(
                f"{zone.id} ({zone.name}) {what} during {over:.0%} of working time: check the layout "
                "and who needs to be there."
            )
    need, window = OVERRUN_DAYS
    recent = sorted({report.day, *report.history}, reverse=True)[:window]
    for index_number, part in sorted(
        blocks.filter(pl.col("date").is_in(recent)).group_by("index_number"), key=lambda g: g[0][0]
    ):
        over = part.filter(pl.col("completion_status") == "overrun")
        if over.height >= need and report.day in over["date"].to_list():
            minutes = float(over["overrun_seconds"].median()) / 60
            out.append(
                f"Block {index_number[0]} overran by {minutes:.0f} min (median) on {over.height} of the "
                f"last {len(recent)} workdays: review its work content or staffing."
            )
        late = part.filter(pl.col("completion_status") == "delayed")
        if late.height >= need and report.day in late["date"].to_list():
            minutes = float(late["start_delay_seconds"].median()) / 60
            out.append(
                f"Block {index_number[0]} started {minutes:.0f} min late (median) on {late.height} of the "
                f"last {len(recent)} workdays: check the hand-over before it."
            )
    for row in report.blocks.iter_rows(named=True):
        ref = report.block_median.get(row["index_number"])
        value = row["productivity_score"]
        if ref and value is not None and value < LOW_PRODUCTIVITY * ref:
            out.append(
                f"Block {row['index_number']} productivity {value:.0%} against a 7-workday median of "
                f"{ref:.0%}: look at the idle anomalies of that block."
            )
    downtime = report.anomalies.filter(pl.col("anomaly_type") == "camera_down")
    for (camera_id,), part in sorted(downtime.group_by("camera_id"), key=lambda g: g[0][0]):
        if camera_id not in silent:
            minutes = float(part["duration_seconds"].sum()) / 60
            out.append(
                f"{camera_id} was down {minutes:.0f} min in working time ({part.height} outage(s)): "
                "its numbers for those periods are missing."
            )
    unknown = report.workers.filter(~pl.col("registered"))["worker_id"].to_list()
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        out.append(
            f"{len(unknown)} worker id(s) seen but not in the registry ({shown}): add them to the "
            "site's workers list so their numbers carry a name and assigned zones."
        )
    if not out:
        out.append("No rule fired: staffing, blocks and cameras were within their limits.")
    return out


# ------------------------------------------------------------------------------------------------ charts


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _svg(fig, close: bool = True) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    if close:
        _plt().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _png(fig, dpi: int = 80) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _charts(report: DailyReport) -> None:
    figures = {"productivity": _productivity_figure, "occupancy": _occupancy_figure}
    for name, make in figures.items():
        fig = make(report)  # drawn once, saved twice: SVG for the page, PNG for the Dagster metadata
        report.charts[name] = _svg(fig, close=False)
        report.pngs[name] = _png(fig)
    heatmaps = []
    for camera in report.site.cameras:
        png = _png(_heatmap_figure(report, camera), dpi=85)
        report.pngs[f"heatmap_{camera.id}"] = png
        heatmaps.append(_img(png, f"heatmap {camera.id}"))
    report.charts["heatmaps"] = "".join(f'<div class="heat">{h}</div>' for h in heatmaps)


def _productivity_figure(report: DailyReport):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.0))
    rows = report.blocks.sort("index_number")
    x = rows["index_number"].to_list()
    values = [v if v is not None else 0 for v in rows["productivity_score"].to_list()]
    colours = [STATUS_COLOURS.get(s, "#9e9e9e") for s in rows["completion_status"].to_list()]
    ax.bar(x, values, color=colours, width=0.7)
    med = [report.block_median.get(i) for i in x]
    if any(m is not None for m in med):
        ax.scatter(
            [i for i, m in zip(x, med, strict=True) if m is not None],
            [m for m in med if m is not None],
            marker="_",
            s=600,
            color="black",
            linewidths=2.5,
            label="7-workday median",
            zorder=3,
        )
    for status, colour in STATUS_COLOURS.items():
        ax.bar([0], [0], color=colour, label=status.replace("_", " "))
    ax.set_xlim(0.4, max(x, default=1) + 0.6)
    ax.set_xticks(x)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("index block")
    ax.set_ylabel("productivity")
    ax.legend(ncol=5, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


def _occupancy_figure(report: DailyReport):
    plt = _plt()
    zones = report.site.zones
    cols = 4
    rows_n = max(1, -(-len(zones) // cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(10, 1.55 * rows_n), sharex=True, squeeze=False)
    tz = report.site.tz
    occupancy = report.occupancy.sort("minute_start")
    schedule = report.site.schedule_on(report.day) or report.site.schedule_in_force(report.day)
    hours = (max(schedule.work_start.hour - 1, 0), min(schedule.work_end.hour + 2, 24))
    for ax, zone in zip(axes.flat, zones, strict=False):
        part = occupancy.filter(pl.col("zone_id") == zone.id)
        if part.height:
            t = [
                ts.astimezone(tz).hour + ts.astimezone(tz).minute / 60
                for ts in part["minute_start"].to_list()
            ]
            ax.axhspan(zone.min_workers, zone.max_workers, color="#c8e6c9", alpha=0.7, lw=0)
            ax.plot(t, part["mean_people"].to_list(), color="#1565c0", lw=0.8)
        ax.set_title(f"{zone.id} {zone.name}", fontsize=7, loc="left")
        ax.tick_params(labelsize=6)
        ax.set_xlim(*hours)
        ax.set_xticks(range(hours[0], hours[1] + 1, 2))
    for ax in list(axes.flat)[len(zones) :]:
        ax.axis("off")
    fig.tight_layout(pad=0.4)
    return fig


def camera_background(site: Site, camera: Camera, backgrounds_dir: Path | None = None) -> np.ndarray:
    """The camera's own view as RGB: a frame kept for it under `backgrounds_dir` (<camera_id>.png/.jpg,
    e.g. saved by the video ingestion), else the simulator renderer's floor for sim:// cameras, else grey."""
    import cv2

    folder = backgrounds_dir or Path("data/backgrounds")
    for suffix in (".png", ".jpg", ".jpeg"):
        path = folder / f"{camera.id}{suffix}"
        if path.is_file():
            img = cv2.imread(str(path))
            if img is not None:
                return cv2.cvtColor(cv2.resize(img, (camera.width, camera.height)), cv2.COLOR_BGR2RGB)
    if camera.source.startswith("sim://"):
        from ingestion.simulate.render import _SceneRenderer

        return cv2.cvtColor(
            _SceneRenderer(camera, site.zones_for(camera.id), 1.0, 0).background, cv2.COLOR_BGR2RGB
        )
    return np.full((camera.height, camera.width, 3), 128, np.uint8)


def _heatmap_figure(report: DailyReport, camera: Camera):
    plt = _plt()
    from matplotlib.patches import Polygon

    fig, ax = plt.subplots(figsize=(6.4, 3.9))
    ax.imshow(camera_background(report.site, camera), extent=(0, camera.width, camera.height, 0))
    part = report.heatmap.filter(pl.col("camera_id") == camera.id)
    if part.height:
        cell = int(part["cell_px"].max())
        grid = np.zeros((-(-camera.height // cell) + 1, -(-camera.width // cell) + 1))
        xs, ys = part["cell_x"].to_numpy().astype(int), part["cell_y"].to_numpy().astype(int)
        ok = (xs >= 0) & (ys >= 0) & (xs < grid.shape[1]) & (ys < grid.shape[0])
        grid[ys[ok], xs[ok]] = part["samples"].to_numpy()[ok]
        masked = np.ma.masked_where(grid == 0, grid)
        from matplotlib.colors import LogNorm

        # Log scale: a worker standing still piles thousands of detections on one cell, passers-by a few.
        image = ax.imshow(
            masked,
            cmap="YlOrRd",
            norm=LogNorm(vmin=1, vmax=max(float(grid.max()), 10.0)),
            alpha=0.55,
            interpolation="nearest",
            extent=(0, grid.shape[1] * cell, grid.shape[0] * cell, 0),
        )
        bar = fig.colorbar(image, ax=ax, fraction=0.035, pad=0.01)
        bar.set_label("detections per cell", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    for zone in report.site.zones_for(camera.id):
        ax.add_patch(Polygon(zone.polygon, closed=True, fill=False, edgecolor="white", lw=1.2))
        x0, y0 = min(p[0] for p in zone.polygon), min(p[1] for p in zone.polygon)
        ax.text(x0 + 6, y0 + 24, zone.id, color="white", fontsize=7, weight="bold")
    ax.set_xlim(0, camera.width)
    ax.set_ylim(camera.height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{camera.id} {camera.name}", fontsize=8)
    return fig


# -------------------------------------------------------------------------------------------------- HTML

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; color: #222; margin: 0; }
section.page { padding: 14mm 12mm; page-break-after: always; break-after: page; }
section.page:last-of-type { page-break-after: auto; break-after: auto; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 0 0 8px; border-bottom: 2px solid #1565c0; }
.sub { color: #555; font-size: 12px; margin-bottom: 10px; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; }
.kpi { border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
.kpi .label { font-size: 11px; color: #555; } .kpi .value { font-size: 22px; font-weight: bold; }
.kpi .cmp { font-size: 11px; } .good { color: #2e7d32; } .bad { color: #c62828; } .flat { color: #555; }
table { border-collapse: collapse; font-size: 10.5px; width: 100%; margin-top: 6px; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 3px 5px; text-align: left; }
th { background: #f5f5f5; }
ul.recs li { margin: 4px 0; font-size: 12.5px; }
.heats { display: grid; grid-template-columns: 1fr 1fr; gap: 6px; } .heat img { width: 100%; }
svg { max-width: 100%; height: auto; }
.status { padding: 1px 6px; border-radius: 8px; color: white; font-size: 10px; }
"""


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    return f"{value:.0%}" if unit == "pct" else f"{value:,.0f}"


def _kpi_html(k: dict[str, Any]) -> str:
    value, ref = k["value"], k["median_7"]
    if value is None or ref is None:
        cmp = '<span class="flat">no previous workdays to compare</span>'
    else:
        delta = value - ref
        better = (delta > 0) == k["higher_is_better"]
        cls = "flat" if abs(delta) < 1e-9 else ("good" if better else "bad")
        shown = f"{delta * 100:+.1f} pts" if k["unit"] == "pct" else f"{delta:+,.0f}"
        days = len([v for v in k["history"] if v is not None])
        cmp = f'<span class="{cls}">{shown}</span> vs {days}-workday median {_fmt(ref, k["unit"])}'
    raw = "" if value is None else f"{value:.6g}"
    return (
        f'<div class="kpi" data-kpi="{k["name"]}" data-value="{raw}"><div class="label">{k["label"]}'
        f'</div><div class="value">{_fmt(value, k["unit"])}</div><div class="cmp">{cmp}</div></div>'
    )


def _local(ts: datetime | None, site: Site) -> str:
    return "" if ts is None else ts.astimezone(site.tz).strftime("%H:%M:%S")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: DailyReport) -> str:
    site, day = report.site, report.day
    e = html.escape
    override = site.override_on(day)
    schedule = site.schedule_on(day)
    when = (
        f"{schedule.work_start:%H:%M}–{schedule.work_end:%H:%M}, {schedule.indices} index blocks"
        if schedule
        else "not a workday"
    )
    note = f" · {e(override.note)}" if override and override.note else ""
    compared = (
        f"compared with the median of the {len(report.history)} previous workday(s) "
        f"({report.history[-1]} – {report.history[0]})"
        if report.history
        else "no previous workdays"
    )
    block_rows = [
        [
            str(r["index_number"]),
            _local(r["scheduled_start"], site),
            _local(r["scheduled_end"], site),
            _local(r["actual_start"], site),
            _local(r["actual_end"], site),
            f'<span class="status" style="background:{STATUS_COLOURS.get(r["completion_status"], "#999")}">'
            f"{e(r['completion_status'])}</span>",
            _fmt(r["productivity_score"], "pct"),
            "" if r["overrun_seconds"] is None else f"{r['overrun_seconds'] / 60:.1f}",
            str(r["total_workers"] or 0),
        ]
        for r in report.blocks.sort("index_number").iter_rows(named=True)
    ]
    zone_rows = [
        [
            e(r["zone_id"]),
            e(r["zone_name"] or ""),
            e(r["zone_type"]),
            _fmt(r["utilization"], "pct"),
            _fmt(r["productivity"], "pct"),
            str(r["sessions"]),
            str(r["peak_people"]),
            str(r["anomalies"]),
        ]
        for r in report.zones.iter_rows(named=True)
    ]
    by_type = report.anomalies.group_by("anomaly_type", "severity").len().sort("len", descending=True)
    severity_rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    top = (
        report.anomalies.with_columns(
            rank=pl.col("severity").replace_strict(severity_rank, default=9, return_dtype=pl.Int32)
        )
        .sort("rank", "ts")
        .head(14)
    )
    anomaly_rows = [
        [
            _local(r["ts"], site),
            e(r["severity"]),
            e(r["anomaly_type"]),
            e(r["camera_id"] or ""),
            e(r["zone_id"] or ""),
            e((r["description"] or "")[:110]),
        ]
        for r in top.iter_rows(named=True)
    ]
    worker_rows = [
        [
            e(r["worker_id"]),
            e(r["worker_name"] or "not in registry"),
            f"{r['presence_seconds'] / 3600:.2f}",
            _fmt(r["productivity"], "pct"),
            _fmt(r["assigned_share"], "pct"),
            str(r["sessions"]),
            str(r["anomalies"]),
        ]
        for r in report.workers.sort("presence_seconds", descending=True).head(16).iter_rows(named=True)
    ]
    data = json.dumps(report.data(), default=str).replace("</", "<\\/")
    pages = [
        f"""<h1>{e(site.name)} — daily report {day:%A %d %B %Y}</h1>
<div class="sub">{e(site.timezone)} · {when}{note} · {compared}</div>
<h2>Headline</h2><div class="kpis">{"".join(_kpi_html(k) for k in report.kpis)}</div>
<h2 style="margin-top:14px">Recommendations</h2>
<ul class="recs">{"".join(f"<li>{e(r)}</li>" for r in report.recommendations)}</ul>
<h2 style="margin-top:14px">Anomalies ({report.anomalies.height})</h2>
{_table(["type", "severity", "count"], [[e(t), e(s), str(n)] for t, s, n in by_type.iter_rows()])}""",
        f"""<h2>Productivity by index block</h2>
<div class="sub">Bars: the day's productivity (active / active + idle) per block, coloured by completion;
black marks: the block's median over the previous workdays.</div>
{report.charts.get("productivity", "")}
{
            _table(
                [
                    "block",
                    "scheduled",
                    "until",
                    "first work",
                    "last work",
                    "status",
                    "productivity",
                    "overrun min",
                    "people",
                ],
                block_rows,
            )
        }""",
        f"""<h2>Occupancy per zone</h2>
<div class="sub">Mean people present per minute (local time); green band: the zone's min–max workers.</div>
{report.charts.get("occupancy", "")}
{
            _table(
                ["zone", "name", "type", "utilization", "productivity", "visits", "peak", "anomalies"],
                zone_rows,
            )
        }""",
        f"""<h2>Where people were: heatmap per camera</h2>
<div class="sub">Detections per grid cell over the day, drawn over each camera's view with its zones.</div>
<div class="heats">{report.charts.get("heatmaps", "")}</div>""",
        f"""<h2>Anomalies of the day (most severe first)</h2>
{
            _table(["time", "severity", "type", "camera", "zone", "what"], anomaly_rows)
            if anomaly_rows
            else "<p>None.</p>"
        }
<h2 style="margin-top:14px">Workers with an identity ({report.workers.height})</h2>
{
            _table(
                [
                    "worker",
                    "name",
                    "hours present",
                    "productivity",
                    "at assigned zones",
                    "visits",
                    "anomalies",
                ],
                worker_rows,
            )
            if worker_rows
            else "<p>No identified workers.</p>"
        }""",
    ]
    body = "\n".join(f'<section class="page">{p}</section>' for p in pages)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(site.name)} daily report {day}</title>
<style>{CSS}</style></head>
<body>
{body}
<script type="application/json" id="report-data">{data}</script>
</body></html>
"""


# ---------------------------------------------------------------------------------------------- output


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path | None = None
    screenshot: Path | None = None


def reports_dir() -> Path:
    """Where reports go by default: $SIGHTLINE_REPORTS_DIR, else data/reports."""
    return Path(os.environ.get("SIGHTLINE_REPORTS_DIR") or "data/reports")


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_chromium(args: list[str], timeout: float = 120) -> None:
    binary = chromium()
    if binary is None:
        raise RuntimeError(
            "no headless Chromium found for the PDF: install the `chromium` package "
            "(apt-get install chromium) or leave out --pdf"
        )
    with tempfile.TemporaryDirectory() as profile:  # a throwaway profile: no state shared between runs
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-400:]}")


def write_report(
    report: DailyReport, out_dir: Path, *, pdf: bool = False, screenshot: bool = False
) -> ReportFiles:
    """Write <out_dir>/<date>/daily_report.html (+ .pdf, + .png screenshot of the first screen)."""
    folder = Path(out_dir) / report.day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "daily_report.html"
    page.write_text(render_html(report), encoding="utf-8")
    pdf_path = shot = None
    if pdf:
        pdf_path = folder / "daily_report.pdf"
        _run_chromium(["--no-pdf-header-footer", f"--print-to-pdf={pdf_path}", page.resolve().as_uri()])
    if screenshot:
        shot = folder / "daily_report.png"
        _run_chromium(
            [f"--screenshot={shot}", "--window-size=1100,1500", "--hide-scrollbars", page.resolve().as_uri()]
        )
    return ReportFiles(page, pdf_path, shot)


def expected_pages(html_text: str) -> int:
    """Pages of the printed report: each <section class="page"> is one A4 page."""
    return html_text.count('<section class="page">')


def report_days_back(day: date, n: int) -> list[date]:
    return [day - timedelta(days=i) for i in range(n)]


# ------------------------------------------------------------------------------------ weekly / monthly


@dataclass
class PeriodReport:
    site: Site
    grain: str  # week | month
    start: date  # first day of the period
    end: date  # exclusive
    zones: pl.DataFrame  # analytics.zone_period_stats of the period
    previous: pl.DataFrame  # the same of the period before
    cameras: pl.DataFrame  # analytics.camera_period_stats of the period
    days: pl.DataFrame  # per day: productivity and utilization of the work zones
    blocks: pl.DataFrame  # per index block: days, overruns, delays, median productivity
    recommendations: list[str]
    chart: str = ""

    def data(self) -> dict[str, Any]:
        return {
            "grain": self.grain,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "zones": _records(
                self.zones.select("zone_id", "days", "sessions", "utilization", "productivity")
            ),
            "blocks": _records(self.blocks),
            "recommendations": self.recommendations,
        }


def build_period_report(
    wh: Warehouse, site: Site, grain: str, day: date, *, charts: bool = True
) -> PeriodReport:
    """The week or month holding `day`, from the rollups (analytics.*_period_stats) and its days."""
    from ingestion.rollups import period_end, period_start

    start = period_start(grain, day)
    end = period_end(grain, start)
    before = period_start(grain, start - timedelta(days=1))
    zones = wh.query(
        "SELECT * FROM analytics.zone_period_stats WHERE grain = {p} AND period_start = {p} ORDER BY zone_id",
        [grain, start],
    )
    if zones.is_empty():
        raise ValueError(f"no {grain} rollup starting {start}: build the marts of its days first")
    previous = wh.query(
        "SELECT * FROM analytics.zone_period_stats WHERE grain = {p} AND period_start = {p} ORDER BY zone_id",
        [grain, before],
    )
    cameras = wh.query(
        "SELECT * FROM analytics.camera_period_stats WHERE grain = {p} AND period_start = {p} "
        "ORDER BY camera_id",
        [grain, start],
    )
    days = wh.query(
        "SELECT local_date, SUM(total_active_seconds) AS active, SUM(total_idle_seconds) AS idle, "
        "SUM(utilization * scheduled_seconds) AS occupied_working, SUM(scheduled_seconds) AS scheduled "
        "FROM analytics.daily_zone_stats WHERE local_date >= {p} AND local_date < {p} "
        f"AND zone_type IN ({', '.join('{p}' for _ in WORK_ZONE_TYPES)}) "
        "GROUP BY local_date ORDER BY local_date",
        [start, end, *WORK_ZONE_TYPES],
    ).with_columns(
        productivity=pl.col("active") / (pl.col("active") + pl.col("idle")),
        utilization=pl.col("occupied_working") / pl.col("scheduled"),
    )
    blocks = (
        wh.query(
            "SELECT index_number, completion_status, productivity_score, overrun_seconds "
            "FROM analytics.index_records WHERE date >= {p} AND date < {p}",
            [start, end],
        )
        .group_by("index_number")
        .agg(
            days=pl.len(),
            on_time=(pl.col("completion_status") == "on_time").sum(),
            delayed=(pl.col("completion_status") == "delayed").sum(),
            overrun=(pl.col("completion_status") == "overrun").sum(),
            median_overrun_min=pl.col("overrun_seconds")
            .filter(pl.col("completion_status") == "overrun")
            .median()
            / 60,
            median_productivity=pl.col("productivity_score").median(),
        )
        .sort("index_number")
    )
    report = PeriodReport(site, grain, start, end, zones, previous, cameras, days, blocks, [])
    report.recommendations = _period_recommendations(report)
    if charts and days.height:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(9, 2.8))
        labels = [d.strftime("%a %d") for d in days["local_date"].to_list()]
        ax.bar(labels, days["productivity"].fill_null(0).to_list(), color="#1565c0", label="productivity")
        ax.plot(
            labels,
            days["utilization"].fill_null(0).to_list(),
            color="#f57c00",
            marker="o",
            label="utilization",
        )
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis="x", labelsize=7, rotation=45 if len(labels) > 10 else 0)
        ax.legend(fontsize=8, loc="lower right")
        report.chart = _svg(fig)
    return report


def _period_recommendations(report: PeriodReport) -> list[str]:
    out = []
    for row in report.blocks.iter_rows(named=True):
        if row["days"] >= 2 and row["overrun"] * 2 >= row["days"]:
            out.append(
                f"Block {row['index_number']} overran on {row['overrun']} of {row['days']} days "
                f"(median {row['median_overrun_min']:.0f} min): review its work content or staffing."
            )
        if row["days"] >= 2 and row["delayed"] * 2 >= row["days"]:
            out.append(f"Block {row['index_number']} started late on {row['delayed']} of {row['days']} days.")
    previous = {r["zone_id"]: r for r in report.previous.iter_rows(named=True)}
    for row in report.zones.iter_rows(named=True):
        before = previous.get(row["zone_id"])
        if before and row["productivity"] is not None and before["productivity"]:
            change = row["productivity"] - before["productivity"]
            if change < -0.05:
                out.append(
                    f"{row['zone_id']} ({row['zone_name']}) productivity fell {abs(change) * 100:.0f} pts "
                    "from the "
                    f"previous {report.grain} ({before['productivity']:.0%} to {row['productivity']:.0%})."
                )
    for row in report.cameras.iter_rows(named=True):
        if row["frames_read"] == 0:
            out.append(f"{row['camera_id']} delivered no frames all {report.grain}.")
    return out or [f"No rule fired for this {report.grain}."]


def render_period_html(report: PeriodReport) -> str:
    e = html.escape
    site = report.site
    title = (
        f"week {report.start.isocalendar().week}, {report.start:%d %b} – "
        f"{report.end - timedelta(days=1):%d %b %Y}"
        if report.grain == "week"
        else f"{report.start:%B %Y}"
    )
    previous = {r["zone_id"]: r for r in report.previous.iter_rows(named=True)}
    zone_rows = [
        [
            e(r["zone_id"]),
            e(r["zone_name"] or ""),
            str(r["days"]),
            _fmt(r["utilization"], "pct"),
            _fmt(r["productivity"], "pct"),
            _fmt((previous.get(r["zone_id"]) or {}).get("productivity"), "pct"),
            str(r["sessions"]),
            str(r["peak_people"]),
            str(r["anomalies"]),
        ]
        for r in report.zones.iter_rows(named=True)
    ]
    block_rows = [
        [
            str(r["index_number"]),
            str(r["days"]),
            str(r["on_time"]),
            str(r["delayed"]),
            str(r["overrun"]),
            "" if r["median_overrun_min"] is None else f"{r['median_overrun_min']:.1f}",
            _fmt(r["median_productivity"], "pct"),
        ]
        for r in report.blocks.iter_rows(named=True)
    ]
    data = json.dumps(report.data(), default=str).replace("</", "<\\/")
    body = f"""<section class="page">
<h1>{e(site.name)} — {report.grain}ly report, {title}</h1>
<div class="sub">{e(site.timezone)} · site-local {"ISO week" if report.grain == "week" else "calendar month"};
sums of the days in analytics.zone_period_stats</div>
<h2>Recommendations</h2><ul class="recs">{"".join(f"<li>{e(r)}</li>" for r in report.recommendations)}</ul>
<h2>Work zones per day</h2>{report.chart}
<h2>Index blocks</h2>
{
        _table(
            ["block", "days", "on time", "delayed", "overrun", "median overrun min", "median productivity"],
            block_rows,
        )
    }
</section><section class="page">
<h2>Zones</h2>
{
        _table(
            [
                "zone",
                "name",
                "days",
                "utilization",
                "productivity",
                f"previous {report.grain}",
                "visits",
                "peak",
                "anomalies",
            ],
            zone_rows,
        )
    }
</section>"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(site.name)} {report.grain}ly report {report.start}</title>
<style>{CSS}</style></head>
<body>
{body}
<script type="application/json" id="report-data">{data}</script>
</body></html>
"""


def write_period_report(report: PeriodReport, out_dir: Path, *, pdf: bool = False) -> ReportFiles:
    """Write <out_dir>/<week|month>-<start>/<grain>ly_report.html (+ .pdf)."""
    folder = Path(out_dir) / f"{report.grain}-{report.start.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / f"{report.grain}ly_report.html"
    page.write_text(render_period_html(report), encoding="utf-8")
    pdf_path = None
    if pdf:
        pdf_path = page.with_suffix(".pdf")
        _run_chromium(["--no-pdf-header-footer", f"--print-to-pdf={pdf_path}", page.resolve().as_uri()])
    return ReportFiles(page, pdf_path)
