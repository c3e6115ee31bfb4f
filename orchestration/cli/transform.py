"""`sightline transform`: build the SQLMesh marts for a range of site-local days."""

from __future__ import annotations

import argparse
from datetime import date

from orchestration.cli.options import add_site_option, add_warehouse_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "transform",
        help="build sessions, index records, metrics and daily stats (SQLMesh) for a day range",
        description="Build every analytics mart for site-local days [--start, --end). "
        "Missing days are built; "
        "--restate rebuilds the range even where it was built (other days are not touched).",
    )
    parser.add_argument(
        "--start", type=date.fromisoformat, required=True, help="first site-local day, YYYY-MM-DD"
    )
    parser.add_argument(
        "--end",
        type=date.fromisoformat,
        default=None,
        help="day after the last one (exclusive), YYYY-MM-DD; default: the day after --start",
    )
    add_warehouse_option(parser)
    add_site_option(parser)
    parser.add_argument("--restate", action="store_true", help="rebuild the range even if it was built")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from ingestion.site import load_site
    from ingestion.transform import build_marts

    end = args.end or args.start + timedelta(days=1)
    result = build_marts(args.warehouse, args.start, end, restate=args.restate, site=load_site(args.site))
    print(f"built {result.start}..{result.end} (end exclusive) on {result.backend} in {result.seconds:.1f} s")
    for model, rows in result.rows.items():
        print(f"  {model:<40} {rows:>10} rows")
    failed = [a for a in result.audits if not a.passed]
    print(f"audits: {len(result.audits) - len(failed)} passed, {len(failed)} failed")
    for a in failed:
        print(f"  FAILED {a.audit} on {a.model}: {a.failures} rows{'' if a.blocking else ' (non-blocking)'}")
    return 1 if failed else 0
