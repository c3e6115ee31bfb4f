"""Index completion, per-worker marts and week/month rollups on DuckDB and PostgreSQL, against values
computed here from the simulator's ground truth and the constructed detections (tests/workforce_data.py)."""

from __future__ import annotations

import shutil
from datetime import date, time, timedelta

import polars as pl
import pytest
from test_transforms import read
from workforce_data import (
    CONSTRUCTED_DAY,
    OVERRIDE_DAY,
    REGISTRY,
    REGULAR_DAY,
    UNREGISTERED,
    constructed_day,
)

from ingestion.rollups import period_end, period_start
from ingestion.transform import build_marts
from ingestion.warehouse import connect

# Module fixtures build the marts on both backends (PostgreSQL included): the whole-pipeline tier.
pytestmark = [pytest.mark.pipeline, pytest.mark.postgres]

BACKENDS = ("duckdb", "postgres")


@pytest.mark.parametrize("backend", BACKENDS)
def test_builds_pass_their_audits(workforce, backend):
    for result in workforce.builds[backend]:
        assert result.audits_passed, [a for a in result.audits if not a.passed]
        assert result.rows["analytics.worker_daily"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_override_day_builds_its_own_blocks_and_working_time(workforce, backend):
    site, url = workforce.site, workforce.urls[backend]
    blocks = site.index_timeline(OVERRIDE_DAY)
    assert len(blocks) == 4
    got = read(
        url,
        f"SELECT index_number, scheduled_start, scheduled_end FROM analytics.index_records "
        f"WHERE date = '{OVERRIDE_DAY}' ORDER BY index_number",
    )
    assert got.rows() == [(b.index_number, b.scheduled_start, b.scheduled_end) for b in blocks]
    # The transforms' working time follows the override too (08:00-16:00 less a 60 min break).
    scheduled = read(
        url,
        f"SELECT DISTINCT scheduled_seconds FROM analytics.daily_zone_stats "
        f"WHERE local_date = '{OVERRIDE_DAY}'",
    )["scheduled_seconds"].to_list()
    assert scheduled == [pytest.approx(7 * 3600)]
    regular = read(url, f"SELECT COUNT(*) AS n FROM analytics.index_records WHERE date = '{REGULAR_DAY}'")
    assert regular["n"][0] == site.schedule.indices


@pytest.mark.parametrize("backend", BACKENDS)
def test_delayed_and_overrun_blocks_from_constructed_detections(workforce, backend):
    site, url = workforce.site, workforce.urls[backend]
    blocks = site.index_timeline(CONSTRUCTED_DAY)
    got = {
        r["index_number"]: r
        for r in read(
            url, f"SELECT * FROM analytics.index_records WHERE date = '{CONSTRUCTED_DAY}'"
        ).iter_rows(named=True)
    }
    first, last = got[1], got[len(blocks)]
    # Track 1 starts at 08:10: 600 s after the block, past the 300 s grace.
    assert first["completion_status"] == "delayed"
    assert first["actual_start"] == site.local_datetime(CONSTRUCTED_DAY, time(8, 10))
    assert first["start_delay_seconds"] == pytest.approx(600)
    # Track 2 stays until 17:06: the last block's work ends 6 minutes after its scheduled end, unclipped.
    end_of_work = site.local_datetime(CONSTRUCTED_DAY, time(17, 6))
    assert last["actual_end"] == end_of_work and last["scheduled_end"] < end_of_work
    assert last["overrun_seconds"] == pytest.approx(360)
    assert last["completion_status"] == "overrun"
    # Blocks fully worked by track 1 are on time; blocks nobody worked in are incomplete.
    for b in blocks:
        row = got[b.index_number]
        worked_until = site.local_datetime(CONSTRUCTED_DAY, time(10))
        if 1 < b.index_number and b.scheduled_end <= worked_until:
            assert row["completion_status"] == "on_time", row
            assert row["overrun_seconds"] == 0
        if b.scheduled_start >= site.local_datetime(
            CONSTRUCTED_DAY, time(10, 15)
        ) and b.scheduled_end <= site.local_datetime(CONSTRUCTED_DAY, time(16)):
            assert row["completion_status"] == "incomplete" and row["actual_end"] is None, row


def _truth_per_worker(workforce) -> pl.DataFrame:
    """Per site-local day and worker, from the simulator's ground-truth sessions (no SQL involved)."""
    site = workforce.site
    assigned = {w["worker_id"]: set(w.get("zones", [])) for w in REGISTRY}
    truth = workforce.sim.sessions.filter(pl.col("worker_id").is_not_null()).with_columns(
        local_date=pl.col("entry_time").dt.convert_time_zone(site.timezone).dt.date(),
        assigned=pl.struct("worker_id", "zone_id").map_elements(
            lambda r: r["zone_id"] in assigned.get(r["worker_id"], set()), return_dtype=pl.Boolean
        ),
    )
    return truth.group_by("local_date", "worker_id").agg(
        sessions=pl.len(),
        presence=pl.col("duration_seconds").sum(),
        active=pl.col("total_active_seconds").sum(),
        idle=pl.col("total_idle_seconds").sum(),
        assigned=(pl.col("duration_seconds") * pl.col("assigned")).sum(),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_daily_equals_ground_truth(workforce, backend):
    url = workforce.urls[backend]
    truth = _truth_per_worker(workforce)
    got = read(url, "SELECT * FROM analytics.worker_daily")
    sim_days = got.filter(pl.col("local_date") < CONSTRUCTED_DAY)
    both = truth.join(sim_days, on=["local_date", "worker_id"], how="full", coalesce=True)
    assert both.filter(pl.col("sessions").is_null() | pl.col("sessions_right").is_null()).is_empty(), both
    assert (both["sessions"] == both["sessions_right"]).all()
    for row in both.iter_rows(named=True):
        tolerance = row["sessions"] * 1.0 + 1e-6  # each exit may differ by one frame (1 s at 1 fps)
        assert row["presence_seconds"] == pytest.approx(row["presence"], abs=tolerance), row
        assert row["active_seconds"] == pytest.approx(row["active"], abs=tolerance + 0.01 * row["active"])
        assert row["idle_seconds"] == pytest.approx(row["idle"], abs=tolerance + 0.01 * row["idle"])
        registered = {w["worker_id"]: w for w in REGISTRY}.get(row["worker_id"])
        assert row["registered"] is (registered is not None)
        assert row["worker_name"] == (registered["name"] if registered else None)
        if registered and registered.get("zones"):
            assert row["assigned_seconds"] == pytest.approx(row["assigned"], abs=tolerance)
            elsewhere = row["presence_seconds"] - row["assigned_seconds"]
            assert row["elsewhere_seconds"] == pytest.approx(elsewhere)
        else:
            assert row["assigned_seconds"] is None and row["elsewhere_seconds"] is None
    # The constructed day's worker is unknown to the registry: kept and reported, not dropped.
    unknown = got.filter(pl.col("local_date") == CONSTRUCTED_DAY).row(0, named=True)
    assert unknown["worker_id"] == UNREGISTERED and unknown["registered"] is False
    assert unknown["sessions"] == 2
    assert unknown["presence_seconds"] == pytest.approx((110 + 66) * 60)


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_index_splits_each_worker_over_blocks(workforce, backend):
    site, url = workforce.site, workforce.urls[backend]
    got = read(url, f"SELECT * FROM analytics.worker_index WHERE date = '{REGULAR_DAY}'")
    truth = workforce.sim.sessions.filter(pl.col("worker_id").is_not_null())
    for block in site.index_timeline(REGULAR_DAY):
        start, end = block.scheduled_start, block.scheduled_end
        inside = truth.filter((pl.col("entry_time") < end) & (pl.col("exit_time") > start))
        part = (
            pl.min_horizontal("exit_time", pl.lit(end)) - pl.max_horizontal("entry_time", pl.lit(start))
        ).dt.total_microseconds() / 1e6
        expected = inside.group_by("worker_id").agg(
            presence=part.sum(),
            active=(pl.col("total_active_seconds") * part / pl.col("duration_seconds")).sum(),
        )
        rows = got.filter(pl.col("index_number") == block.index_number)
        joined = expected.join(rows, on="worker_id", how="full", coalesce=True)
        assert joined.filter(pl.col("presence").is_null() | pl.col("presence_seconds").is_null()).is_empty()
        for r in joined.iter_rows(named=True):
            assert r["presence_seconds"] == pytest.approx(r["presence"], abs=r["sessions"] * 1.0 + 1e-6)
            tolerance = r["sessions"] * 1.0 + 0.01 * r["active"]
            assert r["active_seconds"] == pytest.approx(r["active"], abs=tolerance)


def _period_sums(daily: pl.DataFrame, key: str, grain: str, sums: list[str]) -> pl.DataFrame:
    return (
        daily.with_columns(
            period_start=pl.col("local_date").map_elements(
                lambda d: period_start(grain, d), return_dtype=pl.Date
            )
        )
        .group_by("period_start", key)
        .agg([pl.col(c).sum() for c in sums] + [pl.len().alias("days")])
    )


def _assert_rollups_equal_days(url: str) -> None:
    for table, daily_table, key, sums in (
        (
            "analytics.zone_period_stats",
            "analytics.daily_zone_stats",
            "zone_id",
            [
                "sessions",
                "total_dwell_seconds",
                "total_active_seconds",
                "total_idle_seconds",
                "occupied_seconds",
                "scheduled_seconds",
                "anomalies",
            ],
        ),
        (
            "analytics.camera_period_stats",
            "analytics.daily_camera_stats",
            "camera_id",
            [
                "detections",
                "frames_read",
                "sessions",
                "total_active_seconds",
                "total_idle_seconds",
                "anomalies",
            ],
        ),
    ):
        daily = read(url, f"SELECT * FROM {daily_table}")
        rollups = read(url, f"SELECT * FROM {table}")
        for grain in ("week", "month"):
            expected = _period_sums(daily, key, grain, sums)
            got = rollups.filter(pl.col("grain") == grain)
            assert got.height == expected.height, (table, grain)
            joined = expected.join(got, on=["period_start", key], how="left", suffix="_r")
            for c in [*sums, "days"]:
                diff = (joined[c] - joined[f"{c}_r"]).abs()
                assert (diff <= 1e-6 * joined[c].abs() + 1e-6).all(), (table, c)
            assert (
                got["period_end"]
                == got["period_start"].map_elements(lambda d, g=grain: period_end(g, d), return_dtype=pl.Date)
            ).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_week_and_month_rollups_equal_the_sum_of_their_days(workforce, backend):
    url = workforce.urls[backend]
    rollups = read(url, "SELECT grain, period_start FROM analytics.zone_period_stats")
    # Jan 30-31 and Feb 3: two ISO weeks and two months.
    weeks = set(rollups.filter(pl.col("grain") == "week")["period_start"])
    months = set(rollups.filter(pl.col("grain") == "month")["period_start"])
    assert weeks == {date(2025, 1, 27), date(2025, 2, 3)} and months == {date(2025, 1, 1), date(2025, 2, 1)}
    _assert_rollups_equal_days(url)


def test_a_restated_day_restates_its_week_and_month(workforce, tmp_path):
    """On a copy of the DuckDB warehouse: Feb 3 re-landed without track 2 and restated."""
    site = workforce.site
    copy_path = tmp_path / "warehouse.duckdb"  # same file name: DuckDB's catalog is named after it
    shutil.copy(workforce.urls["duckdb"].removeprefix("duckdb:///"), copy_path)
    url = f"duckdb:///{copy_path}"
    before = read(
        url,
        "SELECT * FROM analytics.zone_period_stats WHERE zone_id = 'Z05' AND period_start "
        f"= '{date(2025, 2, 1)}'",
    ).row(0, named=True)
    detections, health = constructed_day(site)
    with connect(url, site) as wh:
        wh.replace_partition(
            "CAM02",
            CONSTRUCTED_DAY,
            detections.filter(pl.col("track_id") == 1),
            source="detection_log",
            camera_health=health,
        )
    build_marts(
        url,
        CONSTRUCTED_DAY,
        CONSTRUCTED_DAY + timedelta(days=1),
        restate=True,
        site=site,
        report_audits=False,
    )
    after = read(
        url,
        "SELECT * FROM analytics.zone_period_stats WHERE zone_id = 'Z05' AND period_start "
        f"= '{date(2025, 2, 1)}'",
    ).row(0, named=True)
    assert after["sessions"] == before["sessions"] - 1
    assert after["total_dwell_seconds"] == pytest.approx(before["total_dwell_seconds"] - 66 * 60)
    _assert_rollups_equal_days(url)
