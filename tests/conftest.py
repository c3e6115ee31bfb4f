"""Shared fixtures: the demo site, and throwaway warehouses on DuckDB and the local PostgreSQL.

Each PostgreSQL fixture creates its own database and drops it afterwards, so tests (and parallel test
sessions) never see each other's rows. The server comes from PG* variables, default 127.0.0.1:5432 as
user postgres; set SIGHTLINE_TEST_PG_ADMIN_URL to use another.

Test tiers (markers registered in pyproject.toml): `postgres` (needs the PostgreSQL server), `mqtt` (starts
Mosquitto), `pipeline` (a whole pipeline: Dagster runs, video end to end, the CLI round trips). Tests using
the PostgreSQL or broker fixtures are marked here automatically; `make test-fast` runs the rest with
SIGHTLINE_TEST_NO_SERVERS=1, under which reaching for PostgreSQL or Mosquitto fails and names the marker
to add. SIGHTLINE_REQUIRE_TIMESCALEDB=1 (`.ci/run` sets it where the TimescaleDB cluster exists) turns the
skips of `timescaledb` tests into failures.
"""

from __future__ import annotations

import functools
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings

from ingestion.site import Site, load_site

REPO_ROOT = Path(__file__).resolve().parent.parent
NO_SERVERS = os.environ.get("SIGHTLINE_TEST_NO_SERVERS") == "1"
REQUIRE_TIMESCALEDB = os.environ.get("SIGHTLINE_REQUIRE_TIMESCALEDB") == "1"
# Fixtures that reach a server, and the marker a test using them gets.
SERVER_FIXTURES = {
    "postgres": {"pg_url", "set_up_pg_url", "timescale_url"},
    "mqtt": {"broker"},
}
SERVER_PARAMS = {"postgres": {"postgres", "timescaledb"}}
# Whole modules whose module-scoped fixtures build a pipeline (simulate, land, SQLMesh, checks) or create a
# PostgreSQL database themselves, where no fixture name gives it away.
MODULE_MARKERS = {
    "test_quality": ("pipeline",),
    "test_transforms": ("pipeline", "postgres"),
    "test_transforms_incremental": ("pipeline",),
    "test_video_e2e": ("pipeline",),
    "test_docs_offline": ("pipeline",),
    "test_column_types": ("pipeline", "postgres"),
    "test_roles": ("postgres",),
    "test_pg_binary": ("postgres",),  # connects to ADMIN_URL itself
    "test_bi": ("pipeline", "postgres"),  # builds the marts on both backends in a module fixture
}
# Single tests, by module and name prefix: video through the whole vision pipeline (rendering, decoding,
# subprocesses), CLI round trips, and tests that create a PostgreSQL database themselves.
TEST_MARKERS = {
    "test_video": {
        "test_video_lands_tracked_detections": ("pipeline",),
        "test_crash_mid_video": ("pipeline",),
        "test_truncated_segment": ("pipeline",),
        "test_cli_ingest_video": ("pipeline",),
    },
    "test_stream_video": {"test_video_stream_stops_cleanly": ("pipeline",)},
    "test_detectors": {"test_yolo_rows_land_through_the_video_pipeline": ("pipeline",)},
    "test_simulator_cli": {"test_simulate_command_lands_the_simulated_days": ("pipeline",)},
    # `dagster definitions validate` / `dg check defs` in a fresh clone: CLI processes loading the code.
    "test_dagster_home": {
        "test_definitions_validate_from_a_fresh_clone": ("pipeline",),
        "test_dg_check_defs_from_a_fresh_clone": ("pipeline",),
    },
    # Rendered video through `sightline ingest video`, then the marts built.
    "test_video_stationary": {
        "test_worker_standing_still_for_ten_minutes": ("pipeline",),
        "test_still_worker_across_segment_cuts": ("pipeline",),
    },
    # SQLMesh builds of a simulated day (the PostgreSQL variants are marked `postgres` by their fixtures).
    "test_linking": {
        "test_sessions_are_visits_of_visitors": ("pipeline",),
        "test_linking_off_gives_one_session_per_fragment": ("pipeline",),
        "test_restating_a_day_without_tracks_clears_its_links": ("pipeline",),
    },
    "test_warehouse": {"test_grant_bi_role_reads_analytics_only": ("postgres",)},
    "test_hostile_input": {"test_video_stream_on_duckdb": ("pipeline",)},
    "test_celery_scaleout": {"test_two_celery_workers": ("pipeline",)},  # RabbitMQ and Celery workers
    "test_alerts": {
        "test_live_rules_raise_clear_suppress": ("postgres", "pipeline"),
        "test_mqtt_channel_publishes": ("mqtt",),
        "test_batch_alerts_agree": ("postgres", "pipeline"),
        "test_an_anomaly_the_stream_raised_live": ("postgres", "pipeline"),
    },
}
ADMIN_URL = os.environ.get("SIGHTLINE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# A server with timescaledb preloaded (e.g. a second local cluster: see README, "TimescaleDB").
TIMESCALE_URL = os.environ.get(
    "SIGHTLINE_TEST_TIMESCALE_URL", "postgresql://postgres@127.0.0.1:5433/postgres"
)


# Property tests are reproducible (the same examples every run) and keep no example database in the checkout;
# Hypothesis' other caches (constants) go to the system temp folder, not .hypothesis/ in the checkout.
settings.register_profile("sightline", derandomize=True, database=None)
settings.load_profile("sightline")
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sightline-hypothesis")
)

# SQLMesh loads the project's models in a pool of forked processes, one per CPU, at every context (each
# build_marts, every Dagster marts run). Forking the test process, which holds polars, DuckDB and torch, costs
# more than it saves on a 2-core machine: measured 1.4-1.7 s of CPU per warm load in process against 1.9-4 s
# forked (more wall time still when the machine is busy). Read at import by sqlmesh.core.constants, so set
# before any test module imports SQLMesh; subprocesses (Dagster runs, Celery workers) inherit it.
os.environ.setdefault("MAX_FORK_WORKERS", "1")

# Where code writes by default relative to the working directory (the checkout, under pytest): tests write to
# a temporary folder instead (SQLMesh's cache, GX Data Docs, chart PNGs). Set on import, not in a fixture, so
# nothing that loads the SQLMesh project early can miss it. Test modules read ingestion.transform.MART_MODELS
# and TIME_COLUMNS inside tests, never at import: loading the project costs seconds of collection otherwise.
# Under pytest-xdist each worker (PYTEST_XDIST_WORKER: gw0, gw1, ...) has its own folders: the workers inherit
# the controlling process's environment, and two SQLMesh caches must not be written into one folder at once.
OUTPUT_ENV = ("SIGHTLINE_SQLMESH_CACHE_DIR", "SIGHTLINE_GX_DOCS_DIR", "SIGHTLINE_PLOTS_DIR")
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_OUTPUTS = tempfile.mkdtemp(prefix=f"sightline-test-outputs-{_WORKER}")
for _var in OUTPUT_ENV:
    if _WORKER:
        os.environ[_var] = os.path.join(_OUTPUTS, _var.lower())
    else:
        os.environ.setdefault(_var, os.path.join(_OUTPUTS, _var.lower()))


@pytest.fixture(scope="session")
def site() -> Site:
    return load_site(REPO_ROOT / "site.yaml")


def _admin(admin_url: str = ADMIN_URL) -> psycopg.Connection:
    if NO_SERVERS:
        pytest.fail(
            "this test needs PostgreSQL but is not marked `postgres` (SIGHTLINE_TEST_NO_SERVERS=1, "
            "the fast tier); add @pytest.mark.postgres",
            pytrace=False,
        )
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


# `make test` runs on pytest-xdist workers. Each test module is one unit of work (its tests on one worker, so
# its module-scoped fixtures are built once), and the modules that use one of these session fixtures (a day
# built on both backends, minutes of work) are one unit together, so it too is built once.
SHARED_SESSION_FIXTURES = {
    "clean_day_marts": ("tests/test_column_types.py", "tests/test_transforms.py"),
    "workforce": ("tests/test_report.py", "tests/test_workforce_marts.py"),
}
_UNIT_OF_MODULE = {m: fixture for fixture, modules in SHARED_SESSION_FIXTURES.items() for m in modules}


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's scheduling by module, with the modules of SHARED_SESSION_FIXTURES grouped. (Marking tests
    with xdist_group does not work with pytest 9: xdist 3.8 renames the node id, which pytest 9 ignores.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndSharedDays(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.partition("::")[0]
            return _UNIT_OF_MODULE.get(module, module)

    return ModulesAndSharedDays(config, log)


def _check_shared_session_fixtures(items: list[pytest.Item]) -> None:
    """A module that starts using a shared session fixture must be listed with it (else it is built twice)."""
    for item in items:
        module = item.nodeid.partition("::")[0]
        for fixture, modules in SHARED_SESSION_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and module not in modules:
                raise pytest.UsageError(
                    f"{item.nodeid} uses the session fixture {fixture!r}: add {module!r} to its modules in "
                    "SHARED_SESSION_FIXTURES (tests/conftest.py), so xdist runs them on one worker"
                )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the servers their fixtures reach, so the tiers cannot drift from the fixtures."""
    _check_shared_session_fixtures(items)
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = {str(v) for v in callspec.params.values()} if callspec else set()
        for marker, names in SERVER_FIXTURES.items():
            if fixtures & names or params & SERVER_PARAMS.get(marker, set()):
                item.add_marker(marker)
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        markers = list(MODULE_MARKERS.get(module, ()))
        for prefix, marks in TEST_MARKERS.get(module, {}).items():
            if item.name.startswith(prefix):
                markers += marks
        for marker in markers:
            item.add_marker(marker)


@pytest.fixture(autouse=True)
def _no_broker_in_the_fast_tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the fast tier a test that starts Mosquitto without the `mqtt` marker fails, naming the fix."""
    if NO_SERVERS and request.node.get_closest_marker("mqtt") is None:
        from ingestion.stream import broker

        def refuse(*args, **kwargs):
            pytest.fail(
                "this test starts Mosquitto but is not marked `mqtt` (SIGHTLINE_TEST_NO_SERVERS=1, "
                "the fast tier); add @pytest.mark.mqtt",
                pytrace=False,
            )

        monkeypatch.setattr(broker.PrivateMosquitto, "__enter__", refuse)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """With SIGHTLINE_REQUIRE_TIMESCALEDB=1 a skipped `timescaledb` test is a failure: CI where the
    TimescaleDB cluster exists must not pass by skipping its tests."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_TIMESCALEDB and report.skipped and item.get_closest_marker("timescaledb"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"SIGHTLINE_REQUIRE_TIMESCALEDB=1 but the TimescaleDB test skipped: {reason}"


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


@pytest.fixture(scope="session")
def clean_day_marts(site: Site, tmp_path_factory: pytest.TempPathFactory):
    """CAM01's whole day 2025-01-15, no noise, 1 fps (seed 11), landed and built on DuckDB and on
    PostgreSQL, once per session for the modules that only read it (test_transforms, test_column_types).
    Yields (simulation, duckdb url, postgresql url, {backend: TransformResult})."""
    from datetime import date

    from ingestion.simulate import simulate
    from ingestion.transform import build_marts
    from ingestion.warehouse import connect

    day = date(2025, 1, 15)
    sim = simulate(site, start=day, days=1, cameras=["CAM01"], fps=1.0, noise="none", seed=11)
    duck = f"duckdb:///{tmp_path_factory.mktemp('clean') / 'warehouse.duckdb'}"
    for pg in fresh_database():
        built = {}
        for backend, url in (("duckdb", duck), ("postgres", pg)):
            with connect(url, site) as wh:
                wh.setup()
                for camera_id, d, detections, health in sim.camera_days():
                    wh.replace_partition(camera_id, d, detections, source="simulator", camera_health=health)
            built[backend] = build_marts(url, day, date(2025, 1, 16), site=site)
        yield sim, duck, pg, built
