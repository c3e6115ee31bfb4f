"""`sightline report`: the daily report of a site-day as one self-contained HTML page (and a PDF)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from orchestration.cli.options import add_site_option, add_warehouse_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the daily report of a site-day (HTML, optionally PDF)",
        description="Write <out>/<date>/daily_report.html from the marts of that day and the previous "
        "workdays: headline KPIs, productivity per index block, occupancy per zone, a heatmap "
        "per camera, anomalies, workers and recommendations. Build the marts first "
        "(sightline transform).",
    )
    parser.add_argument("--date", type=date.fromisoformat, required=True, help="site-local day, YYYY-MM-DD")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default $SIGHTLINE_REPORTS_DIR, else data/reports)",
    )
    parser.add_argument(
        "--period",
        choices=("day", "week", "month"),
        default="day",
        help="day (default), or the site-local ISO week / calendar month holding --date (from the rollups)",
    )
    parser.add_argument("--pdf", action="store_true", help="also print it to PDF with headless Chromium")
    parser.add_argument(
        "--screenshot", action="store_true", help="also save a PNG of the first screen (headless Chromium)"
    )
    add_warehouse_option(parser)
    add_site_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ingestion.site import load_site
    from ingestion.warehouse import connect
    from orchestration.report import (
        build_daily_report,
        build_period_report,
        reports_dir,
        write_period_report,
        write_report,
    )

    site = load_site(args.site)
    with connect(args.warehouse, site) as wh:
        if args.period == "day":
            report = build_daily_report(wh, site, args.date)
        else:
            report = build_period_report(wh, site, args.period, args.date)
    if args.period == "day":
        files = write_report(report, args.out or reports_dir(), pdf=args.pdf, screenshot=args.screenshot)
    else:
        files = write_period_report(report, args.out or reports_dir(), pdf=args.pdf)
    print(f"report: {files.html.resolve()}")
    for label, path in (("pdf", files.pdf), ("screenshot", files.screenshot)):
        if path:
            print(f"{label}: {path.resolve()}")
    for line in report.recommendations:
        print(f"  - {line}")
    return 0
