"""Shared fixtures: the demo site, and throwaway warehouses on DuckDB and the local PostgreSQL.

Each PostgreSQL fixture creates its own database and drops it afterwards, so tests (and parallel test
sessions) never see each other's rows. The server comes from PG* variables, default 127.0.0.1:5432 as
user postgres; set SIGHTLINE_TEST_PG_ADMIN_URL to use another.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ingestion.site import Site, load_site

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("SIGHTLINE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def site() -> Site:
    return load_site(REPO_ROOT / "site.yaml")


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # a missing server is a failure, not a skip: CI must start it
        raise RuntimeError(
            f"cannot reach PostgreSQL at {ADMIN_URL} ({exc}); start it (`.ci/run` does) "
            "or set SIGHTLINE_TEST_PG_ADMIN_URL"
        ) from exc


def create_database(prefix: str = "sightline_test") -> str:
    """Create an empty database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both backends, one test each."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url = create_database()
        try:
            yield url
        finally:
            drop_database(url)
