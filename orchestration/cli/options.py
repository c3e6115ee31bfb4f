"""Options several `sightline` commands share, defined once so their names, defaults and help agree."""

from __future__ import annotations

import argparse


def add_warehouse_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--warehouse",
        default=None,
        help="warehouse URL (default: $SIGHTLINE_WAREHOUSE_URL, else duckdb:///data/warehouse.duckdb)",
    )


def add_site_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--site", default=None, help="site config file (default: $SIGHTLINE_SITE, else site.yaml)"
    )
