"""The warehouse landing layer: one interface, two backends, chosen by URL.

    duckdb:///data/warehouse.duckdb      embedded default (relative paths are relative to the working dir)
    postgresql://user@host:5432/dbname   PostgreSQL, with TimescaleDB used when the extension is available

The URL comes from the argument, else $SIGHTLINE_WAREHOUSE_URL, else the embedded default.
Credentials belong in the URL from the environment (or PG* variables), never in code or config files.
"""

from __future__ import annotations

import os

from ingestion.redact import redact_url
from ingestion.site import Site, load_site
from ingestion.warehouse.base import LandingResult, Warehouse

DEFAULT_WAREHOUSE_URL = "duckdb:///data/warehouse.duckdb"

__all__ = ["DEFAULT_WAREHOUSE_URL", "LandingResult", "Warehouse", "connect", "resolve_url"]


def resolve_url(url: str | None = None) -> str:
    return url or os.environ.get("SIGHTLINE_WAREHOUSE_URL") or DEFAULT_WAREHOUSE_URL


def connect(url: str | None = None, site: Site | None = None) -> Warehouse:
    """Open the warehouse named by `url` (see module doc). Does not create tables: call setup()."""
    url = resolve_url(url)
    site = site or load_site()
    if url.startswith("duckdb://"):
        from ingestion.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(url, site)
    if url.startswith(("postgresql://", "postgres://")):
        from ingestion.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(url, site)
    raise ValueError(
        f"unsupported warehouse URL {redact_url(url)!r}: use duckdb:///path/to/file.duckdb or "
        "postgresql://user@host/db "
        "(set SIGHTLINE_WAREHOUSE_URL or pass --warehouse)"
    )
