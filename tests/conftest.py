"""Shared fixtures: the demo site, and throwaway warehouses on DuckDB and the local PostgreSQL.

Each PostgreSQL fixture creates its own database and drops it afterwards, so tests (and parallel test
sessions) never see each other's rows. The server comes from PG* variables, default 127.0.0.1:5432 as
user postgres; set SIGHTLINE_TEST_PG_ADMIN_URL to use another.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ingestion.site import Site, load_site

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("SIGHTLINE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# A server with timescaledb preloaded (e.g. a second local cluster: see README, "TimescaleDB").
TIMESCALE_URL = os.environ.get(
    "SIGHTLINE_TEST_TIMESCALE_URL", "postgresql://postgres@127.0.0.1:5433/postgres"
)


@pytest.fixture(scope="session")
def site() -> Site:
    return load_site(REPO_ROOT / "site.yaml")


def _admin(admin_url: str = ADMIN_URL) -> psycopg.Connection:
    try:
        return psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # a missing server is a failure, not a skip: CI must start it
        raise RuntimeError(
            f"cannot reach PostgreSQL at {admin_url} ({exc}); start it (`.ci/run` does) "
            "or set SIGHTLINE_TEST_PG_ADMIN_URL"
        ) from exc


def create_database(prefix: str = "sightline_test", admin_url: str = ADMIN_URL) -> str:
    """Create an empty database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    server, name = url.rsplit("/", 1)
    with _admin(f"{server}/postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@functools.cache
def timescale_missing_reason() -> str | None:
    """Why the TimescaleDB tests cannot run here, or None when a server with the extension answers."""
    try:
        with psycopg.connect(TIMESCALE_URL, autocommit=True, connect_timeout=3) as conn:
            preloaded = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
            if "timescaledb" not in preloaded:
                return f"the server at {TIMESCALE_URL} does not preload timescaledb"
    except psycopg.OperationalError as exc:
        return (
            f"no TimescaleDB server at {TIMESCALE_URL} ({str(exc).strip().splitlines()[0]}); "
            "build the extension and start a cluster with it (README, 'TimescaleDB'), "
            "or set SIGHTLINE_TEST_TIMESCALE_URL"
        )
    return None


@pytest.fixture
def timescale_url() -> Iterator[str]:
    """A fresh database on the TimescaleDB server; skips with the reason where there is none."""
    reason = timescale_missing_reason()
    if reason:
        pytest.skip(reason)
    yield from fresh_database("sightline_tsdb", TIMESCALE_URL)


def fresh_database(prefix: str = "sightline_test", admin_url: str = ADMIN_URL) -> Iterator[str]:
    """An empty database for the duration of one fixture, dropped afterwards."""
    url = create_database(prefix, admin_url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    yield from fresh_database()


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


def owner_setup(url: str, site_path: Path = REPO_ROOT / "site.yaml") -> None:
    """What a deployment does once, as the owner: `sightline db setup` (landing creates no tables)."""
    from ingestion.warehouse import connect

    with connect(url, load_site(site_path)) as wh:
        wh.setup()


@pytest.fixture
def set_up_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on which the owner ran `sightline db setup`, as deployed."""
    for url in fresh_database():
        owner_setup(url)
        yield url


def _warehouse(backend: str, tmp_path: Path) -> Iterator[str]:
    """DuckDB: a new file (it sets itself up on first use). PostgreSQL: a fresh database set up by the owner,
    as in a deployment, since nothing but `sightline db setup` creates tables there."""
    if backend == "duckdb":
        yield f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        for url in fresh_database():
            owner_setup(url)
            yield url


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both backends, one test each."""
    yield from _warehouse(request.param, tmp_path)


@pytest.fixture(params=["duckdb", "postgres", pytest.param("timescaledb", marks=pytest.mark.timescaledb)])
def landing_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every landing path: DuckDB, partitioned PostgreSQL and (where available) the TimescaleDB hypertable."""
    if request.param == "timescaledb":
        yield request.getfixturevalue("timescale_url")
    else:
        yield from _warehouse(request.param, tmp_path)


@pytest.fixture(scope="session")
def streamable_site_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo site with `stream.max_lateness_days` of 10 years, for tests that stream the simulator's
    2025 days through `sightline stream` (the shipped 7 days would dead-letter them as too old)."""
    text = (REPO_ROOT / "site.yaml").read_text()
    lenient = text.replace("max_lateness_days: 7 ", "max_lateness_days: 3650 ")
    assert lenient != text, "site.yaml: stream.max_lateness_days not found"
    path = tmp_path_factory.mktemp("site") / "site.yaml"
    path.write_text(lenient)
    return path


@pytest.fixture(scope="session")
def workforce(tmp_path_factory: pytest.TempPathFactory):
    """Marts of the workforce days (tests/workforce_data.py) on DuckDB and PostgreSQL, built once per session
    for the workforce and report tests."""
    from workforce_data import make_workforce

    for pg in fresh_database("sightline_wf"):
        yield make_workforce(tmp_path_factory.mktemp("workforce"), pg)
