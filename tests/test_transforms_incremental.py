"""Incremental behaviour of the marts: restating a day rewrites exactly that day, late data inside the
lookback is picked up by the next day's run, sessions are not cut at local midnight, and the SQLMesh
YAML unit tests (transforms/tests/) pass."""

from __future__ import annotations

from datetime import date, time, timedelta

import polars as pl
import pytest
from test_transforms import land, read

from ingestion import transform
from ingestion.simulate import simulate
from ingestion.transform import build_marts, sqlmesh_context
from ingestion.warehouse import connect

D1, D2, D3 = date(2025, 1, 13), date(2025, 1, 14), date(2025, 1, 15)


def snapshot(url: str) -> dict[str, pl.DataFrame]:
    """Every incremental mart, with the site-local day each row belongs to, sorted."""
    out = {}
    for model, column in transform.TIME_COLUMNS.items():
        day = f"CAST({column} AT TIME ZONE 'Asia/Bangkok' AS DATE)"
        frame = read(url, f"SELECT *, {day} AS _day FROM {model}")
        out[model] = frame.sort(frame.columns, nulls_last=True)
    return out


def day_rows(snap: dict[str, pl.DataFrame], day: date) -> dict[str, pl.DataFrame]:
    return {m: f.filter(pl.col("_day") == day) for m, f in snap.items()}


@pytest.fixture(scope="module")
def three_days(site, tmp_path_factory):
    """Three site-local days of one camera, 08:00-09:00 local only, landed and built. Shared by the tests
    below, which each touch other days or cameras than the other checks."""
    duckdb_url = f"duckdb:///{tmp_path_factory.mktemp('three_days') / 'warehouse.duckdb'}"
    sim = simulate(
        site, start=D1, days=3, cameras=["CAM02"], fps=1.0, noise="none", seed=2, window=(time(8), time(9))
    )
    land(duckdb_url, site, sim)
    build_marts(duckdb_url, D1, D3 + timedelta(days=1), site=site, report_audits=False)
    return sim, duckdb_url


def test_restating_a_day_rewrites_exactly_that_day(three_days, site):
    sim, url = three_days
    before = snapshot(url)
    for day in (D1, D2, D3):
        assert len(day_rows(before, day)["analytics.sessions"]) > 0
    # New rows for days 2 and 3 (another seed); only day 2 is restated.
    other = simulate(
        site, start=D2, days=2, cameras=["CAM02"], fps=1.0, noise="none", seed=99, window=(time(8), time(9))
    )
    land(url, site, other)
    result = build_marts(url, D2, D3, restate=True, site=site)
    assert result.restated and result.audits_passed
    after = snapshot(url)
    for model in transform.TIME_COLUMNS:
        for day in (D1, D3):  # untouched, even though day 3's raw rows changed
            assert day_rows(after, day)[model].equals(day_rows(before, day)[model]), (model, day)
    expected = other.sessions.filter(pl.col("entry_time").dt.convert_time_zone(site.timezone).dt.date() == D2)
    got = day_rows(after, D2)["analytics.sessions"]
    assert sorted(got["session_id"]) == sorted(expected["session_id"])
    assert set(got["session_id"]) != set(day_rows(before, D2)["analytics.sessions"]["session_id"])


def test_late_data_is_picked_up_by_the_next_run(three_days, site):
    sim, url = three_days
    # A camera that was not there on day 3 delivers its day late, after day 3 was built.
    late = simulate(
        site, start=D3, days=1, cameras=["CAM04"], fps=1.0, noise="none", seed=4, window=(time(8), time(9))
    )
    with connect(url, site) as wh:
        for camera_id, _day, detections, health in late.camera_days():
            wh.append_batch(
                f"late:{camera_id}", detections, source="simulator", camera_id=camera_id, camera_health=health
            )
    assert read(url, "SELECT COUNT(*) AS n FROM analytics.sessions WHERE camera_id = 'CAM04'")["n"][0] == 0
    # the next day's run
    build_marts(url, D3 + timedelta(days=1), D3 + timedelta(days=2), site=site, report_audits=False)
    got = read(url, "SELECT session_id FROM analytics.sessions WHERE camera_id = 'CAM04'")
    assert sorted(got["session_id"]) == sorted(late.sessions["session_id"])
    stats = read(
        url,
        f"SELECT sessions FROM analytics.daily_camera_stats WHERE camera_id = 'CAM04' "
        f"AND local_date = DATE '{D3.isoformat()}'",
    )
    assert stats["sessions"].to_list() == [late.sessions.height]


def test_sessions_are_not_cut_at_local_midnight(site, duckdb_url):
    """A visit from 23:59:50 to 00:00:20 local belongs, whole, to the day it started."""
    from datetime import datetime

    from ingestion.schema import DETECTION_SCHEMA

    start = datetime.combine(D2, time(23, 59, 50), tzinfo=site.tz)
    ts = [start + timedelta(seconds=s) for s in range(0, 31)]
    zone = site.zones_for("CAM01")[0]
    x0, y0 = zone.polygon[0]
    frame = (
        pl.DataFrame(
            {
                "ts": ts,
                "camera_id": "CAM01",
                "frame_idx": list(range(31)),
                "track_id": 42,
                "class_id": 0,
                "confidence": 0.9,
                "x": x0 + 20,
                "y": y0 + 20,
                "w": 40,
                "h": 100,
                "zone_id": zone.id,
                "motion_score": 0.5,
                "worker_id": None,
                "batch_id": None,
            }
        )
        .cast(dict(DETECTION_SCHEMA))
        .with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    )
    with connect(duckdb_url, site) as wh:
        wh.setup()
        wh.append_batch("midnight", frame, source="test", camera_id="CAM01")
    # day 2 only: the visit's end is read past midnight
    build_marts(duckdb_url, D2, D3, site=site, report_audits=False)
    got = read(duckdb_url, "SELECT local_date, duration_seconds, status FROM analytics.sessions")
    assert got.to_dicts() == [{"local_date": D2, "duration_seconds": 30.0, "status": "active"}]


def test_sqlmesh_unit_tests_pass(duckdb_url, site):
    ctx = sqlmesh_context(duckdb_url, site)
    try:
        result = ctx.test()
    finally:
        ctx.close()
    assert result.testsRun >= 7
    assert result.wasSuccessful(), [str(t) for t, _ in result.failures + result.errors]
