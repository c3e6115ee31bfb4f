"""`sightline check --date 2025-01-15 [--warehouse URL]`: run every quality check of a site-local day outside
Dagster (Great Expectations suites and SQL reconciliations), print a table, exit 1 if any check failed."""

from __future__ import annotations

import argparse
from datetime import date

from orchestration.cli.options import add_warehouse_option


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="run the data quality checks of a day (exit 1 on any failure)",
        description="Run every Great Expectations suite and reconciliation on one site-local day: raw "
        "detections per camera that landed data, then each mart. Prints one row per check and "
        "partition, the failures in detail, and where the Data Docs are.",
    )
    p.add_argument(
        "--date", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD", help="site-local day to check"
    )
    add_warehouse_option(p)
    p.add_argument(
        "--camera",
        action="append",
        default=None,
        metavar="CAM",
        help="check only these cameras' raw partitions (repeatable; default: every camera that landed)",
    )
    p.add_argument(
        "--docs-dir",
        default=None,
        help="where to build Great Expectations Data Docs (default $SIGHTLINE_GX_DOCS_DIR or data/gx_docs)",
    )
    p.add_argument("--no-docs", action="store_true", help="do not build Data Docs (faster)")
    p.set_defaults(func=run)


def format_table(results) -> str:
    rows = [("status", "check", "table", "partition", "unexpected", "detail")]
    rows += [
        (r.status, r.name, r.table, r.partition, str(r.unexpected_count), r.summary()[:90]) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ingestion.redact import redact_url
    from ingestion.site import load_site
    from ingestion.warehouse import resolve_url
    from quality import docs_index, run_checks

    site = load_site()
    url = resolve_url(args.warehouse)
    results = run_checks(
        url, args.date, site, cameras=args.camera, docs=args.docs_dir, build_docs=not args.no_docs
    )
    print(format_table(results))
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"\n{r.status} {r.name} on {r.table} [{r.partition}]: {r.description}")
        for line in r.failed_expectations:
            print(f"  - {line}")
        for row in r.offending_rows:
            print(f"    row: {row}")
        if r.docs_url:
            print(f"  details: {r.docs_url}")
    critical = sum(1 for r in failed if r.blocking)
    print(
        f"\n{len(results) - len(failed)} passed, {critical} failed (critical), "
        f"{len(failed) - critical} failed (warn)"
        f" of {len(results)} checks for {args.date} on {redact_url(url)}"
    )
    if not args.no_docs:
        print(f"Check results (works offline): {docs_index(args.docs_dir)}")
    return 1 if failed else 0
