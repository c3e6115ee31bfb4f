"""Quality checks on real warehouses: clean simulated days pass every check; each injected fault fails
exactly the check meant to catch it (the others stay green), with counts computed from the injection. A
mart's row-level rules are SQLMesh audits beside the model (the GX suites keep raw tables, coverage and
freshness), so a corrupted mart row fails exactly its audit and no GX check.

One module-scoped DuckDB warehouse is simulated, landed and built once (one clean day, two cameras, low
fps); each injection test works on its own copy of that file. The silent camera comes from the
simulator's outage knob: CAM01's day is landed again with two working hours of outage, as a camera that
went dark would arrive, before any mart is rebuilt from it. PostgreSQL gets one clean pass and one
injection.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import replace
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from ingestion.simulate import NOISE_PRESETS, simulate
from ingestion.site import Site
from ingestion.transform import build_marts
from ingestion.warehouse import connect
from quality import CHECKS, CheckResult, docs_index, run_checks
from quality.runner import cameras_of_day

DAY = date(2025, 1, 15)  # a Wednesday
CAMERAS = ["CAM01", "CAM02"]
OUTAGE_CAMERA = "CAM01"
OUTAGE = (time(13), time(15))  # local; covers the 13:00 and 14:00 working hours completely
FPS = 0.5


def land_day(url: str, site: Site, day: date, noise, cameras: list[str] = CAMERAS) -> None:
    sim = simulate(site, start=day, days=1, cameras=cameras, fps=FPS, noise=noise, seed=7)
    with connect(url, site) as wh:
        wh.setup()
        for camera_id, d, detections, health in sim.camera_days():
            wh.replace_partition(camera_id, d, detections, source="simulator", camera_health=health)


@pytest.fixture(scope="module")
def built_duckdb(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Path:
    path = tmp_path_factory.mktemp("quality") / "built.duckdb"
    url = f"duckdb:///{path}"
    land_day(url, site, DAY, "realistic")
    build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
    return path


@pytest.fixture
def duck_url(built_duckdb: Path, tmp_path: Path) -> str:
    """A private copy of the built warehouse, free to corrupt (same file name: SQLMesh's views name the
    DuckDB catalog, which is the file's stem)."""
    copy = tmp_path / built_duckdb.name
    shutil.copy(built_duckdb, copy)
    return f"duckdb:///{copy}"


def failed(results: list[CheckResult]) -> dict[tuple[str, str], CheckResult]:
    return {(r.name, r.partition): r for r in results if not r.passed}


def physical_table(wh, view: str) -> str:
    """The table behind a SQLMesh view (analytics.x reads sqlmesh__analytics.analytics__x__<version>)."""
    schema, name = view.split(".")
    if wh.backend == "duckdb":
        sql = wh.query(
            "SELECT sql FROM duckdb_views() WHERE schema_name = {p} AND view_name = {p}", [schema, name]
        )["sql"][0]
    else:
        sql = wh.query("SELECT pg_get_viewdef(CAST({p} AS regclass)) AS sql", [view])["sql"][0]
    return re.search(r"FROM\s+([\w.\"]+)", sql).group(1)


def execute(wh, sql: str, params: list | None = None) -> None:
    """Test-only corruption of the warehouse, through the backend's own statement primitive."""
    wh._execute(sql.replace("{p}", wh.placeholder), params)


# ------------------------------------------------------------------------------------------------ clean


def test_clean_day_passes_every_check_and_builds_data_docs(duck_url: str, site: Site, tmp_path: Path):
    docs = tmp_path / "gx_docs"
    results = run_checks(duck_url, DAY, site, docs=docs)

    assert failed(results) == {}
    # Every check ran: the raw ones once per camera that landed, the mart ones once for the day.
    expected = {(c.name, f"{cam}|{DAY}") for c in CHECKS if c.per_camera for cam in CAMERAS}
    expected |= {(c.name, DAY.isoformat()) for c in CHECKS if not c.per_camera}
    assert {(r.name, r.partition) for r in results} == expected
    assert docs_index(docs).is_file()
    gx_results = [r for r in results if r.observed.get("expectations")]
    assert gx_results and all(
        r.docs_url and Path(r.docs_url.removeprefix("file://")).is_file() for r in gx_results
    )
    # The ledger reconciliation saw every landed row.
    with connect(duck_url, site) as wh:
        landed = wh.query(
            "SELECT camera_id, count(*) AS n FROM raw.detections WHERE ts >= {p} AND ts < {p} "
            "GROUP BY camera_id",
            list(site.day_window(DAY)),
        )
    by_cam = dict(zip(landed["camera_id"].to_list(), landed["n"].to_list(), strict=True))
    for r in results:
        if r.name == "ledger_row_counts":
            assert r.observed["rows_found"] == by_cam[r.partition.split("|")[0]] == r.observed["ledger_rows"]


def test_loading_quality_and_dagster_definitions_does_not_import_great_expectations():
    import subprocess

    code = (
        "import sys, quality, orchestration.checks, orchestration.definitions as d; d.build_definitions(); "
        "print('great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


# ------------------------------------------------------------------------------------------- injections


def inject_duplicates(url: str, site: Site, camera_id: str) -> int:
    """A replay that bypassed the landing layer's dedup: one minute of a camera's rows landed again under a
    new batch id, with its own (correct) ledger row. Returns how many rows were duplicated."""
    start, _ = site.day_window(DAY)
    window = [start + timedelta(hours=9, minutes=30), start + timedelta(hours=9, minutes=31)]  # 09:30 local
    batch = f"replay:{camera_id}"
    with connect(url, site) as wh:
        n = int(
            wh.query(
                "SELECT count(*) AS n FROM raw.detections WHERE camera_id = {p} AND ts >= {p} AND ts < {p}",
                [camera_id, *window],
            )["n"][0]
        )
        execute(
            wh,
            "INSERT INTO raw.detections SELECT ts, camera_id, frame_idx, track_id, class_id, confidence, "
            "x, y, w, h, zone_id, motion_score, worker_id, {p} FROM raw.detections "
            "WHERE camera_id = {p} AND ts >= {p} AND ts < {p}",
            [batch, camera_id, *window],
        )
        execute(
            wh,
            "INSERT INTO raw.ingest_batches VALUES ({p}, 'replay', {p}, {p}, {p}, {p}, 0, 0, "
            "'committed', current_timestamp)",
            [batch, camera_id, *window, n],
        )
    assert n > 0
    return n


def test_duplicate_detections_fail_only_the_grain_check(duck_url: str, site: Site):
    n = inject_duplicates(duck_url, site, "CAM02")

    bad = failed(run_checks(duck_url, DAY, site, build_docs=False))

    assert set(bad) == {("detections_grain", f"CAM02|{DAY}")}
    result = bad[("detections_grain", f"CAM02|{DAY}")]
    assert result.unexpected_count == 2 * n  # every copy and its original share a key
    assert result.offending_rows and all(r["camera_id"] == "CAM02" for r in result.offending_rows)
    assert result.blocking


def failed_audits(url: str, site: Site) -> dict[tuple[str, str], int]:
    """The failing audits of every mart over DAY: (model, audit) -> rows the audit returned."""
    from ingestion.transform import _run_audits, sqlmesh_context, utc_range

    ctx = sqlmesh_context(url, site)
    try:
        outcomes = _run_audits(ctx, *utc_range(site, DAY, DAY + timedelta(days=1)))
    finally:
        ctx.close()
    assert outcomes
    return {(o.model, o.audit): o.failures for o in outcomes if not o.passed}


def test_session_with_exit_before_entry_fails_only_its_audit(duck_url: str, site: Site):
    with connect(duck_url, site) as wh:
        table = physical_table(wh, "analytics.sessions")
        columns = wh.query("SELECT * FROM analytics.sessions LIMIT 0").columns
        swapped = {
            "session_id": "'injected-exit-before-entry'",
            "visitor_id": "-1",  # a visitor of its own: no overlap with the visit it was copied from
            "entry_time": "exit_time",
            "exit_time": "entry_time",
            "duration_seconds": "0",
            "total_active_seconds": "0",
            "total_idle_seconds": "0",
        }
        select = ", ".join(swapped.get(c, c) for c in columns)
        execute(
            wh,
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} FROM analytics.sessions "
            "WHERE local_date = {p} AND duration_seconds > 10 ORDER BY session_id LIMIT 1",
            [DAY],
        )

    # The row breaks the sessions' own rule; and its zone-day no longer reconciles with the sessions (one
    # session more than daily_zone_stats counted), which the daily stats' audit reports.
    assert failed_audits(duck_url, site) == {
        ("analytics.sessions", "session_times_consistent"): 1,
        ("analytics.daily_zone_stats", "daily_dwell_matches_sessions"): 1,
    }
    assert failed(run_checks(duck_url, DAY, site, build_docs=False)) == {}


def test_productivity_above_one_fails_only_its_audits(duck_url: str, site: Site):
    with connect(duck_url, site) as wh:
        execute(
            wh,
            f"UPDATE {physical_table(wh, 'analytics.index_records')} SET productivity_score = 1.25 "
            "WHERE date = {p} AND index_number = 4",
            [DAY],
        )

    # Out of 0..1, and no longer active / (active + idle): one row for each rule.
    assert failed_audits(duck_url, site) == {
        ("analytics.index_records", "accepted_range"): 1,
        ("analytics.index_records", "forall"): 1,
    }
    assert failed(run_checks(duck_url, DAY, site, build_docs=False)) == {}


def test_camera_silent_for_two_working_hours_fails_only_camera_activity(duck_url: str, site: Site):
    outage = replace(NOISE_PRESETS["realistic"], outages=(OUTAGE,), outage_cameras=(OUTAGE_CAMERA,))
    land_day(duck_url, site, DAY, outage, cameras=[OUTAGE_CAMERA])

    bad = failed(run_checks(duck_url, DAY, site, build_docs=False))

    assert set(bad) == {("camera_activity", f"{OUTAGE_CAMERA}|{DAY}")}
    result = bad[("camera_activity", f"{OUTAGE_CAMERA}|{DAY}")]
    silent = [row["hour_local"] for row in result.offending_rows]
    assert silent == ["13:00", "14:00"] and result.unexpected_count == 2
    # camera_health tells a dead camera from a blind detector: no frames were read in those hours.
    assert all(not row["frames_read"] for row in result.offending_rows)


def test_health_processing_more_frames_than_read_fails_only_the_health_values_check(
    duck_url: str, site: Site
):
    start, _ = site.day_window(DAY)
    window = [start + timedelta(hours=11), start + timedelta(hours=11, minutes=1)]
    with connect(duck_url, site) as wh:
        execute(
            wh,
            "UPDATE raw.camera_health SET frames_processed = frames_read + 3 "
            "WHERE camera_id = {p} AND window_start >= {p} AND window_start < {p}",
            ["CAM02", *window],
        )

    bad = failed(run_checks(duck_url, DAY, site, build_docs=False))

    assert set(bad) == {("camera_health_values", f"CAM02|{DAY}")}
    result = bad[("camera_health_values", f"CAM02|{DAY}")]
    # Six 10 s windows in the minute, each 3 frames over.
    assert result.unexpected_count == 6
    assert any("unaccounted_frames" in line for line in result.failed_expectations)
    assert {row["unaccounted_frames"] for row in result.offending_rows} == {3}


def delete_rows(url: str, site: Site, camera_id: str, window: list) -> int:
    """Delete a camera's rows in `window` behind the ledger's back; returns how many went."""
    with connect(url, site) as wh:
        params = [camera_id, *window]
        n = int(
            wh.query(
                "SELECT count(*) AS n FROM raw.detections WHERE camera_id = {p} AND ts >= {p} AND ts < {p}",
                params,
            )["n"][0]
        )
        execute(wh, "DELETE FROM raw.detections WHERE camera_id = {p} AND ts >= {p} AND ts < {p}", params)
    assert n > 0
    return n


def test_ledger_batch_with_deleted_rows_fails_only_the_ledger_check(duck_url: str, site: Site):
    start, _ = site.day_window(DAY)
    deleted = delete_rows(
        duck_url,
        site,
        "CAM01",
        [start + timedelta(hours=9, minutes=30), start + timedelta(hours=9, minutes=31)],
    )

    bad = failed(run_checks(duck_url, DAY, site, build_docs=False))

    assert set(bad) == {("ledger_row_counts", f"CAM01|{DAY}")}
    (row,) = bad[("ledger_row_counts", f"CAM01|{DAY}")].offending_rows
    assert row["batch_id"] == f"simulator:CAM01:{DAY}" and row["missing"] == deleted


def test_cli_prints_the_table_and_exits_non_zero_on_failure(duck_url: str, site: Site, capsys):
    from orchestration.cli import main

    args = ["check", "--date", DAY.isoformat(), "--warehouse", duck_url, "--camera", "CAM02", "--no-docs"]
    assert main(args) == 0
    clean = capsys.readouterr().out
    assert f"0 failed (critical), 0 failed (warn) of {len(CHECKS)} checks" in clean

    start, _ = site.day_window(DAY)
    delete_rows(
        duck_url, site, "CAM02", [start + timedelta(hours=11), start + timedelta(hours=11, seconds=30)]
    )
    assert main(args) == 1
    out = capsys.readouterr().out
    assert re.search(rf"FAIL\s+ledger_row_counts\s+raw.detections\s+CAM02\|{DAY}\s+1\b", out)
    assert f"1 failed (critical), 0 failed (warn) of {len(CHECKS)} checks" in out


# -------------------------------------------------------------------------------------------- dagster


def test_failed_blocking_check_in_dagster_blocks_the_days_marts(
    duck_url: str, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import dagster as dg

    from orchestration.checks import raw_blocking_failures
    from orchestration.definitions import build_definitions
    from orchestration.partitions import day_camera_key

    monkeypatch.setenv("SIGHTLINE_GX_DOCS_DIR", str(tmp_path / "gx_docs"))
    inject_duplicates(duck_url, site, "CAM02")
    # The checks alone, as "Execute checks" on a partition in the UI does (a check-only job takes the
    # partition from the run's tag: Dagster gives such a job no PartitionsDefinition of its own).
    checks_job = dg.define_asset_job(
        "raw_quality_checks", selection=dg.AssetSelection.checks_for_assets("raw_detections")
    )
    defs = dg.Definitions.merge(build_definitions(warehouse_url=duck_url), dg.Definitions(jobs=[checks_job]))
    instance = dg.DagsterInstance.ephemeral()

    runs = {
        cam: defs.resolve_job_def("raw_quality_checks").execute_in_process(
            tags={"dagster/partition": str(day_camera_key(DAY, cam))}, instance=instance, raise_on_error=False
        )
        for cam in CAMERAS
    }

    assert runs["CAM01"].success and not runs["CAM02"].success  # the failed blocking check fails its step
    evaluations = {e.check_name: e for e in runs["CAM02"].get_asset_check_evaluations()}
    assert {name for name, e in evaluations.items() if not e.passed} == {"detections_grain"}
    grain = evaluations["detections_grain"]
    assert (
        grain.blocking and grain.severity == dg.AssetCheckSeverity.ERROR and grain.partition == f"CAM02|{DAY}"
    )
    assert {"failed expectations", "offending rows", "unexpected count", "data docs"} <= set(grain.metadata)
    assert Path(grain.metadata["data docs"].value.removeprefix("file://")).is_file()
    assert raw_blocking_failures(instance, site, [DAY]) == [f"detections_grain failed on CAM02|{DAY}"]

    # The day's marts do not build while a blocking raw check of that day is failing.
    marts = defs.resolve_job_def("marts_job").execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, raise_on_error=False
    )
    assert not marts.success
    assert not marts.get_asset_materialization_events()
    (failure,) = marts.get_step_failure_events()
    assert f"detections_grain failed on CAM02|{DAY}" in str(failure.step_failure_data.error)


# ------------------------------------------------------------------------------------------- postgres


def test_postgres_clean_day_passes_and_deleted_batch_rows_fail_the_ledger_check(pg_url: str, site: Site):
    land_day(pg_url, site, DAY, "realistic", cameras=["CAM02"])
    build_marts(pg_url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
    assert failed(run_checks(pg_url, DAY, site, build_docs=False)) == {}

    start, _ = site.day_window(DAY)
    with connect(pg_url, site) as wh:
        assert cameras_of_day(wh, site, DAY) == ["CAM02"]
    deleted = delete_rows(
        pg_url, site, "CAM02", [start + timedelta(hours=9), start + timedelta(hours=9, seconds=20)]
    )

    bad = failed(run_checks(pg_url, DAY, site, build_docs=False))
    assert set(bad) == {("ledger_row_counts", f"CAM02|{DAY}")}
    assert bad[("ledger_row_counts", f"CAM02|{DAY}")].offending_rows[0]["missing"] == deleted
