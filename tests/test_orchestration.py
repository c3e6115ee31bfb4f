"""Dagster wiring, end to end on real DuckDB warehouses: definitions, a partition, backfills, restatement,
schedules and sensors. Simulated with no noise at 0.5 fps so every run is quick;
expected values come from the simulator (ground truth) or from an independent build, never literals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time as time_module
from datetime import date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml
from conftest import REPO_ROOT
from polars.testing import assert_frame_equal

from ingestion.simulate import simulate
from ingestion.site import load_site
from ingestion.warehouse import connect
from orchestration.definitions import build_definitions
from orchestration.jobs import INGESTION_JOB, MARTS_JOB, REFERENCE_JOB
from orchestration.partitions import day_camera_key
from orchestration.resources import DetectionSourceResource
from orchestration.sqlmesh_models import AuditCheck, MartModel, load_mart_models
from orchestration.translator import SightlineTranslator

FPS = 0.5  # whole days (quality checks want every working hour covered), sampled sparsely to stay quick
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
DAY = date(2025, 1, 15)
TRANSLATOR = SightlineTranslator()


@pytest.fixture(scope="module")
def site_file(tmp_path_factory) -> Path:
    """The demo site cut to two cameras (fewer partitions, same zones and schedule)."""
    doc = yaml.safe_load((REPO_ROOT / "site.yaml").read_text())
    keep = {"CAM01", "CAM02"}
    doc["cameras"] = [c for c in doc["cameras"] if c["id"] in keep]
    doc["zones"] = [z for z in doc["zones"] if z["camera"] in keep]
    path = tmp_path_factory.mktemp("site") / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def defs(site_file, tmp_path_factory) -> dg.Definitions:
    """One code location for the module; each test points SIGHTLINE_WAREHOUSE_URL (an EnvVar resolved at
    run time) at its own warehouse file."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIGHTLINE_WAREHOUSE_URL", f"duckdb:///{tmp_path_factory.mktemp('unused')}/never.duckdb")
        return build_definitions(
            site_path=site_file, detection_source=DetectionSourceResource(fps=FPS, noise="none")
        )


@pytest.fixture
def warehouse(monkeypatch, tmp_path) -> str:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    monkeypatch.setenv("SIGHTLINE_WAREHOUSE_URL", url)
    monkeypatch.setenv("SIGHTLINE_REPORTS_DIR", str(tmp_path / "reports"))
    return url


def in_memory_instance() -> dg.DagsterInstance:
    """A Dagster instance whose storage lives in memory, for runs executed in this process: the tests read
    what the runs did to the warehouse and their events; instance_for_test's SQLite files commit every event
    to disk (about 8 s of a marts run's 45 s, measured)."""
    return dg.DagsterInstance.ephemeral()


def run(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, partition=None, **kwargs):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=partition, run_config=kwargs.pop("run_config", QUIET), **kwargs
    )
    assert result.success
    return result


def truth(site, day: date, camera: str, seed: int = 0) -> pl.DataFrame:
    return simulate(site, start=day, cameras=[camera], fps=FPS, noise="none", seed=seed).sessions


def mart_tables(url: str, site_path: Path) -> dict[str, pl.DataFrame]:
    """Every materialised (non-view) mart, all rows, in a canonical order."""
    path = url.removeprefix("duckdb:///")
    out = {}
    with duckdb.connect(path, read_only=True) as con:
        for m in load_mart_models(str(site_path)):
            if m.kind == "VIEW":
                continue
            df = con.execute(f"SELECT * FROM {m.table}").pl()
            sortable = [c for c, t in df.schema.items() if not isinstance(t, pl.List | pl.Struct | pl.Array)]
            out[m.table] = df.sort(sortable)
    return out


def checks_of(result) -> list:
    return [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


# ------------------------------------------------------------------------------------------ definitions


def test_definitions_cover_every_sqlmesh_model_and_audit(defs, site_file):
    from ingestion.transform import sqlmesh_context

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    ctx = sqlmesh_context(None, load_site(site_file))
    models = {m.name: m for m in ctx.models.values() if not m.kind.is_external}
    assert models, "the SQLMesh project has no models"
    raw_assets = {dg.AssetKey("raw_detections"), dg.AssetKey("camera_health"), dg.AssetKey("site_reference")}
    check_keys = graph.asset_check_keys
    for name, model in models.items():
        key = dg.AssetKey(name.split("."))
        assert key in graph.get_all_asset_keys(), f"no Dagster asset for SQLMesh model {name}"
        node = graph.get(key)
        assert node.group_name == "transforms"
        upstream = set(node.parent_keys)
        for dep in model.depends_on:
            dep_name = ".".join(p.strip('"') for p in dep.split(".")[-2:])
            if dep_name in models:
                assert dg.AssetKey(dep_name.split(".")) in upstream, f"{name} should depend on {dep_name}"
            else:
                assert upstream & raw_assets, f"{name} reads {dep_name} but has no raw/ref asset upstream"
        audits = [
            c
            for c in check_keys
            if c.asset_key == key and graph.get_check_spec(c).metadata.get("sqlmesh/audit")
        ]
        assert len(audits) == len(model.audits_with_args), f"{name}: one asset check per SQLMesh audit"
        # BI's promise: yesterday's marts by 02:00 site time, evaluated by the daemon.
        policy = graph.get(key).freshness_policy
        assert (policy.deadline_cron, policy.timezone) == ("0 2 * * *", "Asia/Bangkok"), name
    ctx.close()
    # Quality (Great Expectations / reconciliation) checks are attached too, on raw and on the marts.
    assert any(c.asset_key == dg.AssetKey("raw_detections") for c in check_keys)
    assert any(c.asset_key == dg.AssetKey("camera_health") for c in check_keys)
    assert graph.get(dg.AssetKey("raw_detections")).group_name == "ingestion"
    marts = defs.resolve_job_def(MARTS_JOB)
    assert marts.partitions_def.timezone == "Asia/Bangkok"
    # A range backfill of the marts job (UI) is one SQLMesh run: every asset in it agrees on the policy.
    assert marts.backfill_policy == dg.BackfillPolicy.single_run()
    assert set(
        defs.resolve_job_def(INGESTION_JOB).partitions_def.partitions_defs[i].name for i in range(2)
    ) == {"day", "camera"}


def test_translator_maps_tables_dependencies_and_repeated_audits():
    """The one table -> asset mapping (assets, audit checks, quality checks and sensors ask it)."""
    t = TRANSLATOR
    assert t.asset_key("raw.detections") == dg.AssetKey("raw_detections")
    assert t.asset_key("raw.camera_health") == dg.AssetKey("camera_health")
    assert t.asset_key("raw.days_to_rebuild") == dg.AssetKey("raw_detections")  # written with detections
    assert t.asset_key("ref.zones") == dg.AssetKey("site_reference")
    assert t.asset_key("analytics.sessions") == dg.AssetKey(["analytics", "sessions"])
    visitors = dg.AssetKey(["analytics", "visitors"])
    assert t.dependency_key("analytics.visitors", {"analytics.visitors"}) == visitors
    with pytest.raises(ValueError, match="EXTERNAL model under raw"):
        t.dependency_key("staging.not_a_model", {"analytics.visitors"})

    def audit(name: str, *args: tuple[str, str]) -> AuditCheck:
        return AuditCheck(name, ", ".join(f"{k} := {v}" for k, v in args), True, args)

    model = MartModel(
        fqn='"db"."analytics"."m"',
        name="analytics.m",
        upstream=("analytics.visitors", "raw.detections"),
        kind="FULL",
        description=None,
        time_column=None,
        time_column_is_date=False,
        columns=("a",),
        column_descriptions=(),
        audits=(
            audit("accepted_range", ("column", "productivity"), ("min_v", "0")),
            audit("accepted_range", ("column", "utilization"), ("min_v", "0")),
            audit("accepted_range", ("column", "utilization"), ("max_v", "1")),
            audit("not_null", ("columns", "(a, b)")),
        ),
    )
    names = [key.name for key, _ in t.audit_checks(model)]
    assert names == [
        "accepted_range__productivity",
        "accepted_range__utilization",
        "accepted_range__utilization_2",
        "not_null",
    ]
    spec = t.asset_spec(model, {"analytics.m", "analytics.visitors"})
    assert spec.key == dg.AssetKey(["analytics", "m"]) and spec.group_name == "transforms"
    assert {d.asset_key for d in spec.deps} == {visitors, dg.AssetKey("raw_detections")}


# ------------------------------------------------------------------------------------- materialisation


@pytest.mark.pipeline
def test_partition_materialises_end_to_end(defs, warehouse, site_file):
    site = load_site(site_file)
    with in_memory_instance() as instance:
        run(defs, REFERENCE_JOB, instance)
        landed = run(defs, INGESTION_JOB, instance, day_camera_key(DAY, "CAM01"))
        marts = run(defs, MARTS_JOB, instance, DAY.isoformat())

    sim = simulate(site, start=DAY, cameras=["CAM01"], fps=FPS, noise="none")
    raw_meta = {m.asset_key: m.metadata for m in landed.asset_materializations_for_node("land_camera_day")}
    assert raw_meta[dg.AssetKey("raw_detections")]["dagster/row_count"].value == sim.detections.height
    assert raw_meta[dg.AssetKey("camera_health")]["dagster/row_count"].value == sim.camera_health.height

    mart_meta = {
        m.asset_key.to_user_string(): m for m in marts.asset_materializations_for_node("sqlmesh_marts")
    }
    assert set(mart_meta) == {
        TRANSLATOR.asset_key(m.name).to_user_string() for m in load_mart_models(str(site_file))
    }
    assert all(m.partition == DAY.isoformat() for m in mart_meta.values())
    with connect(warehouse, site) as wh:
        sessions = wh.query("SELECT zone_id, count(*) AS n FROM analytics.sessions GROUP BY zone_id")
    # No noise: the sessions the marts found are the simulator's ground truth, zone by zone.
    expected = sim.sessions.group_by("zone_id").agg(pl.len().cast(pl.Int64).alias("n"))
    assert_frame_equal(sessions.sort("zone_id"), expected.sort("zone_id"), check_dtypes=False)
    assert mart_meta["analytics/sessions"].metadata["dagster/row_count"].value == len(sim.sessions)
    for name, key in (
        ("analytics/zone_occupancy_minutely", "occupancy over the day"),
        ("analytics/heatmap_hourly", "heatmap"),
    ):
        picture = mart_meta[name].metadata[key].value
        assert picture.startswith("![") and "data:image/png;base64," in picture
        assert "preview" in mart_meta[name].metadata

    report = next(m for m in marts.asset_materializations_for_node("quality_report"))
    assert report.metadata["checks evaluated"].value > 0 and report.metadata["failed"].value == 0

    # The daily report follows the marts in the same run; its charts show inline in the metadata.
    daily = next(m for m in marts.asset_materializations_for_node("daily_report"))
    assert daily.partition == DAY.isoformat() and Path(daily.metadata["report"].value).is_file()
    assert daily.metadata["charts"].value.count("data:image/png;base64,") >= 3

    evaluations = checks_of(marts)
    audits = [e for e in evaluations if e.asset_key.path[0] == "analytics"]
    assert len(audits) >= sum(len(m.audits) for m in load_mart_models(str(site_file)))
    assert [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed] == []
    assert all(e.partition == DAY.isoformat() for e in audits)


@pytest.mark.pipeline
def test_backfill_equals_day_by_day_and_rematerialising_restates(
    defs, warehouse, site_file, tmp_path, monkeypatch
):
    site = load_site(site_file)
    # Tuesday..Thursday: the restated day has a built day on either side, and a range of three days is
    # already a backfill (each marts run is a whole SQLMesh build: more days only add minutes).
    days = [date(2025, 1, 14) + timedelta(days=i) for i in range(3)]
    with in_memory_instance() as instance:
        run(defs, REFERENCE_JOB, instance)
        for day in days:
            run(defs, INGESTION_JOB, instance, day_camera_key(day, "CAM01"))
    day_by_day_url = f"duckdb:///{tmp_path / 'day_by_day.duckdb'}"
    with duckdb.connect(warehouse.removeprefix("duckdb:///")) as con:
        con.execute("CHECKPOINT")  # everything in the file itself, none left in the write-ahead log
    shutil.copy(warehouse.removeprefix("duckdb:///"), day_by_day_url.removeprefix("duckdb:///"))

    # The backfill, as the UI or `dagster asset materialize --partition-range` runs it: one run, one range.
    with in_memory_instance() as instance:
        run(
            defs,
            MARTS_JOB,
            instance,
            tags={
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[-1].isoformat(),
            },
        )
    backfilled = mart_tables(warehouse, site_file)

    monkeypatch.setenv("SIGHTLINE_WAREHOUSE_URL", day_by_day_url)
    with in_memory_instance() as instance:
        for day in days:
            run(defs, MARTS_JOB, instance, day.isoformat())
        one_by_one = mart_tables(day_by_day_url, site_file)
        assert backfilled.keys() == one_by_one.keys()
        for table in backfilled:
            assert_frame_equal(
                backfilled[table], one_by_one[table], check_exact=False, rel_tol=1e-9, abs_tol=1e-9
            )
        assert one_by_one["analytics.sessions"].height == sum(truth(site, d, "CAM01").height for d in days)

        # Re-land Wednesday (the middle day) with other people (seed 7) and re-materialise it: exactly that
        # day changes.
        other = {
            "resources": {"detection_source": {"config": {"fps": FPS, "noise": "none", "seed": 7}}},
            **QUIET,
        }
        run(defs, INGESTION_JOB, instance, day_camera_key(days[1], "CAM01"), run_config=other)
        run(defs, MARTS_JOB, instance, days[1].isoformat())
        restated = mart_tables(day_by_day_url, site_file)

    def of_day(df: pl.DataFrame, day: date, keep: bool) -> pl.DataFrame:
        start, end = site.day_window(day)
        entry = pl.col("entry_time").dt.convert_time_zone("UTC")
        inside = (entry >= start) & (entry < end)
        return df.filter(inside if keep else ~inside)

    before, after = one_by_one["analytics.sessions"], restated["analytics.sessions"]
    assert_frame_equal(of_day(before, days[1], keep=False), of_day(after, days[1], keep=False))
    wednesday = of_day(after, days[1], keep=True)
    assert wednesday.height == truth(site, days[1], "CAM01", seed=7).height
    assert not of_day(before, days[1], keep=True).equals(wednesday)


# --------------------------------------------------------------------------------- schedules and sensors


def test_daily_schedule_requests_yesterday_for_every_camera(defs, site_file):
    site = load_site(site_file)
    at = datetime(2025, 1, 16, 0, 30, tzinfo=site.tz)
    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        data = defs.resolve_schedule_def("daily_ingestion").evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=at, repository_def=repo)
        )
        assert {r.partition_key for r in data.run_requests} == {
            day_camera_key(at.date() - timedelta(days=1), c) for c in site.camera_ids
        }
        hourly = defs.resolve_schedule_def("intraday_marts_refresh").evaluate_tick(
            dg.build_schedule_context(
                instance=instance, repository_def=repo, scheduled_execution_time=at.replace(hour=13, minute=5)
            )
        )
        assert [r.partition_key for r in hourly.run_requests] == [at.date().isoformat()]
    assert defs.resolve_schedule_def("daily_ingestion").execution_timezone == site.timezone


def test_marts_sensor_waits_for_every_camera_of_the_day(defs, site_file):
    site = load_site(site_file)
    sensor = defs.resolve_sensor_def("marts_when_day_complete")
    resources = {"site": defs.resources["site"]}
    with dg.instance_for_test() as instance:

        def landed(camera: str) -> None:
            instance.report_runless_asset_event(
                dg.AssetMaterialization("raw_detections", partition=str(day_camera_key(DAY, camera)))
            )

        def tick(cursor):
            data = sensor.evaluate_tick(
                dg.build_sensor_context(
                    instance=instance,
                    cursor=cursor,
                    repository_def=defs.get_repository_def(),
                    resources=resources,
                )
            )
            return [r.partition_key for r in data.run_requests], data.cursor

        landed("CAM01")
        requested, cursor = tick(None)
        assert requested == []  # CAM02 is still missing
        landed("CAM02")
        requested, cursor = tick(cursor)
        assert requested == [DAY.isoformat()] and len(site.camera_ids) == 2
        assert tick(cursor)[0] == []  # nothing new
        landed("CAM01")  # a camera-day re-landed: the day's marts are rebuilt...
        assert tick(cursor)[0] == [DAY.isoformat()]
        for model in load_mart_models(str(site_file)):  # ...unless they were already built after it
            key = TRANSLATOR.asset_key(model.name)
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=DAY.isoformat()))
        assert tick(cursor)[0] == []


@pytest.mark.pipeline
def test_warehouse_sensors_rebuild_late_days_and_follow_stream_watermarks(defs, warehouse, site_file):
    site = load_site(site_file)
    with connect(warehouse, site) as wh:
        wh.setup()
        for cam in site.camera_ids:  # the stream has landed past the end of the 16th for both cameras...
            sim = simulate(
                site, start=DAY + timedelta(days=2), cameras=[cam], fps=FPS, window=(time(8), time(8, 5))
            )
            wh.append_batch(
                f"stream:{cam}:17",
                sim.detections,
                source="stream",
                camera_id=cam,
                allowed_lateness=timedelta(minutes=5),
            )
        late = simulate(site, start=DAY, cameras=["CAM01"], fps=FPS, window=(time(9), time(9, 1)))
        # ...and then data of the 15th arrives, late: it lands and marks the 15th for rebuild.
        wh.append_batch(
            "stream:CAM01:late",
            late.detections,
            source="stream",
            camera_id="CAM01",
            allowed_lateness=timedelta(minutes=5),
        )
    resources = {"warehouse": defs.resources["warehouse"], "site": defs.resources["site"]}
    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources, repository_def=repo) as context:
            rebuild = defs.resolve_sensor_def("rebuild_late_days").evaluate_tick(context)
        assert [r.partition_key for r in rebuild.run_requests] == [DAY.isoformat()]
        with dg.build_sensor_context(instance=instance, resources=resources, repository_def=repo) as context:
            stream = defs.resolve_sensor_def("marts_when_stream_passes_day").evaluate_tick(context)
        requested = [r.partition_key for r in stream.run_requests]
        assert requested[-1] == (DAY + timedelta(days=1)).isoformat()  # the 17th is still open
        assert len(requested) == len(set(requested))


@pytest.mark.pipeline
def test_segment_sensor_launches_the_camera_day_of_new_recordings(defs, warehouse, tmp_path, monkeypatch):
    folder = tmp_path / "segments" / "CAM02"
    folder.mkdir(parents=True)
    segment = folder / "2025-01-15T08-00-00.mp4"
    segment.write_bytes(b"recorded")
    old = datetime.now().timestamp() - 3600
    os.utime(segment, (old, old))
    (folder / "2025-01-16T07-00-00.mp4").write_bytes(b"still being written")  # too fresh: not yet
    monkeypatch.setenv("SIGHTLINE_SEGMENTS_DIR", str(tmp_path / "segments"))
    sensor = defs.resolve_sensor_def("new_recorded_segments")
    # The folder the sensor watches is the detection source's segments_dir, here from the environment.
    source = DetectionSourceResource(fps=FPS, noise="none", segments_dir=dg.EnvVar("SIGHTLINE_SEGMENTS_DIR"))
    resources = {"detection_source": source, "site": defs.resources["site"]}
    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, repository_def=repo, resources=resources) as context:
            data = sensor.evaluate_tick(context)
        assert [r.partition_key for r in data.run_requests] == [day_camera_key(DAY, "CAM02")]
        job = defs.resolve_job_def(INGESTION_JOB)
        config = dg.validate_run_config(job, data.run_requests[0].run_config)
        assert config["resources"]["detection_source"]["config"]["kind"] == "segments"
        with dg.build_sensor_context(
            instance=instance, cursor=data.cursor, repository_def=repo, resources=resources
        ) as context:
            assert sensor.evaluate_tick(context).run_requests == []


# ------------------------------------------------------------------------------------ Dagster instances


def _step_intervals(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    starts, ends = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            ends[event.step_key] = entry.timestamp
    return [(starts[k], ends[k]) for k in starts]


def _blocked_runs(instance: dg.DagsterInstance, pool: str) -> set[str]:
    """Runs with a step waiting for a slot of `pool` (queued for it, not assigned one)."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    return {p.run_id for p in info.pending_steps if p.assigned_timestamp is None}


@pytest.mark.pipeline
def test_two_partitions_launched_together_share_duckdb_through_the_pool(site_file, tmp_path):
    """Two real runs (the multiprocess executor, as `dagster dev` launches them) land two camera-days of
    one DuckDB file: the `warehouse` pool (limit 1 in embedded mode) serialises their steps, so neither fails
    on DuckDB's single-writer lock. Timing-free: the test holds the pool's only slot until both runs are
    waiting on it, so they are in flight together whatever the machine's load, then lets them go."""
    from orchestration.assets.ingestion import WAREHOUSE_POOL
    from orchestration.embedded import ensure_home

    home = ensure_home(tmp_path / "dagster_home")
    holder = ("test-holder", "hold")  # (run id, step key) of the slot this test takes
    with dg.DagsterInstance.from_config(str(home)) as instance:  # create the SQLite storage once, as
        instance.get_runs()  # `dagster dev` does before it launches anything
        storage = instance.event_log_storage
        assert storage.supports_global_concurrency_limits
        storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)  # the pool as dagster.yaml sets it
        assert storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
        assert storage.claim_concurrency_slot(WAREHOUSE_POOL, *holder).is_claimed
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SIGHTLINE_SITE": str(site_file),
        "SIGHTLINE_WAREHOUSE_URL": url,
    }
    config = json.dumps({"resources": {"detection_source": {"config": {"fps": FPS, "noise": "none"}}}})
    dagster = str(Path(sys.executable).parent / "dagster")
    procs = [
        subprocess.Popen(
            [
                dagster,
                "asset",
                "materialize",
                "-m",
                "orchestration.definitions",
                "--select",
                "raw_detections,camera_health",
                "--partition",
                f"{cam}|{DAY}",
                "--config-json",
                config,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for cam in ("CAM01", "CAM02")
    ]
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # A deadline only against a hang (a run that never reaches the pool); nothing is timed.
            deadline = time_module.monotonic() + 900
            while len(_blocked_runs(instance, WAREHOUSE_POOL)) < 2:
                exited = [p for p in procs if p.poll() is not None]
                assert not exited, exited[0].communicate()[0][-3000:]
                assert time_module.monotonic() < deadline, "the two runs never both waited on the pool"
                time_module.sleep(0.5)
            # Both runs are in flight, each waiting for the warehouse: free the slot and let them compete.
            instance.event_log_storage.free_concurrency_slot_for_step(*holder)
        outputs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]

    instance = dg.DagsterInstance.from_config(str(home))
    runs = instance.get_runs()
    assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    first, second = (_step_intervals(instance, r.run_id) for r in runs)
    assert first and second
    # No two warehouse steps of different runs overlapped (each started after the other's ended).
    for a0, a1 in first:
        for b0, b1 in second:
            assert a1 <= b0 or b1 <= a0, f"steps overlapped: {(a0, a1)} and {(b0, b1)}"
    instance.dispose()
    site = load_site(site_file)
    with connect(url, site) as wh:
        landed = wh.query("SELECT camera_id, count(*) AS n FROM raw.detections GROUP BY camera_id ORDER BY 1")
    expected = [
        simulate(site, start=DAY, cameras=[c], fps=FPS, noise="none").detections.height
        for c in ("CAM01", "CAM02")
    ]
    assert landed["n"].to_list() == expected


@pytest.fixture
def pg_url(set_up_pg_url: str) -> str:
    """Deployed services run on a warehouse the owner set up (`sightline db setup`): they create no tables."""
    return set_up_pg_url


@pytest.mark.pipeline
def test_deployed_dagster_yaml_runs_a_partition_on_postgresql(defs, site_file, pg_url, tmp_path, monkeypatch):
    """deploy/dagster.yaml, as deployed: PostgreSQL storage from DAGSTER_PG_* variables, the run
    queue with per-camera limits, run retries; a partitioned run executes in it against a PostgreSQL
    warehouse."""
    import psycopg
    from conftest import create_database, drop_database
    from psycopg.conninfo import conninfo_to_dict

    storage_url = create_database("sightline_dagster")
    try:
        home = tmp_path / "home"
        home.mkdir()
        shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
        parts = conninfo_to_dict(storage_url)
        for var, value in (
            ("HOST", parts["host"]),
            ("PORT", parts.get("port", "5432")),
            ("DB", parts["dbname"]),
            ("USER", parts["user"]),
            ("PASSWORD", parts.get("password", "")),
        ):
            monkeypatch.setenv(f"DAGSTER_PG_{var}", str(value))
        monkeypatch.setenv("SIGHTLINE_WAREHOUSE_URL", pg_url)
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
            assert {
                "key": "dagster/partition/camera",
                "value": {"applyLimitPerUniqueValue": True},
                "limit": 1,
            } in limits
            assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
            assert not instance.telemetry_enabled

            key = day_camera_key(DAY, "CAM02")
            result = run(defs, INGESTION_JOB, instance, key)
            record = instance.get_run_record_by_id(result.run_id)
            assert record.dagster_run.tags["dagster/partition/camera"] == "CAM02"
            assert str(key) in instance.get_materialized_partitions(dg.AssetKey("raw_detections"))
        finally:
            instance.dispose()
        with psycopg.connect(storage_url) as con:  # the run really is in PostgreSQL
            assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        site = load_site(site_file)
        with connect(pg_url, site) as wh:
            rows = wh.query("SELECT count(*) AS n FROM raw.detections")["n"][0]
        assert rows == simulate(site, start=DAY, cameras=["CAM02"], fps=FPS, noise="none").detections.height
    finally:
        drop_database(storage_url)
