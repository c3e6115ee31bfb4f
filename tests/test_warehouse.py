"""The landing layer against real DuckDB files and real PostgreSQL databases (one fresh database per test).

Expected values are computed from the frames the tests build, never typed in.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ingestion.schema import CAMERA_HEALTH_SCHEMA, DETECTION_SCHEMA
from ingestion.site import Site
from ingestion.warehouse import connect
from ingestion.warehouse.base import (
    SIMULATOR_SOURCE,
    RowsAlreadyLanded,
    SimulatorWouldReplaceRealData,
    Warehouse,
)
from ingestion.warehouse.validate import BatchSchemaError, validate_detections
from orchestration.cli import main

DAY = date(2025, 1, 15)  # a Wednesday
KEY = ["camera_id", "ts", "track_id"]


def detections(
    site: Site,
    n: int = 200,
    *,
    camera: str = "CAM01",
    day: date = DAY,
    hour: float = 9.0,
    tracks: int = 4,
    fps: float = 5.0,
    seed: int = 0,
) -> pl.DataFrame:
    """n detections: `tracks` people sampled at `fps` from local `hour` on `day`, keys unique."""
    rng = np.random.default_rng(seed)
    start = site.local_datetime(day, datetime.min.time()) + timedelta(hours=hour)
    frame_idx = np.arange(n) // tracks
    ts = [start + timedelta(seconds=float(f) / fps) for f in frame_idx]
    return pl.DataFrame(
        {
            "ts": ts,
            "camera_id": [camera] * n,
            "frame_idx": frame_idx,
            "track_id": np.arange(n) % tracks + 1,
            "class_id": np.zeros(n, dtype=np.int16),
            "confidence": rng.uniform(0.3, 1.0, n).astype(np.float32),
            "x": rng.uniform(0, 1200, n).astype(np.float32),
            "y": rng.uniform(0, 600, n).astype(np.float32),
            "w": rng.uniform(20, 80, n).astype(np.float32),
            "h": rng.uniform(60, 200, n).astype(np.float32),
            "zone_id": rng.choice(np.array(["Z01", "Z02", None], dtype=object), n).tolist(),
            "motion_score": rng.uniform(0, 1, n).astype(np.float32),
            "worker_id": rng.choice(np.array(["W001", None], dtype=object), n).tolist(),
            "batch_id": [None] * n,
        },
        schema=DETECTION_SCHEMA,
    )


def health(
    site: Site, *, camera: str = "CAM01", day: date = DAY, hour: float = 9.0, windows: int = 6
) -> pl.DataFrame:
    start = site.local_datetime(day, datetime.min.time()) + timedelta(hours=hour)
    return pl.DataFrame(
        {
            "window_start": [start + timedelta(seconds=10 * i) for i in range(windows)],
            "camera_id": [camera] * windows,
            "frames_read": [50] * windows,
            "frames_processed": [50] * windows,
            "frames_dropped": [0] * windows,
            "decode_errors": [0] * windows,
            "latency_ms_mean": [12.5] * windows,
            "latency_ms_p95": [None] + [20.0] * (windows - 1),
            "batch_id": [None] * windows,
        },
        schema=CAMERA_HEALTH_SCHEMA,
    )


def landed(wh: Warehouse, where: str = "TRUE") -> pl.DataFrame:
    cols = ", ".join(DETECTION_SCHEMA.names())
    return wh.query(f"SELECT {cols} FROM raw.detections WHERE {where} ORDER BY camera_id, ts, track_id").cast(
        DETECTION_SCHEMA
    )


def count(wh: Warehouse, table: str) -> int:
    return int(wh.query(f"SELECT count(*) AS n FROM {table}")["n"][0])


@pytest.fixture
def wh(landing_url: str, site: Site):
    with connect(landing_url, site) as w:
        w.setup()
        yield w


def window(site: Site, day: date = DAY) -> tuple[datetime, datetime]:
    return site.day_window(day)


# ----------------------------------------------------------------------------------------------- setup


def test_setup_is_idempotent_and_loads_ref_tables(wh: Warehouse, site: Site):
    wh.setup()
    wh.setup()
    cams = wh.query("SELECT camera_id, width, fps FROM ref.cameras ORDER BY camera_id")
    assert cams["camera_id"].to_list() == sorted(c.id for c in site.cameras)
    assert cams["width"].to_list() == [site.camera(c).width for c in cams["camera_id"]]
    zones = wh.query(
        "SELECT zone_id, camera_id, zone_type, polygon, max_workers FROM ref.zones ORDER BY zone_id"
    )
    assert zones.height == len(site.zones)
    by_id = {z.id: z for z in site.zones}
    for zid, cam, ztype, polygon, max_workers in zones.iter_rows():
        assert (cam, ztype, max_workers) == (by_id[zid].camera, by_id[zid].type, by_id[zid].max_workers)
        assert [tuple(p) for p in json.loads(polygon)] == list(by_id[zid].polygon)
    row = wh.query("SELECT name, timezone, session_gap_seconds, indices FROM ref.site")
    assert row.rows() == [
        (site.name, site.timezone, site.thresholds.session_gap_seconds, site.schedule.indices)
    ]
    for schema in ("raw", "ref", "analytics"):
        assert (
            wh.query(f"SELECT count(*) AS n FROM information_schema.schemata WHERE schema_name = '{schema}'")[
                "n"
            ][0]
            == 1
        )


def test_raw_and_ref_tables_carry_comments(wh: Warehouse):
    if wh.backend == "postgres":
        sql = (
            "SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS comment FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('raw', 'ref') "
            "AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        )
    else:
        sql = "SELECT table_name AS name, comment FROM duckdb_tables() WHERE schema_name IN ('raw', 'ref')"
    comments = wh.query(sql)
    assert comments.height >= 10
    assert comments.filter(pl.col("comment").is_null() | (pl.col("comment") == "")).height == 0


# ----------------------------------------------------------------------------------------------- landing


def test_append_lands_every_column_exactly(wh: Warehouse, site: Site):
    rows = detections(site, 500)
    result = wh.append_batch("b-exact", rows, source="test", camera_id="CAM01", window=window(site))
    assert (result.landed, result.rejected, result.skipped) == (rows.height, 0, False)
    expected = rows.with_columns(pl.lit("b-exact").alias("batch_id")).sort(KEY)
    assert landed(wh).equals(expected)
    ledger = wh.query("SELECT batch_id, row_count, rejected_count, status, camera_id FROM raw.ingest_batches")
    assert ledger.rows() == [("b-exact", rows.height, 0, "committed", "CAM01")]


def test_replayed_batch_is_skipped_and_writes_nothing(wh: Warehouse, site: Site):
    rows = detections(site, 120)
    bad = detections(site, 3, hour=10).with_columns(pl.lit(5.0, dtype=pl.Float32).alias("confidence"))
    batch = pl.concat([rows, bad])
    first = wh.append_batch("b-replay", batch, source="test", camera_id="CAM01", window=window(site))
    before = (landed(wh), count(wh, "raw.rejected_detections"), count(wh, "raw.ingest_batches"))
    for _ in range(2):
        again = wh.append_batch("b-replay", batch, source="test", camera_id="CAM01", window=window(site))
        assert again.skipped and again.landed == 0 and again.rejected == 0
    assert (first.landed, first.rejected) == (rows.height, bad.height)
    after = (landed(wh), count(wh, "raw.rejected_detections"), count(wh, "raw.ingest_batches"))
    assert after[0].equals(before[0]) and after[1:] == before[1:]


def test_a_batch_meeting_landed_keys_rolls_back_whole_when_asked_to_raise(wh: Warehouse, site: Site):
    """`if_landed="raise"` (the stream's optimistic landing): nothing of the batch is written, not even its
    ledger row, so the same batch id lands after the caller has dealt with the landed rows."""
    first = detections(site, 100)
    wh.append_batch("b-first", first, source="test", camera_id="CAM01", window=window(site))
    later = detections(site, 40, hour=11)
    overlapping = pl.concat([first.slice(10, 5), later])
    before = (landed(wh), count(wh, "raw.rejected_detections"), count(wh, "raw.ingest_batches"))
    with pytest.raises(RowsAlreadyLanded) as caught:
        wh.append_batch("b-next", overlapping, source="test", window=window(site), if_landed="raise")
    assert caught.value.rows.select(KEY).sort(KEY).equals(first.slice(10, 5).select(KEY).sort(KEY))
    after = (landed(wh), count(wh, "raw.rejected_detections"), count(wh, "raw.ingest_batches"))
    assert after[0].equals(before[0]) and after[1:] == before[1:]
    result = wh.append_batch("b-next", later, source="test", window=window(site), if_landed="raise")
    assert (result.landed, result.rejected, result.skipped) == (later.height, 0, False)


def test_replace_partition_three_times_gives_the_same_rows(wh: Warehouse, site: Site):
    other_camera = detections(site, 50, camera="CAM02")
    other_day = detections(site, 50, day=DAY + timedelta(days=1))
    wh.append_batch("keep-cam2", other_camera, source="test", camera_id="CAM02", window=window(site))
    wh.append_batch(
        "keep-day2", other_day, source="test", camera_id="CAM01", window=window(site, DAY + timedelta(days=1))
    )
    old = detections(site, 80, seed=1)
    wh.append_batch("old", old, source="test", camera_id="CAM01", window=window(site))

    rows = detections(site, 300, seed=2, hour=13)
    snapshots = []
    for _ in range(3):
        result = wh.replace_partition("CAM01", DAY, rows, source="sim", camera_health=health(site))
        assert (result.landed, result.rejected, result.health_rows) == (rows.height, 0, 6)
        snapshots.append(
            (
                landed(wh),
                count(wh, "raw.camera_health"),
                wh.query("SELECT batch_id, row_count FROM raw.ingest_batches ORDER BY batch_id").rows(),
            )
        )
    assert all(s[0].equals(snapshots[0][0]) and s[1:] == snapshots[0][1:] for s in snapshots)
    day_start, day_end = window(site)
    cam1_day = snapshots[0][0].filter((pl.col("camera_id") == "CAM01") & (pl.col("ts") < day_end))
    assert cam1_day.equals(rows.with_columns(pl.lit(f"sim:CAM01:{DAY}").alias("batch_id")).sort(KEY))
    # Other cameras and days are untouched; the replaced batch "old" has no rows left.
    assert snapshots[0][0].filter(pl.col("camera_id") == "CAM02").height == other_camera.height
    assert snapshots[0][0].filter(pl.col("ts") >= day_end).height == other_day.height
    assert dict(snapshots[0][2]) == {
        "keep-cam2": 50,
        "keep-day2": 50,
        f"sim:CAM01:{DAY}": rows.height,
        "old": 0,
    }
    statuses = dict(wh.query("SELECT batch_id, status FROM raw.ingest_batches").rows())
    assert statuses["old"] == "replaced" and statuses["keep-cam2"] == "committed"
    # The replaced batch stays in the ledger, so replaying it does not bring its rows back.
    assert wh.append_batch("old", old, source="test", camera_id="CAM01", window=window(site)).skipped


def test_simulator_never_replaces_a_camera_day_holding_other_sources(wh: Warehouse, site: Site):
    """Issue 11 row 2: stream and ingested rows survive a simulator run over their camera-day."""
    wh.append_batch(
        "live-1", detections(site, 60, seed=1), source="stream", camera_id="CAM01", window=window(site)
    )
    wh.append_batch(
        "log-1",
        detections(site, 40, seed=2, hour=14),
        source="detection_log",
        camera_id="CAM01",
        window=window(site),
        camera_health=health(site, hour=14),
    )
    before = landed(wh)
    ledger = wh.query("SELECT * FROM raw.ingest_batches ORDER BY batch_id")
    health_before = count(wh, "raw.camera_health")
    simulated = detections(site, 300, seed=3, hour=9)
    with pytest.raises(SimulatorWouldReplaceRealData) as err:
        wh.replace_partition("CAM01", DAY, simulated, source=SIMULATOR_SOURCE, camera_health=health(site))
    message = str(err.value)
    assert "detection_log: 1 batches" in message and "stream: 1 batches" in message
    assert f"camera CAM01 on {DAY}" in message and "nothing was changed" in message and "Fix:" in message
    assert landed(wh).equals(before)
    assert wh.query("SELECT * FROM raw.ingest_batches ORDER BY batch_id").equals(ledger)
    assert count(wh, "raw.camera_health") == health_before
    # Camera-days that hold only simulated rows (or nothing) are still replaced, every time the same.
    next_day = DAY + timedelta(days=1)
    for _ in range(2):
        for camera, day in (("CAM02", DAY), ("CAM01", next_day)):
            rows = detections(site, 120, camera=camera, day=day, seed=4)
            result = wh.replace_partition(camera, day, rows, source=SIMULATOR_SOURCE)
            assert (result.landed, result.rejected) == (rows.height, 0)
    assert landed(wh, "camera_id = 'CAM02'").height == 120
    assert landed(wh).height == before.height + 2 * 120
    # A camera-day the simulator landed, then a stream batch joined: refused from then on.
    wh.append_batch(
        "live-2",
        detections(site, 10, camera="CAM02", hour=20, seed=5),
        source="stream",
        camera_id="CAM02",
        window=window(site),
    )
    with pytest.raises(SimulatorWouldReplaceRealData, match=r"stream: 1 batches, 10 rows"):
        wh.replace_partition("CAM02", DAY, detections(site, 5, camera="CAM02"), source=SIMULATOR_SOURCE)
    assert landed(wh, "camera_id = 'CAM02'").height == 130


def test_simulated_detection_source_of_the_dagster_asset_refuses_real_data(wh: Warehouse, site: Site):
    """The `simulated` detection source (raw_detections asset, compose's nightly schedule) goes through
    the same guard: it raises, and the stream's rows stay."""
    from orchestration.resources import DetectionSourceResource

    live = detections(site, 30, seed=6)
    wh.append_batch("live-3", live, source="stream", camera_id="CAM01", window=window(site))
    source = DetectionSourceResource(kind="simulated", fps=0.2, window="08:00-08:30")
    with pytest.raises(SimulatorWouldReplaceRealData, match="stream: 1 batches, 30 rows"):
        source.land(wh, site, "CAM01", DAY)
    assert landed(wh).equals(live.with_columns(pl.lit("live-3").alias("batch_id")).sort(KEY))
    assert source.land(wh, site, "CAM02", DAY).landed > 0  # a camera-day without real data simulates fine


def test_replace_partition_with_bad_rows_is_idempotent_for_dead_letters_too(wh: Warehouse, site: Site):
    rows = pl.concat(
        [
            detections(site, 40),
            detections(site, 2, hour=11).with_columns(pl.lit(0.0, dtype=pl.Float32).alias("w")),
        ]
    )
    for _ in range(3):
        result = wh.replace_partition("CAM01", DAY, rows, source="sim")
        assert (result.landed, result.rejected) == (40, 2)
    assert count(wh, "raw.rejected_detections") == 2
    assert count(wh, "raw.detections") == 40


def test_a_failure_mid_batch_leaves_nothing(wh: Warehouse, site: Site):
    """The database itself rejects the last write of the batch (the watermark row, written after the
    detections, health and dead letters): the whole batch must roll back, ledger claim included."""
    rows = detections(site, 100)
    limit = rows["ts"].max()
    wh.query("DROP TABLE raw.camera_watermarks")
    wh.query(
        "CREATE TABLE raw.camera_watermarks (camera_id VARCHAR PRIMARY KEY, "
        f"max_event_ts TIMESTAMPTZ CHECK (max_event_ts < TIMESTAMPTZ '{limit.isoformat()}'), "
        "updated_at TIMESTAMPTZ)"
    )
    batch = pl.concat(
        [rows, detections(site, 1, hour=12).with_columns(pl.lit(None, dtype=pl.String).alias("camera_id"))]
    )
    with pytest.raises(Exception) as failure:  # noqa: B017 - psycopg or duckdb error, checked below
        wh.append_batch(
            "b-atomic",
            batch,
            source="test",
            camera_id="CAM01",
            window=window(site),
            camera_health=health(site),
        )
    assert "check" in str(failure.value).lower() or "constraint" in str(failure.value).lower()
    for table in (
        "raw.detections",
        "raw.camera_health",
        "raw.rejected_detections",
        "raw.ingest_batches",
        "raw.camera_watermarks",
        "ref.index_timeline",
    ):
        assert count(wh, table) == 0, table
    # The same batch id lands once the cause is gone: the failed attempt did not claim it.
    wh.query("DROP TABLE raw.camera_watermarks")
    wh.setup()
    result = wh.append_batch(
        "b-atomic", batch, source="test", camera_id="CAM01", window=window(site), camera_health=health(site)
    )
    assert (result.landed, result.rejected, result.skipped) == (rows.height, 1, False)


def test_dead_letters_carry_row_reason_and_counts(wh: Warehouse, site: Site):
    good = detections(site, 60)
    bad = detections(site, 4, hour=12, seed=3).with_columns(
        pl.Series("confidence", [1.5, float("nan"), 0.5, 0.5], dtype=pl.Float32),
        pl.Series("h", [50.0, 50.0, -1.0, 50.0], dtype=pl.Float32),
        pl.Series("camera_id", ["CAM01", "CAM01", "CAM01", "CAM99"]),
    )
    result = wh.append_batch("b-dead", pl.concat([good, bad]), source="unit", window=window(site))
    assert (result.landed, result.rejected) == (good.height, bad.height)
    dead = wh.query(
        "SELECT source, camera_id, batch_id, payload, reason FROM raw.rejected_detections ORDER BY reason"
    )
    assert dead.height == bad.height
    assert set(dead["source"]) == {"unit"} and set(dead["batch_id"]) == {"b-dead"}
    reasons = dead["reason"].to_list()
    assert any("confidence outside 0..1" in r for r in reasons)
    assert any("confidence is NaN or infinite" in r for r in reasons)
    assert any("h <= 0" in r for r in reasons)
    assert any("unknown camera_id" in r for r in reasons)
    payload_tracks = sorted((json.loads(p)["track_id"], json.loads(p)["frame_idx"]) for p in dead["payload"])
    assert payload_tracks == sorted(zip(bad["track_id"].to_list(), bad["frame_idx"].to_list(), strict=True))
    ledger = wh.query("SELECT row_count, rejected_count FROM raw.ingest_batches").rows()
    assert ledger == [(good.height, bad.height)]


def test_duplicate_keys_within_batch_and_against_landed_rows(wh: Warehouse, site: Site):
    first = detections(site, 100)
    wh.append_batch("b-first", first, source="test", camera_id="CAM01", window=window(site))
    overlap = first.slice(90, 10)  # already landed
    fresh = detections(site, 40, hour=14)
    repeated = fresh.slice(0, 5).with_columns(pl.lit(0.99, dtype=pl.Float32).alias("confidence"))
    result = wh.append_batch(
        "b-second",
        pl.concat([overlap, fresh, repeated]),
        source="test",
        camera_id="CAM01",
        window=window(site),
    )
    assert (result.landed, result.rejected) == (fresh.height, overlap.height + repeated.height)
    reasons = wh.query(
        "SELECT reason, count(*) AS n FROM raw.rejected_detections GROUP BY reason ORDER BY reason"
    )
    assert dict(reasons.rows()) == {
        "duplicate key (camera_id, ts, track_id) already landed": overlap.height,
        "duplicate key (camera_id, ts, track_id) within the batch": repeated.height,
    }
    # The first occurrence won: the stored rows are exactly first + fresh.
    assert landed(wh).drop("batch_id").equals(pl.concat([first, fresh]).sort(KEY).drop("batch_id"))


def test_rows_outside_the_batch_window_are_rejected(wh: Warehouse, site: Site):
    inside = detections(site, 30, hour=9)
    start = site.local_datetime(DAY, datetime.min.time()) + timedelta(hours=9)
    result = wh.append_batch(
        "b-window",
        pl.concat([inside, detections(site, 7, hour=11)]),
        source="test",
        camera_id="CAM01",
        window=(start, start + timedelta(hours=1)),
    )
    assert (result.landed, result.rejected) == (30, 7)
    reasons = wh.query("SELECT DISTINCT reason FROM raw.rejected_detections")["reason"].to_list()
    assert len(reasons) == 1 and reasons[0].startswith("ts outside the batch window")


def test_schema_errors_name_the_column_and_write_nothing(wh: Warehouse, site: Site):
    rows = detections(site, 10)
    cases = {
        "track_id": rows.drop("track_id"),
        "confidence": rows.with_columns(pl.col("confidence").cast(pl.String)),
        "ts": rows.with_columns(pl.col("ts").dt.replace_time_zone(None)),
    }
    for column, frame in cases.items():
        with pytest.raises(BatchSchemaError, match=f"'{column}'.*(Fix|Add)"):
            wh.append_batch(f"b-schema-{column}", frame, source="test", window=window(site))
    assert count(wh, "raw.ingest_batches") == 0 and count(wh, "raw.detections") == 0


def test_camera_health_lands_and_bad_health_rows_are_dead_letters(wh: Warehouse, site: Site):
    good = health(site)
    bad = health(site, hour=10, windows=2).with_columns(
        pl.Series("frames_read", [-1, 5], dtype=pl.Int32), pl.Series("camera_id", ["CAM01", "NOPE"])
    )
    result = wh.append_batch(
        "b-health",
        detections(site, 20),
        source="test",
        camera_id="CAM01",
        camera_health=pl.concat([good, bad]),
    )
    assert (result.health_rows, result.rejected) == (good.height, bad.height)
    stored = wh.query("SELECT window_start, frames_read, latency_ms_p95 FROM raw.camera_health ORDER BY 1")
    assert stored["window_start"].to_list() == good["window_start"].to_list()
    assert stored["latency_ms_p95"].to_list() == good["latency_ms_p95"].to_list()
    reasons = wh.query("SELECT reason FROM raw.rejected_detections ORDER BY reason")["reason"].to_list()
    assert all(r.startswith("camera_health: ") for r in reasons)
    assert any("frames_read < 0" in r for r in reasons) and any("unknown camera_id" in r for r in reasons)


def test_reject_writes_dead_letters(wh: Warehouse):
    assert wh.reject("stream", "CAM02", ["{not json", "x"], ["unparseable JSON", "empty message"]) == 2
    assert wh.query(
        "SELECT source, camera_id, payload, reason FROM raw.rejected_detections ORDER BY payload"
    ).rows() == [
        ("stream", "CAM02", "x", "empty message"),
        ("stream", "CAM02", "{not json", "unparseable JSON"),
    ]
    with pytest.raises(ValueError, match="one reason each"):
        wh.reject("stream", None, ["a"], [])


def test_index_timeline_is_ensured_for_landed_days(wh: Warehouse, site: Site):
    saturday = date(2025, 1, 18)
    wh.append_batch(
        "b-tl",
        pl.concat([detections(site, 10), detections(site, 10, day=saturday)]),
        source="test",
        camera_id="CAM01",
    )
    stored = wh.query(
        "SELECT date, index_number, scheduled_start, scheduled_end, working_seconds "
        "FROM ref.index_timeline ORDER BY date, index_number"
    )
    expected = [
        (b.date, b.index_number, b.scheduled_start, b.scheduled_end, b.working_seconds)
        for b in site.index_timeline(DAY)
    ]
    assert stored.rows() == expected  # the Saturday is no workday: no blocks
    assert wh.ensure_index_timeline(DAY, DAY + timedelta(days=1)) == site.schedule.indices
    assert wh.ensure_index_timeline(DAY, DAY + timedelta(days=1)) == 0


# ----------------------------------------------------------------------------------------------- watermarks


def test_watermarks_advance_and_late_data_marks_days_to_rebuild(wh: Warehouse, site: Site):
    morning = detections(site, 40, hour=9)
    afternoon = detections(site, 40, hour=15)
    wh.append_batch(
        "w1", afternoon, source="stream", camera_id="CAM01", allowed_lateness=timedelta(minutes=5)
    )
    wh.append_batch("w2", morning, source="stream", camera_id="CAM01")  # late, but no lateness given
    marks = wh.query("SELECT camera_id, max_event_ts FROM raw.camera_watermarks")
    assert marks.rows() == [("CAM01", afternoon["ts"].max())]  # never moves back
    assert count(wh, "raw.days_to_rebuild") == 0

    on_time = detections(site, 8, hour=15 + 8 / 3600)  # 8 s after the last row: within lateness
    late_prev_day = detections(site, 8, hour=20, day=DAY - timedelta(days=1))
    r = wh.append_batch(
        "w3",
        pl.concat([on_time, late_prev_day]),
        source="stream",
        camera_id="CAM01",
        allowed_lateness=timedelta(minutes=5),
    )
    assert (r.landed, r.rejected) == (16, 0)  # late rows still land
    rebuild = wh.query("SELECT camera_id, day, reason FROM raw.days_to_rebuild")
    assert rebuild.select("camera_id", "day").rows() == [("CAM01", DAY - timedelta(days=1))]
    assert "8 rows" in rebuild["reason"][0] and "w3" in rebuild["reason"][0]
    assert wh.query("SELECT max_event_ts FROM raw.camera_watermarks")["max_event_ts"][0] == max(
        on_time["ts"].max(), afternoon["ts"].max()
    )


# ----------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("confidence", float("nan"), "confidence is NaN or infinite"),
        ("x", float("inf"), "x is NaN or infinite"),
        ("confidence", -0.01, "confidence outside 0..1"),
        ("confidence", 1.01, "confidence outside 0..1"),
        ("motion_score", 1.5, "motion_score outside 0..1"),
        ("motion_score", -0.5, "motion_score outside 0..1"),
        ("w", 0.0, "w <= 0"),
        ("h", -3.0, "h <= 0"),
        ("track_id", None, "track_id is null"),
        ("ts", None, "ts is null"),
        ("camera_id", "CAM77", "unknown camera_id"),
    ],
)
def test_each_validation_rule(site: Site, column: str, value, reason: str):
    rows = detections(site, 10)
    bad_row = rows.slice(3, 1).with_columns(pl.lit(value).cast(rows.schema[column]).alias(column))
    frame = pl.concat([rows.slice(0, 3), bad_row, rows.slice(4)])
    split = validate_detections(frame, site, window=window(site))
    assert split.good.height == rows.height - 1
    assert split.rejected.height == 1 and reason in split.rejected["reason"][0]
    assert split.good.equals(rows.filter(pl.int_range(pl.len()) != 3))


def test_validation_accepts_lossless_types_and_names_the_batch_camera(site: Site):
    rows = detections(site, 6).with_columns(
        pl.col("track_id").cast(pl.Int32),
        pl.col("x").cast(pl.Float64),
        pl.col("ts").dt.convert_time_zone("Asia/Bangkok"),
    )
    split = validate_detections(rows.drop("worker_id", "batch_id"), site, camera_id="CAM02")
    assert split.good.height == 0 and split.rejected.height == 6
    assert set(split.rejected["reason"]) == {"camera_id differs from the batch's camera CAM02"}


# ----------------------------------------------------------------------------------------------- PostgreSQL


def test_postgres_partitions_by_local_day_without_timescaledb(pg_url: str, site: Site):
    with connect(pg_url, site) as plain:
        plain.use_timescaledb = False
        plain.setup()
        assert not plain.timescaledb_enabled()
        rows = pl.concat([detections(site, 20), detections(site, 20, day=DAY + timedelta(days=2))])
        plain.append_batch("p1", rows, source="test")
        parts = plain.query(
            "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'raw.detections'::regclass ORDER BY 1"
        )
        assert parts["name"].to_list() == [
            f"detections_{DAY:%Y%m%d}",
            f"detections_{DAY + timedelta(days=2):%Y%m%d}",
        ]
        start, end = site.day_window(DAY)
        assert f"'{start.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00'" in parts["bound"][0]
        counts = plain.query(
            "SELECT tableoid::regclass::text AS part, count(*) AS n FROM raw.detections GROUP BY 1"
        )
        assert sorted(counts["n"].to_list()) == [20, 20]


def test_postgres_requiring_missing_timescaledb_fails_clearly(pg_url: str, site: Site):
    from ingestion.warehouse.postgres import PostgresWarehouse

    with PostgresWarehouse(pg_url, site, use_timescaledb=True) as forced:
        if "timescaledb" in forced.query("SHOW shared_preload_libraries")["shared_preload_libraries"][0]:
            pytest.skip(
                "this server has TimescaleDB; the hypertable path is covered by the timescaledb tests"
            )
        with pytest.raises(RuntimeError, match="TimescaleDB was required.*shared_preload_libraries"):
            forced.setup()


def test_postgres_binary_copy_round_trips_awkward_values(pg_url: str, site: Site):
    """Nulls in every nullable column, multi-byte and empty-ish text, extreme floats and times."""
    rows = detections(site, 64).with_columns(
        pl.Series("worker_id", ["Wörker-ß✓", "", None, "x" * 300] * 16),
        pl.Series("zone_id", [None, "Z01", "Z0001", None] * 16),
        pl.Series(
            "x",
            [np.float32(-1e30), np.float32(1.17549435e-38), np.float32(3.4e38), np.float32(0.1)] * 16,
            dtype=pl.Float32,
        ),
        pl.Series("frame_idx", [2**62, -(2**62), 0, 1] * 16),
        pl.Series("class_id", [32767, -32768, 0, 1] * 16, dtype=pl.Int16),
    )
    with connect(pg_url, site) as pg:
        pg.setup()
        pg.append_batch("rt", rows, source="test")
        assert landed(pg).equals(rows.with_columns(pl.lit("rt").alias("batch_id")).sort(KEY))


def test_grant_bi_role_reads_analytics_only(site: Site, monkeypatch):
    import uuid

    import psycopg

    from ingestion.warehouse.roles import grant_bi
    from tests.conftest import ADMIN_URL, create_database, drop_database

    role = f"sightline_bi_test_{uuid.uuid4().hex[:8]}"
    url = create_database()
    try:
        with connect(url, site) as pg:
            pg.setup()
            pg.append_batch("g1", detections(site, 5), source="test")
            pg.query("CREATE TABLE analytics.sessions_before (id int)")
            pg.query("INSERT INTO analytics.sessions_before VALUES (1), (2)")
        monkeypatch.setenv("SIGHTLINE_BI_PASSWORD", "bi-secret")
        assert main(["db", "grant-bi", "--warehouse", url, "--role", role]) == 0
        grant_bi(url, role, "bi-secret")  # running it again is harmless
        with psycopg.connect(url, autocommit=True) as admin:  # a table created after the grant
            admin.execute("CREATE TABLE analytics.sessions_after AS SELECT 3 AS id")
        host_db = url.split("@", 1)[1]
        with psycopg.connect(f"postgresql://{role}:bi-secret@{host_db}", autocommit=True) as bi:
            assert bi.execute("SELECT sum(id) FROM analytics.sessions_before").fetchone()[0] == 3
            assert bi.execute("SELECT id FROM analytics.sessions_after").fetchone()[0] == 3
            for forbidden in (
                "SELECT count(*) FROM raw.detections",
                "SELECT * FROM ref.cameras",
                "INSERT INTO analytics.sessions_before VALUES (9)",
                "CREATE TABLE analytics.mine (id int)",
                "CREATE TABLE public.mine (id int)",
                "DELETE FROM analytics.sessions_before",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    bi.execute(forbidden)
    finally:
        drop_database(url)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_grant_bi_is_not_applicable_to_duckdb(duckdb_url: str, capsys):
    assert main(["db", "grant-bi", "--warehouse", duckdb_url]) == 0
    assert "not applicable to DuckDB" in capsys.readouterr().out


def test_db_setup_cli(warehouse_url: str, site: Site, capsys):
    assert main(["db", "setup", "--warehouse", warehouse_url]) == 0
    assert main(["db", "setup", "--warehouse", warehouse_url]) == 0
    out = capsys.readouterr().out
    assert "warehouse ready" in out and f"{len(site.cameras)} cameras" in out


def test_postgres_concurrent_landings_of_one_batch_land_it_once(pg_url: str, site: Site):
    """Two writers race with the same batch id: the ledger's primary key makes one wait, then skip."""
    from concurrent.futures import ThreadPoolExecutor

    with connect(pg_url, site) as setup_wh:
        setup_wh.setup()
    rows = detections(site, 20_000)

    def land(_: int):
        with connect(pg_url, site) as w:
            return w.append_batch("raced", rows, source="test", camera_id="CAM01", window=window(site))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(land, range(2)))
    assert sorted(r.skipped for r in results) == [False, True]
    assert sum(r.landed for r in results) == rows.height
    with connect(pg_url, site) as check:
        assert count(check, "raw.detections") == rows.height
