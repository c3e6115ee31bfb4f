"""`sightline demo`: simulate two workdays, build everything through Dagster on embedded DuckDB, summarise."""

from __future__ import annotations

import argparse
import logging
import time
from datetime import date

from orchestration.cli.options import add_warehouse_option


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="simulate 2 site-days and build every asset through Dagster (embedded, no server)",
        description="Simulates site-days, materialises every Dagster asset on the embedded DuckDB warehouse, "
        "runs the checks and prints a summary. The runs land in .dagster_home/, which `make ui` shows.",
    )
    p.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2025, 1, 15),
        help="first day, YYYY-MM-DD (default 2025-01-15, a Wednesday)",
    )
    p.add_argument("--days", type=_positive_int, default=2, help="number of days (default 2)")
    p.add_argument("--fps", type=float, default=1.0, help="simulated detection frames per second (default 1)")
    add_warehouse_option(p)
    p.add_argument(
        "--dagster-home", default=None, help="Dagster home (default .dagster_home/ in the repository)"
    )
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from orchestration.demo import format_report, run_demo

    if not getattr(args, "verbose", False):  # the progress bar and the summary are the output
        logging.getLogger().setLevel(logging.WARNING)
    began = time.perf_counter()
    report = run_demo(
        start=args.start,
        days=args.days,
        fps=args.fps,
        warehouse_url=args.warehouse,
        dagster_home=args.dagster_home,
    )
    print(format_report(report, time.perf_counter() - began))
    return 0 if report.ok else 1
