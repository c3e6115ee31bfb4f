"""Least privilege on PostgreSQL (and the TimescaleDB hypertable path where a server has it), for real.

The owner runs `sightline db setup`, `grant-writer` and `grant-bi`; then everything else happens as the
writer role: a simulated camera-day replaced, a detection log appended, a live MQTT-style stream landed
(its days' partitions created on demand), the SQLMesh marts built. The BI role then reads what the writer
built, and nothing detection-level. Expected counts come from the frames the test lands.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import polars as pl
import psycopg
import pytest
from conftest import ADMIN_URL, TIMESCALE_URL, create_database, drop_database, timescale_missing_reason

from ingestion import transform
from ingestion.simulate import simulate
from ingestion.stream.encode import encode_frames
from ingestion.stream.landing import StreamLander
from ingestion.transform import build_marts
from ingestion.warehouse import connect, ddl
from ingestion.warehouse.base import SIMULATOR_SOURCE, WarehouseNotSetUp
from ingestion.warehouse.roles import grant_bi, grant_writer
from orchestration.cli import main

DAY = date(2025, 1, 15)  # a Wednesday
# Columns only a per-frame detection row has: no aggregate or session carries them.
PER_FRAME_COLUMNS = {"frame_idx", "x", "y", "w", "h", "confidence", "motion_score", "batch_id", "class_id"}
IDENTITY_COLUMNS = {"track_id", "worker_id", "visitor_id"}


def as_role(url: str, role: str, password: str) -> str:
    return f"postgresql://{role}:{password}@{url.split('@', 1)[1]}"


@pytest.fixture(
    scope="module", params=["postgres", pytest.param("timescaledb", marks=pytest.mark.timescaledb)]
)
def deployed(request, site):
    """A warehouse set up by the owner, landed and built by the writer; roles dropped afterwards."""
    if request.param == "timescaledb" and timescale_missing_reason():
        pytest.skip(timescale_missing_reason())
    admin = TIMESCALE_URL if request.param == "timescaledb" else ADMIN_URL
    url = create_database("sightline_roles", admin)
    suffix = uuid.uuid4().hex[:8]
    writer, bi = f"writer_{suffix}", f"bi_{suffix}"
    writer_pw, bi_pw = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        # The owner: DDL, then the roles (BI first, so the writer's future views are granted to it).
        assert main(["db", "setup", "--warehouse", url]) == 0
        grant_bi(url, bi, bi_pw, writer_role=writer)
        grant_writer(url, writer, writer_pw, bi_role=bi)
        writer_url = as_role(url, writer, writer_pw)

        sim = simulate(
            site,
            start=DAY,
            cameras=["CAM01", "CAM02", "CAM03"],
            fps=1.0,
            noise="none",
            seed=3,
            window=(clock(8), clock(10)),
        )
        parts = {cam: (det, health) for cam, _, det, health in sim.camera_days()}
        # The stream lands "now": CAM03's rows moved to the last hours, so any bound on accepted
        # timestamps holds, and today's partition is created on demand by the writer.
        shift = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3) - parts["CAM03"][0]["ts"].min()
        streamed = parts["CAM03"][0].with_columns(pl.col("ts") + shift)
        with connect(writer_url, site) as wh:
            wh.require_setup()
            wh.load_reference()
            det, health = parts["CAM01"]
            simulated = wh.replace_partition("CAM01", DAY, det, source=SIMULATOR_SOURCE, camera_health=health)
            det, health = parts["CAM02"]
            logged = wh.append_batch(
                "log:CAM02:2025-01-15",
                det,
                source="detection_log",
                camera_id="CAM02",
                window=site.day_window(DAY),
                camera_health=health,
            )
        lander = StreamLander(writer_url, site)
        try:
            payloads = [p.encode() for p in encode_frames(streamed)["payload"]]
            stream = [lander.land(payloads[i : i + 500]) for i in range(0, len(payloads), 500)]
        finally:
            lander.close()
        built = build_marts(writer_url, DAY, DAY + timedelta(days=1), site=site)
        yield {
            "backend": request.param,
            "url": url,
            "writer": writer,
            "writer_url": writer_url,
            "bi": bi,
            "bi_url": as_role(url, bi, bi_pw),
            "parts": parts,
            "streamed": streamed,
            "built": built,
            "landed": {
                "CAM01": simulated.landed,
                "CAM02": logged.landed,
                "CAM03": sum(s.landed for s in stream),
            },
        }
    finally:
        drop_database(url)
        with psycopg.connect(admin, autocommit=True) as conn:
            for role in (writer, bi):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f'DROP OWNED BY "{role}"')  # the grants in this cluster's postgres db
                    conn.execute(f'DROP ROLE "{role}"')


def test_writer_lands_streams_and_builds_marts(deployed, site):
    d = deployed
    parts = d["parts"]
    assert d["landed"] == {
        "CAM01": parts["CAM01"][0].height,
        "CAM02": parts["CAM02"][0].height,
        "CAM03": d["streamed"].height,
    }
    with psycopg.connect(d["url"]) as conn:
        counts = dict(conn.execute("SELECT camera_id, count(*) FROM raw.detections GROUP BY 1").fetchall())
        sources = dict(conn.execute("SELECT source, count(*) FROM raw.ingest_batches GROUP BY 1").fetchall())
    assert counts == d["landed"]
    assert set(sources) == {SIMULATOR_SOURCE, "detection_log", "stream"}
    built = d["built"]
    assert built.audits and built.audits_passed, [a for a in built.audits if not a.passed]
    assert built.rows["analytics.sessions"] > 0 and all(n > 0 for n in built.rows.values()), built.rows


def test_writer_owns_no_schema_and_nothing_in_raw_or_ref(deployed):
    d = deployed
    with psycopg.connect(d["url"]) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspowner = %s::regrole", (d["writer"],)
        ).fetchall()
        owned = conn.execute(
            "SELECT DISTINCT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relowner = %s::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')",
            (d["writer"],),
        ).fetchall()
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proowner = %s::regrole", (d["writer"],)
        ).fetchone()[0]
        partitions = conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'raw.detections'::regclass"
        ).fetchall()
        can_create_db_objects = conn.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (d["writer"],)
        ).fetchone()[0]
    assert schemas == [] and functions == 0 and not can_create_db_objects
    # What the writer owns is SQLMesh's output (views, physical tables, state), in exactly those schemas.
    assert {r[0] for r in owned} <= set(ddl.SQLMESH_SCHEMAS) and owned
    # Daily partitions (plain) or chunks (TimescaleDB) for DAY and for the streamed hours, created while the
    # writer landed, belong to the owner: the writer owns nothing in raw.
    assert len(partitions) >= 2 and {owner for _, owner in partitions} == {"postgres"}, partitions
    if d["backend"] == "postgres":
        assert f"detections_{DAY:%Y%m%d}" in {name for name, _ in partitions}


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE SCHEMA evil",
        "CREATE SCHEMA IF NOT EXISTS analytics",  # even one that exists: the check comes first
        "DROP TABLE raw.detections",
        "DROP TABLE raw.ingest_batches",
        "TRUNCATE raw.detections",
        "ALTER TABLE raw.detections ADD COLUMN evil int",
        "CREATE TABLE raw.evil (id int)",
        "CREATE TABLE ref.evil (id int)",
        "CREATE TABLE public.evil (id int)",
        "DROP SCHEMA raw CASCADE",
        "DROP FUNCTION raw.create_detections_partition(date, timestamptz, timestamptz)",
        "CREATE OR REPLACE FUNCTION raw.analyze_landed_tables() RETURNS void LANGUAGE sql AS 'SELECT'",
        "ALTER TABLE raw.detections OWNER TO CURRENT_USER",
        "CREATE ROLE evil",
    ],
)
def test_writer_cannot_run_ddl_outside_sqlmesh_schemas(deployed, statement):
    with (
        psycopg.connect(deployed["writer_url"], autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_writer_cannot_grant_raw_rows_to_bi_or_make_odd_partitions(deployed):
    d = deployed
    with psycopg.connect(d["writer_url"], autocommit=True) as conn:
        conn.execute(f'GRANT SELECT ON raw.detections TO "{d["bi"]}"')  # PostgreSQL warns, grants nothing
        with pytest.raises(psycopg.errors.RaiseException, match="not one local day"):
            conn.execute("SELECT raw.create_detections_partition('2025-02-01', '2000-01-01', '2100-01-01')")
    with psycopg.connect(d["url"]) as conn:
        assert not conn.execute(
            "SELECT has_table_privilege(%s, 'raw.detections', 'SELECT')", (d["bi"],)
        ).fetchone()[0]


def _readable_relations(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Every table, view and materialized view of every schema that the connected role may SELECT."""
    return conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND has_schema_privilege(n.oid, 'USAGE') "
        "AND has_table_privilege(c.oid, 'SELECT') ORDER BY 1, 2"
    ).fetchall()


def test_bi_reads_the_writers_marts_and_nothing_detection_level(deployed):
    """Issue 11 row 3: every relation the BI role can read, in every schema, is checked for detection-level
    data: no per-frame column (frame_idx, bbox, confidence, motion_score, ...), and no relation that pairs
    an identity (track_id, worker_id, visitor_id) with time at anything near one row per detection."""
    d = deployed
    with psycopg.connect(d["url"]) as owner:
        raw_rows = owner.execute("SELECT count(*) FROM raw.detections").fetchone()[0]
    with psycopg.connect(d["bi_url"], autocommit=True) as bi:
        readable = _readable_relations(bi)
        by_schema = {}
        for schema, name in readable:
            by_schema.setdefault(schema, set()).add(name)
        # Besides the system catalogs and TimescaleDB's own catalog (readable by PUBLIC as the extension
        # installs it; checked below like everything else), only analytics.
        ours = {
            s
            for s in by_schema
            if s not in ("pg_catalog", "information_schema")
            and not s.startswith(("_timescaledb_", "timescaledb_"))
        }
        assert ours == {"analytics"}
        marts = {m.split(".", 1)[1] for m in transform.MART_MODELS if m.startswith("analytics.")}
        assert marts <= by_schema["analytics"]
        exposures = []
        for schema, name in readable:
            columns = {
                r[0]
                for r in bi.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                    "AND NOT attisdropped",
                    (f'"{schema}"."{name}"',),
                )
            }
            per_frame = columns & PER_FRAME_COLUMNS
            if per_frame:
                exposures.append(f"{schema}.{name}: per-frame columns {sorted(per_frame)}")
            identity = columns & IDENTITY_COLUMNS
            if identity and schema not in ("pg_catalog", "information_schema"):
                # Grain check: a detection-level relation has about one row per detection.
                where = " OR ".join(f'"{c}" IS NOT NULL' for c in sorted(identity))
                n = bi.execute(f'SELECT count(*) FROM "{schema}"."{name}" WHERE {where}').fetchone()[0]
                if n * 20 > raw_rows:
                    exposures.append(
                        f"{schema}.{name}: {n} rows with {sorted(identity)} for {raw_rows} detections"
                    )
        assert exposures == []
        for forbidden in ("raw.detections", "staging.stg_detections", "ref.zones", "raw.ingest_batches"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute(f"SELECT 1 FROM {forbidden} LIMIT 1")
    assert raw_rows > 1000  # the grain check above has something to compare with
    with psycopg.connect(d["url"]) as owner:  # the physical tables the views read hold rows for BI
        sessions = owner.execute("SELECT count(*) FROM analytics.sessions").fetchone()[0]
    assert sessions == d["built"].rows["analytics.sessions"] > 0


def test_landing_without_setup_fails_with_the_fix(pg_url, site):
    """Issue 11 row 6: no DDL outside setup. A fresh database is not set up behind the owner's back."""
    with connect(pg_url, site) as wh:
        with pytest.raises(WarehouseNotSetUp, match=r"run `sightline db setup` as the owner"):
            wh.require_setup()
    with psycopg.connect(pg_url) as conn:
        schemas = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = ANY(%s)",
            (list(ddl.DATA_SCHEMAS + ddl.SQLMESH_SCHEMAS),),
        ).fetchone()[0]
    assert schemas == 0
    assert (
        main(
            [
                "simulate",
                "--days",
                "1",
                "--cameras",
                "CAM01",
                "--window",
                "08:00-08:05",
                "--warehouse",
                pg_url,
            ]
        )
        == 1
    )


def test_duckdb_sets_itself_up_on_first_use(duckdb_url, site):
    with connect(duckdb_url, site) as wh:
        wh.require_setup()
        assert wh.query("SELECT count(*) AS n FROM ref.cameras")["n"][0] == len(site.cameras)


def test_bi_reads_views_the_writer_creates_whichever_role_was_granted_first(pg_url, site):
    """Default privileges are per creating role: grant-bi after grant-writer must cover the writer's views
    made before and after it, as grant-writer after grant-bi does (the module fixture's order)."""
    from conftest import owner_setup

    owner_setup(pg_url)
    suffix = uuid.uuid4().hex[:8]
    writer, bi, password = f"writer_{suffix}", f"bi_{suffix}", uuid.uuid4().hex
    try:
        grant_writer(pg_url, writer, password, bi_role=bi)  # BI does not exist yet
        with psycopg.connect(as_role(pg_url, writer, password), autocommit=True) as conn:
            conn.execute("CREATE VIEW analytics.before_bi AS SELECT 1 AS n")
        grant_bi(pg_url, bi, password, writer_role=writer)
        with psycopg.connect(as_role(pg_url, writer, password), autocommit=True) as conn:
            conn.execute("CREATE VIEW analytics.after_bi AS SELECT 2 AS n")
            conn.execute("CREATE VIEW staging.hidden AS SELECT 3 AS n")
        with psycopg.connect(as_role(pg_url, bi, password), autocommit=True) as conn:
            assert conn.execute("SELECT n FROM analytics.before_bi").fetchone()[0] == 1
            assert conn.execute("SELECT n FROM analytics.after_bi").fetchone()[0] == 2
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT n FROM staging.hidden")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP VIEW IF EXISTS analytics.before_bi, analytics.after_bi, staging.hidden")
            for role in (writer, bi):
                conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            for role in (writer, bi):
                conn.execute(f'DROP OWNED BY "{role}"')
                conn.execute(f'DROP ROLE "{role}"')
