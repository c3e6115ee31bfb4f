"""Scale-out on Celery: camera-days of rendered video ingested by Dagster steps on two Celery workers, vs
the same runs with the in-process executor and vs one Celery worker.

    .venv/bin/python bench/scaleout.py [--minutes 4] [--cameras 4] [--broker pyamqp://guest@127.0.0.1:5672//]

The simulator renders `--minutes` of the demo site's cameras (one camera-day partition each, 640x360);
each camera-day is a run of `dagster asset materialize` (the ingestion assets, day x camera partition),
all launched at once as a backfill would. `SIGHTLINE_EXECUTOR` picks the executor: `in_process` (each
run's step in its own process, runs one after another), then `celery` with one worker and with two
(each one step at a time). Every configuration lands into its own fresh PostgreSQL database and the
landed rows must be equal; prints wall seconds and the speed-ups. The harness (workers, runs, which
worker took which step) is shared with tests/test_celery_scaleout.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from datetime import time as dtime
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from orchestration.executors import DEFAULT_BROKER, celery_queue, celery_worker_command  # noqa: E402

DAY = date(2025, 1, 15)
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def short_shift_site(folder: Path, minutes: int) -> Path:
    """site.yaml with a working day of `minutes` from 08:00 and no breaks: the rendered minutes are the
    whole working day, so the blocking quality checks (every working camera-hour has detections) hold."""
    import yaml

    doc = yaml.safe_load((REPO_ROOT / "site.yaml").read_text())
    end = dtime(8 + minutes // 60, minutes % 60)
    doc["schedule"].update(work_start="08:00", work_end=f"{end:%H:%M}", breaks=[], indices=1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def render(out: Path, cameras: list[str], site_path: Path) -> list[Path]:
    """The site's whole (short) working day for `cameras`, 1-minute segments at half resolution."""
    from ingestion.simulate.render import render_video
    from ingestion.site import load_site

    site = load_site(site_path)
    window = (site.schedule.work_start, site.schedule.work_end)
    result = render_video(site, out, day=DAY, window=window, cameras=cameras, scale=0.5, segment_seconds=60)
    return result.segments


def base_env(
    dagster_home: Path,
    warehouse_url: str,
    video: Path,
    executor: str,
    queue: str,
    storage_url: str,
    site_path: Path,
) -> dict[str, str]:
    """The environment of runs and workers alike: they must agree on all of it. The Dagster instance
    keeps runs and events in PostgreSQL (`storage_url`, an empty database), as deployed: concurrent runs
    and workers write there at once. Its tables are created here, once, before any run starts."""
    import dagster as dg

    dagster_home.mkdir(parents=True, exist_ok=True)
    # psycopg2, as the repository's dagster.yaml: SQLAlchemy 2.1 would pick psycopg 3 for postgresql://
    url = storage_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    (dagster_home / "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: {url}\n")
    with dg.DagsterInstance.from_config(str(dagster_home)):
        pass
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(dagster_home),
        PYTHONPATH=str(REPO_ROOT),
        SIGHTLINE_SITE=str(site_path),
        SIGHTLINE_WAREHOUSE_URL=warehouse_url,
        SIGHTLINE_SOURCE="segments",
        SIGHTLINE_SOURCE_PATH=str(video),
        SIGHTLINE_EXECUTOR=executor,
        SIGHTLINE_CELERY_QUEUE=queue,
    )
    return env


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path


@contextmanager
def celery_workers(names: list[str], env: Mapping[str, str], log_dir: Path) -> Iterator[list[Worker]]:
    """Start one Celery worker per name (one step at a time each), wait until all are ready, and stop
    them (their process group: the pool children too) on exit."""
    workers = []
    try:
        for name in names:
            log = log_dir / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    celery_worker_command(name, concurrency=1, queue=celery_queue(env)),
                    env=dict(env),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=REPO_ROOT,
                )
            workers.append(Worker(name, proc, log))
        deadline = time.monotonic() + 180
        for w in workers:
            while b" ready." not in w.log.read_bytes():
                if w.process.poll() is not None:
                    raise RuntimeError(f"celery worker {w.name} exited:\n{w.log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"celery worker {w.name} not ready after 180 s:\n{w.log.read_text()}")
                time.sleep(0.5)
        yield workers
    finally:
        for w in workers:
            if w.process.poll() is None:
                os.killpg(w.process.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(w.process.pid, signal.SIGKILL)
                w.process.wait()


def materialize(env: Mapping[str, str], select: str, partition: str, log: Path) -> subprocess.Popen:
    """One Dagster run of `select` for `partition`, as an operator (or a backfill) launches it."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [DAGSTER, "asset", "materialize", "-m", "orchestration.definitions", "--select", select,
             "--partition", partition],
            env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        )  # fmt: skip


def wait_all(procs: list[tuple[subprocess.Popen, Path]], timeout: float = 900) -> None:
    """Wait for every run; a run still going after `timeout` s (e.g. no worker on its queue) is killed."""
    deadline = time.monotonic() + timeout
    failed = []
    for proc, log in procs:
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "timeout"
        if rc != 0:
            failed.append(log)
    if failed:
        raise RuntimeError("runs failed:\n" + "\n".join(f"{p}:\n{p.read_text()[-4000:]}" for p in failed))


def ingest(env: Mapping[str, str], cameras: list[str], log_dir: Path, *, concurrent: bool) -> float:
    """Seconds to land every camera-day of DAY: one run per camera-day, all at once or one by one."""
    t0 = time.perf_counter()
    procs = []
    for camera in cameras:
        log = log_dir / f"ingest_{camera}_{uuid.uuid4().hex[:6]}.log"
        proc = materialize(env, "raw_detections,camera_health", f"{camera}|{DAY.isoformat()}", log)
        procs.append((proc, log))
        if not concurrent:
            wait_all(procs[-1:])
    wait_all(procs)
    return time.perf_counter() - t0


def build_marts(env: Mapping[str, str], log_dir: Path) -> float:
    t0 = time.perf_counter()
    log = log_dir / f"marts_{uuid.uuid4().hex[:6]}.log"
    wait_all([(materialize(env, "group:transforms", DAY.isoformat(), log), log)])
    return time.perf_counter() - t0


def celery_steps(dagster_home: Path) -> dict[str, str]:
    """step key @ run id -> the Celery worker (name@host) that executed it, from the Dagster event log."""
    import dagster as dg
    from dagster._core.events import DagsterEventType

    out = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT).records
            for record in records:
                event = record.event_log_entry.dagster_event
                metadata = event.engine_event_data.metadata if event and event.engine_event_data else {}
                if "Celery worker" in metadata:
                    out[f"{event.step_key}@{run.run_id}"] = metadata["Celery worker"].value
    return out


def table_rows(url: str, site_path: Path, tables: list[str]):
    """Every row of each table, sorted on all its columns (polars frames). Columns of measured processing
    latency (raw.camera_health latency_ms_*, and the marts that average them) are wall-clock timings of
    the pipeline itself, different in every run: they are left out."""
    from ingestion.site import load_site
    from ingestion.warehouse import connect

    out = {}
    with connect(url, load_site(site_path)) as wh:
        for table in tables:
            frame = wh.query(f"SELECT * FROM {table}")  # noqa: S608 - names from the model list
            frame = frame.select([c for c in frame.columns if "latency" not in c])
            out[table] = frame.sort(frame.columns) if frame.height else frame
    return out


def main() -> int:
    import tempfile

    import psycopg

    from ingestion.site import load_site
    from ingestion.warehouse import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=4, help="minutes of video per camera-day")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get(
            "SIGHTLINE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    broker = urlsplit(os.environ.get("SIGHTLINE_CELERY_BROKER") or DEFAULT_BROKER)
    try:
        socket.create_connection((broker.hostname or "127.0.0.1", broker.port or 5672), timeout=3).close()
    except OSError as exc:  # `make bench` runs every script: say why this one measured nothing
        print(f"skipped: no Celery broker at {broker.hostname}:{broker.port} ({exc}); start RabbitMQ "
              "or set SIGHTLINE_CELERY_BROKER")  # fmt: skip
        return 0
    with tempfile.TemporaryDirectory(prefix="sightline_scaleout_") as tmp_name:
        tmp = Path(tmp_name)
        site_path = short_shift_site(tmp, args.minutes)
        site = load_site(site_path)
        cameras = list(site.camera_ids)[: args.cameras]
        video = tmp / "video"
        t0 = time.perf_counter()
        segments = render(video, cameras, site_path)
        print(f"rendered {len(segments)} segments ({len(cameras)} camera-days x {args.minutes} min) "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        results: dict[str, float] = {}
        rows = {}
        configs = [("in_process", 0), ("celery", 1), ("celery", 2)]
        dbs = []
        try:
            for executor, n_workers in configs:
                label = executor if not n_workers else f"celery, {n_workers} worker{'s' * (n_workers > 1)}"
                db, storage_db = (f"sightline_scaleout_{uuid.uuid4().hex[:8]}" for _ in range(2))
                with psycopg.connect(args.pg_admin_url, autocommit=True) as admin:
                    for name in (db, storage_db):
                        admin.execute(f'CREATE DATABASE "{name}"')
                        dbs.append(name)
                server = args.pg_admin_url.rsplit("/", 1)[0]
                url = f"{server}/{db}"
                with connect(url, site) as wh:
                    wh.setup()
                run_dir = tmp / label.replace(" ", "_").replace(",", "")
                logs = run_dir / "logs"
                logs.mkdir(parents=True)
                queue = f"sightline_{uuid.uuid4().hex[:8]}"
                storage = f"{server}/{storage_db}"
                env = base_env(run_dir / "dagster_home", url, video, executor, queue, storage, site_path)
                names = [f"w{i + 1}_{uuid.uuid4().hex[:4]}" for i in range(n_workers)]
                with celery_workers(names, env, logs) if n_workers else _nothing():
                    results[label] = ingest(env, cameras, logs, concurrent=bool(n_workers))
                    print(f"{label}: ingested in {results[label]:.1f} s", flush=True)
                    if n_workers:
                        used = sorted(set(celery_steps(run_dir / "dagster_home").values()))
                        print(f"  steps ran on: {', '.join(used)}", flush=True)
                rows[label] = table_rows(url, site_path, ["raw.detections", "raw.camera_health"])
        finally:
            with psycopg.connect(args.pg_admin_url, autocommit=True) as admin:
                for db in dbs:
                    admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    reference = rows["in_process"]
    for label, tables in rows.items():
        for table, frame in tables.items():
            if not frame.equals(reference[table]):
                print(f"ROWS DIFFER: {label} {table} vs in_process", file=sys.stderr)
                return 1
    n = reference["raw.detections"].height
    print(f"\nrows landed: {n:,} detections, equal in every configuration\n")
    print(f"{'executor':<22}{'ingest s':>10}{'speed-up':>10}")
    base = results["in_process"]
    for label, seconds in results.items():
        print(f"{label:<22}{seconds:>10.1f}{base / seconds:>9.2f}x")
    one, two = results["celery, 1 worker"], results["celery, 2 workers"]
    print(f"\ncelery: 2 workers / 1 worker = {one / two:.2f}x (ideal 2x on 2 idle cores)")
    return 0


@contextmanager
def _nothing() -> Iterator[list]:
    yield []


if __name__ == "__main__":
    sys.exit(main())
