"""The analytics schema as a BI user meets it (issue 12), on DuckDB and on PostgreSQL as the read-only role.

One simulated morning of two cameras (07:00-10:30 local, so visits start before the 08:00 start of work)
is landed and built once per module on both backends. Expected values come from the site config and the
simulator's ground truth, never from the SQL under test.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from datetime import time as clock
from pathlib import Path

import polars as pl
import psycopg
import pytest
from conftest import create_database, drop_database
from test_transforms import land, read

from ingestion import transform
from ingestion.simulate import simulate
from ingestion.transform import DEFAULT_SETTINGS, build_marts
from ingestion.warehouse.roles import grant_bi

DAY = date(2025, 1, 15)  # a Wednesday
DOCS = Path(__file__).resolve().parent.parent / "docs" / "bi.md"
DIMENSIONS = {"analytics.zones", "analytics.cameras", "analytics.site", "analytics.index_blocks"}


def analytics_models() -> list[str]:
    """The project's analytics models (read when a test needs them: loading the project takes seconds)."""
    return [m for m in transform.MART_MODELS if m.startswith("analytics.")]


def fact_models() -> list[str]:
    return [m for m in analytics_models() if m not in DIMENSIONS and m != "analytics.dashboard"]


@pytest.fixture(scope="module")
def bi(site, tmp_path_factory):
    sim = simulate(
        site,
        start=DAY,
        days=1,
        cameras=["CAM01", "CAM02"],
        fps=1.0,
        noise="none",
        seed=7,
        window=(clock(7), clock(10, 30)),
    )
    duck = f"duckdb:///{tmp_path_factory.mktemp('bi') / 'warehouse.duckdb'}"
    pg = create_database("sightline_bi12")
    role, password = f"bi_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    try:
        land(duck, site, sim)
        land(pg, site, sim)
        built = {
            "duckdb": build_marts(duck, DAY, DAY + timedelta(days=1), site=site),
            "postgres": build_marts(pg, DAY, DAY + timedelta(days=1), site=site),
        }
        grant_bi(pg, role, password)
        bi_url = pg.replace("postgresql://postgres@", f"postgresql://{role}:{password}@")
        # Every read below goes through the BI role on PostgreSQL.
        yield {"sim": sim, "urls": {"duckdb": duck, "postgres": bi_url}, "owner": pg, "built": built}
    finally:
        drop_database(pg)
        with psycopg.connect(pg.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f'DROP OWNED BY "{role}"')
                conn.execute(f'DROP ROLE "{role}"')


BACKENDS = ["duckdb", "postgres"]


def _day_sessions(sim, site) -> pl.DataFrame:
    """Ground-truth sessions entering on the site-local DAY."""
    local = pl.col("entry_time").dt.convert_time_zone(site.timezone).dt.date()
    return sim.sessions.filter(local == DAY)


def _local(frame: pl.DataFrame, column: str, tz: str) -> pl.Series:
    """A UTC column as naive site-local wall-clock time, computed here (not by the SQL under test)."""
    return frame[column].dt.convert_time_zone(tz).dt.replace_time_zone(None).cast(pl.Datetime("us"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dimensions_are_the_site_config(bi, site, backend):
    url = bi["urls"][backend]
    zones = read(url, "SELECT * FROM analytics.zones ORDER BY zone_id")
    assert zones.select(
        "zone_id", "zone_name", "zone_type", "camera_id", "camera_name", "min_workers", "max_workers"
    ).rows() == [
        (z.id, z.name, z.type, z.camera, site.camera(z.camera).name, z.min_workers, z.max_workers)
        for z in sorted(site.zones, key=lambda z: z.id)
    ]
    cameras = read(url, "SELECT * FROM analytics.cameras ORDER BY camera_id")
    assert cameras.select("camera_id", "camera_name", "resolution", "fps", "zones").rows() == [
        (c.id, c.name, f"{c.width}x{c.height}", float(c.fps), len(site.zones_for(c.id)))
        for c in sorted(site.cameras, key=lambda c: c.id)
    ]
    assert "source" not in cameras.columns  # a source URL may carry credentials
    row = read(url, "SELECT * FROM analytics.site").row(0, named=True)
    assert (row["site_name"], row["timezone"]) == (site.name, site.timezone)
    # 08:00-17:00 with 15-minute breaks at 10:00 and 15:00 (site.yaml), Monday to Friday
    assert row["schedule_summary"] == f"Mon-Fri 08:00-10:00, 10:15-15:00, 15:15-17:00 ({site.timezone})"
    blocks = read(
        url, "SELECT * FROM analytics.index_blocks WHERE local_date = DATE '2025-01-15' ORDER BY index_number"
    )
    expected = site.index_timeline(DAY)
    assert blocks["index_number"].to_list() == [b.index_number for b in expected]
    assert blocks["scheduled_start"].to_list() == [b.scheduled_start for b in expected]
    assert blocks["scheduled_start_local"].to_list() == [
        b.scheduled_start.astimezone(site.tz).replace(tzinfo=None) for b in expected
    ]
    assert blocks["scheduled_start_local"][0].time() == clock(8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_fact_names_its_zone_and_camera_and_has_local_date(bi, site, backend):
    url = bi["urls"][backend]
    zone_names = {z.id: z.name for z in site.zones}
    camera_names = {c.id: c.name for c in site.cameras}
    for model in fact_models():
        frame = read(url, f"SELECT * FROM {model}")
        assert frame.height > 0, model
        assert "local_date" in frame.columns, model
        if "camera_id" in frame.columns:  # index_records is per block of the whole site
            assert "camera_name" in frame.columns, model
            pairs = set(frame.select("camera_id", "camera_name").unique().rows())
            assert pairs == {(c, camera_names[c]) for c, _ in pairs}, model
        if "zone_id" in frame.columns:
            assert "zone_name" in frame.columns, model
            pairs = set(frame.select("zone_id", "zone_name").unique().rows())
            assert pairs == {(z, zone_names[z] if z else None) for z, _ in pairs}, model
    anomalies = read(url, "SELECT zone_id, description FROM analytics.anomalies WHERE zone_id IS NOT NULL")
    assert anomalies.height > 0
    for zone_id, description in anomalies.rows():
        assert f"{zone_names[zone_id]} ({zone_id})" in description, description


@pytest.mark.parametrize("backend", BACKENDS)
def test_local_time_columns_are_the_site_wall_clock(bi, site, backend):
    url, tz = bi["urls"][backend], site.timezone
    sessions = read(
        url,
        "SELECT entry_time, exit_time, entry_time_local, exit_time_local, local_date FROM analytics.sessions",
    )
    assert (sessions["entry_time_local"] == _local(sessions, "entry_time", tz)).all()
    assert (sessions["exit_time_local"] == _local(sessions, "exit_time", tz)).all()
    assert (sessions["local_date"] == _local(sessions, "entry_time", tz).dt.date()).all()
    anomalies = read(url, "SELECT ts, ts_local, local_hour FROM analytics.anomalies")
    assert (anomalies["ts_local"] == _local(anomalies, "ts", tz)).all()
    assert (anomalies["local_hour"] == _local(anomalies, "ts", tz).dt.hour().cast(pl.Int32)).all()
    for model, column in (
        ("analytics.zone_occupancy_minutely", "minute_start"),
        ("analytics.zone_hourly", "hour_start"),
        ("analytics.camera_hourly", "hour_start"),
        ("analytics.heatmap_hourly", "hour_start"),
    ):
        frame = read(url, f"SELECT {column}, local_hour, local_date FROM {model}")
        local = _local(frame, column, tz)
        assert (frame["local_hour"] == local.dt.hour().cast(pl.Int32)).all(), model
        assert (frame["local_date"] == local.dt.date()).all(), model
        if not model.endswith("heatmap_hourly"):  # rows for every hour of the local day
            assert sorted(frame["local_hour"].unique().to_list()) == list(range(24)), model
            # 00:00-07:00 local is the previous day in UTC: a UTC "day" grouping would split the local day
            utc_day_differs = frame.filter(frame[column].dt.date() != frame["local_date"])
            assert sorted(utc_day_differs["local_hour"].unique().to_list()) == list(range(7)), model


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_grain_per_table_and_the_days_are_the_sums_of_their_hours(bi, site, backend):
    url = bi["urls"][backend]
    truth = _day_sessions(bi["sim"], site)
    zone_hourly = read(url, "SELECT * FROM analytics.zone_hourly")
    camera_hourly = read(url, "SELECT * FROM analytics.camera_hourly")
    daily_zone = read(url, "SELECT * FROM analytics.daily_zone_stats")
    daily_camera = read(url, "SELECT * FROM analytics.daily_camera_stats")
    assert zone_hourly.height == 24 * len(site.zones)
    assert zone_hourly.select("zone_id", "hour_start").n_unique() == zone_hourly.height
    assert camera_hourly.height == 24 * len(site.cameras)
    assert daily_zone.height == len(site.zones) and daily_camera.height == len(site.cameras)
    # sessions per zone: hourly sums = daily = the ground truth
    expected = dict(truth.group_by("zone_id").len().rows())
    hourly = dict(zone_hourly.group_by("zone_id").agg(pl.col("sessions").sum()).rows())
    daily = dict(daily_zone.select("zone_id", "sessions").rows())
    assert {z: n for z, n in hourly.items() if n} == expected == {z: n for z, n in daily.items() if n}
    by_camera = dict(truth.group_by("camera_id").len().rows())
    assert (
        {c: n for c, n in camera_hourly.group_by("camera_id").agg(pl.col("sessions").sum()).rows() if n}
        == by_camera
        == {c: n for c, n in daily_camera.select("camera_id", "sessions").rows() if n}
    )
    for column in ("occupied_seconds", "occupied_working_seconds", "person_seconds", "scheduled_seconds"):
        summed = dict(zone_hourly.group_by("zone_id").agg(pl.col(column).sum()).rows())
        for zone_id, value in daily_zone.select("zone_id", column).rows():
            assert value == pytest.approx(summed[zone_id], abs=1e-6), (column, zone_id)
    dwell = float(truth["duration_seconds"].sum())
    assert float(zone_hourly["total_dwell_seconds"].sum()) == pytest.approx(dwell, rel=1e-9)
    # The deprecated view: each grain is one of the four tables; summed unfiltered it counts 4x.
    compat = read(
        url,
        "SELECT grain, scope, SUM(sessions) AS n, COUNT(*) AS rows "
        "FROM analytics.performance_metrics GROUP BY grain, scope",
    )
    n = truth.height
    assert {(g, s): (total, rows) for g, s, total, rows in compat.rows()} == {
        ("hour", "zone"): (n, zone_hourly.height),
        ("hour", "camera"): (n, camera_hourly.height),
        ("day", "zone"): (n, daily_zone.height),
        ("day", "camera"): (n, daily_camera.height),
    }


def test_the_grains_are_declared_and_audited(bi):
    for built in bi["built"].values():
        audits = {(a.model, a.audit) for a in built.audits}
        assert all(a.passed for a in built.audits)
        for model in (
            "analytics.zone_hourly",
            "analytics.camera_hourly",
            "analytics.daily_zone_stats",
            "analytics.daily_camera_stats",
        ):
            assert (model, "unique_combination_of_columns") in audits, model


def test_json_columns_are_jsonb_on_postgres_and_group(bi):
    url = bi["urls"]["postgres"]
    types = read(
        url,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'analytics' AND column_name IN ('metadata', 'zone_metrics')",
    )
    assert sorted(types.rows()) == [
        ("anomalies", "metadata", "jsonb"),
        ("index_records", "zone_metrics", "jsonb"),
    ]
    with psycopg.connect(url) as conn:  # 'could not identify an equality operator for type json' with json
        grouped = conn.execute("SELECT metadata, COUNT(*) FROM analytics.anomalies GROUP BY 1").fetchall()
        assert grouped and all(isinstance(m, dict) for m, _ in grouped)
    duck = read(
        bi["urls"]["duckdb"],
        "SELECT data_type FROM information_schema.columns WHERE table_schema = "
        "'analytics' AND column_name IN ('metadata', 'zone_metrics')",
    )
    assert set(duck["data_type"]) == {"JSON"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_dashboard_critical_counts_only_critical(bi, backend):
    url = bi["urls"][backend]
    dash = read(url, "SELECT * FROM analytics.dashboard").row(0, named=True)
    by_severity = dict(
        read(
            url,
            "SELECT severity, COUNT(*) AS n FROM analytics.anomalies "
            f"WHERE local_date = DATE '{dash['local_date']}' GROUP BY severity",
        ).rows()
    )
    assert by_severity.get("error", 0) > 0  # zone overflows: the old view counted these as critical
    assert dash["critical_anomalies"] == by_severity.get("critical", 0)
    assert dash["error_anomalies"] == by_severity["error"]
    assert dash["anomalies"] == sum(by_severity.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_after_hours_presence_lasts_only_the_part_outside_working_time(bi, site, backend):
    url = bi["urls"][backend]
    got = read(
        url,
        "SELECT session_id, ts, ts_end, duration_seconds, metadata FROM analytics.anomalies "
        "WHERE anomaly_type = 'after_hours_presence'",
    )
    work = site.working_intervals(DAY)
    blocks = site.index_timeline(DAY)
    truth = _day_sessions(bi["sim"], site)
    expected = {}
    for s in truth.iter_rows(named=True):
        entry, leave = s["entry_time"], s["exit_time"]
        if any(b.scheduled_start <= entry < b.scheduled_end for b in blocks):
            continue  # starts inside working time: not after hours
        next_start = min((a for a, _ in work if a > entry), default=leave)
        expected[s["session_id"]] = (min(leave, next_start) - entry).total_seconds()
    got_seconds = dict(zip(got["session_id"], got["duration_seconds"], strict=True))
    assert expected and got_seconds == pytest.approx(expected, abs=1e-6)
    straddling = [
        sid
        for sid, secs in expected.items()
        if secs < truth.filter(pl.col("session_id") == sid)["duration_seconds"][0]
    ]
    assert straddling, "the fixture has visits that start before work and go on into it"
    for row in got.iter_rows(named=True):
        assert (row["ts_end"] - row["ts"]).total_seconds() == pytest.approx(row["duration_seconds"], abs=1e-6)


def _table_comments(url: str) -> dict[str, str | None]:
    if url.startswith("duckdb"):
        sql = (
            "SELECT view_name AS name, comment FROM duckdb_views() WHERE schema_name = 'analytics' "
            "UNION ALL SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'analytics'"
        )
    else:
        sql = (
            "SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS comment FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'analytics' "
            "AND c.relkind IN ('r', 'v', 'm', 'p')"
        )
    return dict(read(url, sql).rows())


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_analytics_relation_has_a_table_comment_bi_can_read(bi, backend):
    comments = _table_comments(bi["urls"][backend])
    # the marts, and whatever setup adds there (analytics.active_alerts over ops.alerts)
    assert set(comments) >= {m.split(".", 1)[1] for m in analytics_models()}
    assert {name for name, text in comments.items() if not text} == set()
    for name in ("zone_hourly", "camera_hourly", "daily_zone_stats", "daily_camera_stats"):
        assert comments[name].startswith("Grain: "), name
    assert comments["performance_metrics"].startswith("DEPRECATED")
    url = bi["urls"][backend]
    if url.startswith("duckdb"):
        sql = (
            "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'analytics' "
            "AND (comment IS NULL OR comment = '')"
        )
    else:
        sql = (
            "SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = 'analytics' AND COALESCE(col_description(c.oid, a.attnum), '') = ''"
        )
    assert read(url, sql).is_empty()


def doc_queries() -> list[tuple[str, str]]:
    """The numbered questions of docs/bi.md: (title, SQL)."""
    text = DOCS.read_text()
    found = re.findall(r"^### (\d+\. .+?)\n\n```sql\n(.+?)```", text, flags=re.M | re.S)
    return [(title, sql.strip()) for title, sql in found]


def test_docs_list_ten_questions():
    assert len(doc_queries()) == 10


@pytest.mark.parametrize("title,sql", doc_queries(), ids=[t.split(".")[0] for t, _ in doc_queries()])
def test_docs_question_runs_as_bi_on_both_backends(bi, title, sql):
    frames = {backend: read(url, sql) for backend, url in bi["urls"].items()}
    assert frames["duckdb"].height > 0, title
    assert frames["duckdb"].columns == frames["postgres"].columns
    assert frames["duckdb"].height == frames["postgres"].height


@pytest.mark.parametrize("backend", BACKENDS)
def test_threshold_is_a_plain_column_too(bi, site, backend):
    th = site.thresholds
    expected = {
        "excessive_idle": th.excessive_idle_seconds,
        "zone_overflow": th.overflow_seconds,
        "zone_empty": th.empty_seconds,
        "camera_down": DEFAULT_SETTINGS["camera_down_seconds"],
        "restricted_zone_entry": None,
        "after_hours_presence": None,
    }
    got = read(
        bi["urls"][backend], "SELECT DISTINCT anomaly_type, threshold_seconds FROM analytics.anomalies"
    )
    assert len(got) >= 3
    assert {t: v for t, v in got.rows()} == {t: expected[t] for t in got["anomaly_type"]}


def test_an_hour_that_does_not_add_up_to_its_day_fails_the_grain_audit(bi, site, tmp_path):
    """The audit day_is_the_sum_of_its_hours bites: one zone-hour's sessions changed behind SQLMesh's back."""
    import shutil

    import duckdb

    from ingestion.transform import duckdb_path

    copy = tmp_path / "warehouse.duckdb"  # SQLMesh names the catalog after the file
    shutil.copy(duckdb_path(bi["urls"]["duckdb"]), copy)
    with duckdb.connect(str(copy)) as conn:
        (table,) = conn.sql(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_name LIKE 'analytics__zone_hourly__%'"
        ).fetchone()
        conn.execute(
            f"UPDATE {table} SET sessions = sessions + 1 WHERE zone_id = 'Z01' "
            "AND hour_start = (SELECT MIN(hour_start) FROM {table})".replace("{table}", table)
        )
    result = build_marts(f"duckdb:///{copy}", DAY, DAY + timedelta(days=1), site=site)
    failed = {(a.model, a.audit) for a in result.audits if not a.passed}
    assert failed == {("analytics.daily_zone_stats", "day_is_the_sum_of_its_hours")}
