"""Scale-out on a real Celery broker: two worker processes take the steps of four camera-day runs of
rendered video, then the marts are built; both workers must have taken steps and every landed row and
mart row must equal the same partitions landed and built in one process (the test's own, without Dagster:
the in_process executor's runs are covered by tests/test_orchestration.py).

The broker is RabbitMQ at SIGHTLINE_TEST_CELERY_BROKER (default pyamqp://guest@127.0.0.1:5672//); the
test skips, saying why, when it is unreachable or dagster-celery is not installed (the `celery` extra).
Each run uses its own queue name, so concurrent sessions on the same broker never take each other's steps.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from polars.testing import assert_frame_equal

from bench.scaleout import (
    DAY,
    base_env,
    build_marts,
    celery_steps,
    celery_workers,
    ingest,
    render,
    short_shift_site,
    table_rows,
)
from ingestion import transform
from ingestion.site import load_site
from ingestion.warehouse import connect
from orchestration.resources import DetectionSourceResource
from orchestration.sqlmesh_models import load_mart_models
from tests.conftest import fresh_database, owner_setup

BROKER = os.environ.get("SIGHTLINE_TEST_CELERY_BROKER", "pyamqp://guest@127.0.0.1:5672//")
CAMERAS = ["CAM01", "CAM02", "CAM03", "CAM04"]


def broker_missing_reason() -> str | None:
    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        return "dagster-celery is not installed (pip install 'sightline[celery]')"
    parts = urlsplit(BROKER)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=3).close()
    except OSError as exc:
        return f"no Celery broker at {parts.hostname}:{parts.port} ({exc}); set SIGHTLINE_TEST_CELERY_BROKER"
    return None


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(broker_missing_reason() is not None, reason=str(broker_missing_reason()))
def test_two_celery_workers_take_the_steps_and_land_what_one_process_lands(tmp_path: Path):
    # One rendered minute per camera is the whole working day: enough for sessions, and a run of a few
    # seconds (what is tested is who ran the steps and what landed, not throughput: bench/scaleout.py).
    site_path = short_shift_site(tmp_path, minutes=1)
    video = tmp_path / "video"
    segments = render(video, CAMERAS, site_path)
    assert {p.parent.name for p in segments} == set(CAMERAS)
    marts = [m.table for m in load_mart_models(str(site_path)) if m.kind != "VIEW"]
    tables = ["raw.detections", "raw.camera_health", *marts]

    landed = {}
    for url, storage_url in zip(
        fresh_database("sightline_test_celery"), fresh_database("sightline_test_dagster"), strict=True
    ):
        owner_setup(url, site_path)
        home = tmp_path / "celery"
        logs = home / "logs"
        logs.mkdir(parents=True)
        queue = f"sightline_test_{uuid.uuid4().hex[:8]}"
        env = base_env(home / "dagster_home", url, video, "celery", queue, storage_url, site_path)
        env["SIGHTLINE_CELERY_BROKER"] = BROKER
        names = [f"w1_{uuid.uuid4().hex[:4]}", f"w2_{uuid.uuid4().hex[:4]}"]
        with celery_workers(names, env, logs) as workers:
            ingest(env, CAMERAS, logs, concurrent=True)
            build_marts(env, logs)
        took = celery_steps(home / "dagster_home")
        ingestion_steps = {k: v for k, v in took.items() if k.startswith("land_camera_day@")}
        # Four camera-day runs, each step executed by a worker; both workers took some.
        assert len(ingestion_steps) == len(CAMERAS), took
        assert {v.split("@")[0] for v in ingestion_steps.values()} == set(names), took
        assert {w.process.returncode for w in workers} <= {0, -15}  # stopped by us, not crashed
        landed["celery"] = table_rows(url, site_path, tables)

    # The reference: the same camera-days landed and built in this one process, by what the Dagster steps
    # call (the detection source's land, the SQLMesh resource's restating build), with no Dagster run.
    site = load_site(site_path)
    source = DetectionSourceResource(kind="segments", path=str(video))
    for url in fresh_database("sightline_test_one_process"):
        owner_setup(url, site_path)
        with connect(url, site) as wh:
            for camera in CAMERAS:
                source.land(wh, site, camera, DAY)
        transform.build_marts(url, DAY, DAY + timedelta(days=1), restate=True, site=site)
        landed["one_process"] = table_rows(url, site_path, tables)

    assert landed["one_process"]["raw.detections"]["camera_id"].unique().sort().to_list() == CAMERAS
    assert landed["one_process"]["analytics.sessions"].height > 0
    for table in tables:
        assert_frame_equal(landed["celery"][table], landed["one_process"][table], check_row_order=True)


def test_executor_comes_from_sightline_executor():
    import dagster as dg

    from orchestration.executors import executor_from_env

    assert executor_from_env({}) is None  # Dagster's default
    assert executor_from_env({"SIGHTLINE_EXECUTOR": "in_process"}) is dg.in_process_executor
    assert executor_from_env({"SIGHTLINE_EXECUTOR": "multiprocess"}) is dg.multiprocess_executor
    with pytest.raises(ValueError, match="SIGHTLINE_EXECUTOR='threads'.*in_process, multiprocess, celery"):
        executor_from_env({"SIGHTLINE_EXECUTOR": "threads"})


@pytest.mark.skipif(
    broker_missing_reason() is not None and "not installed" in str(broker_missing_reason()),
    reason="dagster-celery is not installed",
)
def test_celery_broker_credentials_stay_in_the_environment(monkeypatch):
    from orchestration.definitions import build_definitions
    from orchestration.executors import celery_executor_config

    secret = "amqp://sightline:s3cret@broker:5672//"
    env = {"SIGHTLINE_EXECUTOR": "celery", "SIGHTLINE_CELERY_BROKER": secret, "SIGHTLINE_CELERY_QUEUE": "q1"}
    config = celery_executor_config(env)
    assert config["broker"] == {"env": "SIGHTLINE_CELERY_BROKER"}  # resolved at run time, never stored
    assert secret not in repr(config)
    assert config["config_source"]["task_default_queue"] == "q1"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    job = build_definitions().resolve_job_def("ingestion_job")
    assert job.executor_def.name == "celery"
