"""The simulator: determinism, the exact raw shape, ground truth that matches an independent reference,
noise knobs that do what they say, and a world that behaves like a shift at the site."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from ingestion.schema import CAMERA_HEALTH_SCHEMA, DETECTION_SCHEMA, HEALTH_WINDOW_SECONDS
from ingestion.simulate import NOISE_PRESETS, SESSION_SCHEMA, NoiseConfig, sessionize, simulate
from ingestion.simulate.plan import staffing
from ingestion.site import Site, parse_site
from ingestion.zones import assign_zones

MONDAY = date(2025, 1, 13)
WEDNESDAY = date(2025, 1, 15)


def local_seconds(site: Site, ts: pl.Series, day: date) -> np.ndarray:
    """Seconds since the site-local midnight of `day`."""
    midnight = site.day_window(day)[0]
    return (ts - midnight).dt.total_microseconds().to_numpy() / 1e6


def hhmm_seconds(site: Site, day: date, at: time) -> float:
    return (site.local_datetime(day, at) - site.day_window(day)[0]).total_seconds()


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clean_day(site: Site):
    """One full workday of every camera, noise-free, at 2 fps (the world's behaviour does not need 5)."""
    return simulate(site, start=WEDNESDAY, days=1, fps=2.0, noise="none", seed=3)


@pytest.fixture(scope="module")
def week(site: Site):
    """Monday..Sunday, every camera, at 0.5 fps: enough to see days differ, cheap to generate."""
    return simulate(site, start=MONDAY, days=7, fps=0.5, noise="none", seed=11)


# ------------------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_frames_and_other_seed_differs(site):
    kwargs = dict(start=WEDNESDAY, cameras=["CAM01"], window=(time(8), time(8, 40)), noise="realistic")
    a, b = simulate(site, seed=5, **kwargs), simulate(site, seed=5, **kwargs)
    assert_frame_equal(a.detections, b.detections)
    assert_frame_equal(a.camera_health, b.camera_health)
    assert_frame_equal(a.sessions, b.sessions)
    c = simulate(site, seed=6, **kwargs)
    assert not a.detections.equals(c.detections)


def test_one_camera_day_alone_equals_its_slice_of_a_larger_run(site):
    kwargs = dict(fps=5.0, noise="realistic", seed=2, window=(time(9, 50), time(10, 30)))
    big = simulate(site, start=MONDAY, days=2, cameras=["CAM04", "CAM01"], **kwargs)
    alone = simulate(site, start=MONDAY + timedelta(days=1), days=1, cameras=["CAM04"], **kwargs)
    day_start, day_end = site.day_window(MONDAY + timedelta(days=1))

    def part(df: pl.DataFrame, ts: str) -> pl.DataFrame:
        return df.filter(
            (pl.col("camera_id") == "CAM04") & pl.col(ts).is_between(day_start, day_end, closed="left")
        )

    assert alone.detections.height > 10_000
    assert_frame_equal(alone.detections, part(big.detections, "ts"))
    assert_frame_equal(alone.camera_health, part(big.camera_health, "window_start"))
    assert_frame_equal(alone.sessions, part(big.sessions, "entry_time"))
    parts = list(big.camera_days())
    assert [(c, d) for c, d, _, _ in parts] == [
        ("CAM01", MONDAY),
        ("CAM01", MONDAY + timedelta(days=1)),
        ("CAM04", MONDAY),
        ("CAM04", MONDAY + timedelta(days=1)),
    ]
    assert_frame_equal(parts[3][2], alone.detections)


def test_a_window_is_a_slice_of_a_wider_window(site):
    wide = simulate(site, start=WEDNESDAY, cameras=["CAM02"], window=(time(9), time(11)), noise="realistic")
    narrow = simulate(
        site, start=WEDNESDAY, cameras=["CAM02"], window=(time(9, 55), time(10, 20)), noise="realistic"
    )
    lo, hi = site.local_datetime(WEDNESDAY, time(9, 55)), site.local_datetime(WEDNESDAY, time(10, 20))
    assert_frame_equal(
        narrow.detections, wide.detections.filter(pl.col("ts").is_between(lo, hi, closed="left"))
    )
    assert_frame_equal(
        narrow.camera_health,
        wide.camera_health.filter(pl.col("window_start").is_between(lo, hi, closed="left")),
    )


# ----------------------------------------------------------------------------------------------- shape


def test_detections_have_the_exact_raw_shape(site, clean_day):
    noisy = simulate(site, start=WEDNESDAY, window=(time(8), time(8, 30)), noise="realistic", fps=5.0)
    for df in (clean_day.detections, noisy.detections):
        assert df.schema == DETECTION_SCHEMA
        assert df.height > 0
        assert df["batch_id"].null_count() == df.height
        assert (df["class_id"] == 0).all()
        assert df.select(pl.struct("camera_id", "ts", "track_id").is_unique().all()).item()
        assert df.equals(df.sort("camera_id", "ts", "track_id"))
        assert df["confidence"].is_between(0, 1).all() and df["motion_score"].is_between(0, 1).all()
        for cam in site.cameras:
            rows = df.filter(pl.col("camera_id") == cam.id)
            assert (rows["x"] >= 0).all() and (rows["y"] >= 0).all()
            assert ((rows["x"] + rows["w"]) <= cam.width + 1e-3).all()
            assert ((rows["y"] + rows["h"]) <= cam.height + 1e-3).all()
            assert (rows["w"] > 0).all() and (rows["h"] > 0).all()
            # zone_id is where the box's bottom-centre stands.
            expected = assign_zones(site.zones_for(cam.id), rows.select("x", "y", "w", "h").to_numpy())
            assert rows["zone_id"].to_list() == list(expected)
    # Frames sit on the 1/fps grid from local midnight, and frame_idx counts them.
    df = noisy.detections
    secs = local_seconds(site, df["ts"], WEDNESDAY)
    assert np.allclose(secs, df["frame_idx"].to_numpy() / 5.0, atol=1e-6)
    real = df.filter(pl.col("worker_id").is_not_null())
    assert real["worker_id"].str.contains(r"^CAM0\d-W\d\d$").all()
    assert (real["confidence"] >= 0.6).all()


def test_camera_health_has_one_row_per_camera_per_10s(site, clean_day):
    h = clean_day.camera_health
    assert h.schema == CAMERA_HEALTH_SCHEMA
    assert h.height == len(site.cameras) * 24 * 3600 // HEALTH_WINDOW_SECONDS
    assert (h["frames_read"] == 2 * HEALTH_WINDOW_SECONDS).all()
    assert (h["frames_processed"] == h["frames_read"]).all()
    assert (h["frames_dropped"] == 0).all() and (h["decode_errors"] == 0).all()
    assert (h["latency_ms_p95"] >= h["latency_ms_mean"]).all()
    assert h.select(pl.struct("camera_id", "window_start").is_unique().all()).item()


def test_sessions_have_the_analytics_columns(clean_day):
    s = clean_day.sessions
    assert s.schema == SESSION_SCHEMA
    assert s["session_id"].is_unique().all()
    assert s.height > 200


# ------------------------------------------------------------------------------------------ ground truth


def reference_sessions(site: Site, detections: pl.DataFrame, day: date) -> pl.DataFrame:
    """The session rules of COMMON.md, written as plainly as possible, one sample at a time."""
    th = site.thresholds
    gap = timedelta(seconds=th.session_gap_seconds)
    blocks = site.index_timeline(day)
    out = []
    for cam_rows in detections.partition_by("camera_id"):
        camera_id = cam_rows["camera_id"][0]
        camera_last = cam_rows["ts"].max()
        tracks: dict[int, list[dict]] = defaultdict(list)
        for r in cam_rows.sort("track_id", "ts").iter_rows(named=True):
            tracks[r["track_id"]].append(r)
        for track_id, rows in tracks.items():
            last_seen = rows[-1]["ts"]
            visits: list[dict] = []
            prev = None
            for r in rows:
                if r["zone_id"] is None:
                    continue
                if prev is None or r["zone_id"] != prev["zone_id"] or r["ts"] - prev["ts"] > gap:
                    visits.append(
                        {
                            "zone_id": r["zone_id"],
                            "worker_id": r["worker_id"],
                            "entry": r["ts"],
                            "exit": r["ts"],
                            "active": 0.0,
                            "idle": 0.0,
                        }
                    )
                else:
                    dt = min(r["ts"] - prev["ts"], gap).total_seconds()
                    key = "active" if prev["motion_score"] >= th.idle_motion_score else "idle"
                    visits[-1][key] += dt
                    visits[-1]["exit"] = r["ts"]
                prev = r
            for v in visits:
                duration = (v["exit"] - v["entry"]).total_seconds()
                if duration < th.min_session_seconds:
                    continue
                if last_seen > v["exit"]:
                    status = "completed"
                elif camera_last - v["exit"] <= gap:
                    status = "active"
                else:
                    status = "interrupted"
                index = next(
                    (b.index_number for b in blocks if b.scheduled_start <= v["entry"] < b.scheduled_end),
                    None,
                )
                epoch_us = (v["entry"] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
                out.append(
                    {
                        "session_id": hashlib.md5(f"{camera_id}|{track_id}|{epoch_us}".encode()).hexdigest(),
                        "camera_id": camera_id,
                        "zone_id": v["zone_id"],
                        "track_id": track_id,
                        "worker_id": v["worker_id"],
                        "entry_time": v["entry"],
                        "exit_time": v["exit"],
                        "duration_seconds": duration,
                        "total_active_seconds": v["active"],
                        "total_idle_seconds": v["idle"],
                        "index_number": index,
                        "status": status,
                    }
                )
    return pl.DataFrame(out, schema=SESSION_SCHEMA)


@pytest.mark.parametrize("window", [(time(9, 52), time(10, 4)), (time(16, 58), time(17, 6))])
def test_ground_truth_matches_a_plain_python_reference(site, window):
    """Windows that cut visits at both ends (statuses active/interrupted), cross a break and an index
    boundary, and the end of the day."""
    sim = simulate(site, start=WEDNESDAY, window=window, fps=5.0, noise="none", seed=4)
    assert sim.detections.height > 5_000
    expected = reference_sessions(site, sim.detections, WEDNESDAY).sort("session_id")
    got = sim.sessions.sort("session_id")
    assert got.height >= 10
    assert_frame_equal(got, expected, check_exact=False, abs_tol=1e-6)


def test_ground_truth_comes_from_the_clean_world_whatever_the_noise(site):
    kwargs = dict(start=WEDNESDAY, cameras=["CAM03"], window=(time(8), time(9)), seed=8)
    clean, noisy = simulate(site, noise="none", **kwargs), simulate(site, noise="realistic", **kwargs)
    assert not clean.detections.equals(noisy.detections)
    assert_frame_equal(clean.sessions, noisy.sessions)


def test_sessions_are_consistent(site, clean_day):
    s = clean_day.sessions
    th = site.thresholds
    assert (s["duration_seconds"] >= th.min_session_seconds).all()
    assert np.allclose(s["total_active_seconds"] + s["total_idle_seconds"], s["duration_seconds"], atol=1e-6)
    assert ((s["exit_time"] - s["entry_time"]).dt.total_microseconds() / 1e6 == s["duration_seconds"]).all()
    # Per track, visits never overlap.
    ordered = s.sort("camera_id", "track_id", "entry_time")
    overlap = ordered.filter(
        (pl.col("camera_id") == pl.col("camera_id").shift(1))
        & (pl.col("track_id") == pl.col("track_id").shift(1))
        & (pl.col("entry_time") <= pl.col("exit_time").shift(1))
    )
    assert overlap.height == 0
    # The whole day is sessionized: statuses say every track was seen leaving.
    assert set(s["status"]) == {"completed"}
    assert s["worker_id"].null_count() == 0
    working = s.filter(pl.col("index_number").is_not_null())
    assert working["index_number"].is_between(1, site.schedule.indices).all()
    assert set(working["index_number"]) == set(range(1, site.schedule.indices + 1))
    # Idle time exists, some of it in single spells longer than the excessive-idle threshold.
    assert s["total_idle_seconds"].sum() > 0.05 * s["duration_seconds"].sum()


def test_motion_score_separates_active_from_idle(site, clean_day):
    thr = site.thresholds.idle_motion_score
    m = clean_day.detections["motion_score"].to_numpy()
    idle, active = m[m < thr], m[m >= thr]
    assert idle.max() <= 0.5 * thr + 1e-6  # idle: clearly below the threshold
    assert active.min() >= thr + 0.2 * (1 - thr)  # active and walking: clearly above
    assert 0.05 < len(idle) / len(m) < 0.5
    # People walking (moving from frame to frame) are never idle.
    df = clean_day.detections.sort("camera_id", "track_id", "ts").with_columns(
        step=((pl.col("x").diff() ** 2 + pl.col("y").diff() ** 2).sqrt()).over("camera_id", "track_id")
    )
    walking = df.filter(pl.col("step") > 20)  # > 40 px/s at 2 fps: far beyond a worker's sway
    assert walking.height > 1000
    assert (walking["motion_score"] >= thr).mean() > 0.98


def test_long_idle_spells_exceed_the_excessive_idle_threshold(site, clean_day):
    """Runs of idle samples per track: some last longer than excessive_idle_seconds, most do not."""
    thr = site.thresholds.idle_motion_score
    df = clean_day.detections.sort("camera_id", "track_id", "ts").with_columns(
        idle=pl.col("motion_score") < thr
    )
    runs = (
        df.with_columns(
            run=(pl.col("idle") != pl.col("idle").shift(1))
            .fill_null(True)
            .cum_sum()
            .over("camera_id", "track_id")
        )
        .filter("idle")
        .group_by("camera_id", "track_id", "run")
        .agg(seconds=(pl.col("ts").max() - pl.col("ts").min()).dt.total_seconds())
    )
    long_runs = (runs["seconds"] > site.thresholds.excessive_idle_seconds).sum()
    assert 5 <= long_runs < 0.5 * runs.height


# ------------------------------------------------------------------------------------------------ noise


def test_dropouts_remove_runs_shorter_than_the_session_gap(site):
    cfg = NoiseConfig(dropouts_per_minute=2.0, dropout_seconds=(0.5, 6.0))
    kwargs = dict(start=WEDNESDAY, cameras=["CAM01"], window=(time(8), time(9, 30)), fps=5.0, seed=1)
    clean, noisy = (
        simulate(site, noise="none", **kwargs).detections,
        simulate(site, noise=cfg, **kwargs).detections,
    )
    keys = ["camera_id", "ts", "track_id"]
    # Only removals: every noisy row is the clean row, unchanged.
    assert noisy.join(clean, on=keys, how="anti").height == 0
    assert_frame_equal(noisy, clean.join(noisy.select(keys), on=keys, how="semi"))
    missing = 1 - noisy.height / clean.height
    expected = 2.0 * 3.25 / 60  # runs per second x mean run length
    assert 0.5 * expected < missing < 1.5 * expected
    gaps = (
        noisy.sort("track_id", "ts")
        .group_by("track_id")
        .agg(gap=pl.col("ts").diff().dt.total_microseconds().max() / 1e6)
    )
    assert gaps["gap"].max() < site.thresholds.session_gap_seconds
    assert gaps["gap"].max() > 3.0  # real runs, not single frames


def test_id_switches_continue_a_track_under_a_new_id(site):
    kwargs = dict(start=WEDNESDAY, window=(time(8), time(12)), fps=1.0, seed=9)
    clean = simulate(site, noise="none", **kwargs).detections
    noisy = simulate(site, noise=NoiseConfig(id_switch_probability=0.3), **kwargs).detections
    assert noisy.height == clean.height
    # A person is in one place at a time, so (camera, ts, worker) pairs each clean row with its noisy twin.
    joined = clean.join(
        noisy.select("camera_id", "ts", "worker_id", new_id="track_id"),
        on=["camera_id", "ts", "worker_id"],
        how="inner",
    ).sort("camera_id", "track_id", "ts")
    assert joined.height == clean.height
    per_track = joined.group_by("camera_id", "track_id", maintain_order=True).agg(
        switched=(pl.col("new_id") != pl.col("track_id")).any(),
        ordered=((pl.col("new_id") != pl.col("track_id")).cast(pl.Int8).diff().fill_null(0) >= 0).all(),
    )
    share = per_track["switched"].mean()
    n = per_track.height
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    assert per_track["ordered"].all()  # old id first, new id from the switch on, never back
    # The realistic preset fragments tracks at MOT17's rates instead (tests/test_simulator_realism.py).
    assert NOISE_PRESETS["realistic"].id_switches_per_minute > 0


def test_bbox_jitter_has_the_configured_spread(site):
    kwargs = dict(start=WEDNESDAY, cameras=["CAM02"], window=(time(8, 30), time(9)), seed=2)
    clean = simulate(site, noise="none", **kwargs).detections
    noisy = simulate(site, noise=NoiseConfig(bbox_jitter_px=4.0), **kwargs).detections
    assert noisy.height == clean.height
    cam = site.camera("CAM02")
    inner = (clean["x"] > 20) & (clean["x"] + clean["w"] < cam.width - 20) & (clean["y"] > 20)
    dx = (noisy["x"] - clean["x"]).filter(inner).to_numpy()
    dy = (noisy["y"] - clean["y"]).filter(inner).to_numpy()
    assert abs(dx.std() - 4.0) < 0.2 and abs(dy.std() - 4.0) < 0.2
    assert abs(dx.mean()) < 0.2


def test_false_positives_are_short_low_confidence_and_counted(site):
    cfg = NoiseConfig(false_positives_per_hour=120.0)
    sim = simulate(site, start=date(2025, 1, 18), cameras=["CAM01"], fps=5.0, noise=cfg, seed=3)  # a Saturday
    fp = sim.detections.filter(pl.col("worker_id").is_null())
    per_track = fp.group_by("track_id").agg(
        n=pl.len(), span=(pl.col("ts").max() - pl.col("ts").min()).dt.total_seconds(fractional=True)
    )
    expected = 120.0 * 24
    assert abs(per_track.height - expected) < 4 * np.sqrt(expected)
    assert (per_track["span"] < site.thresholds.min_session_seconds / 2).all()
    assert fp["confidence"].is_between(*cfg.false_positive_confidence).all()


def test_camera_outage_stops_frames_and_detections(site):
    cfg = NoiseConfig(outages=((time(9), time(9, 30)),), outage_cameras=("CAM01",))
    sim = simulate(
        site, start=WEDNESDAY, cameras=["CAM01", "CAM02"], window=(time(8, 30), time(10)), noise=cfg
    )
    lo, hi = site.local_datetime(WEDNESDAY, time(9)), site.local_datetime(WEDNESDAY, time(9, 30))
    during = pl.col("ts").is_between(lo, hi, closed="left")
    assert sim.detections.filter(during & (pl.col("camera_id") == "CAM01")).height == 0
    assert sim.detections.filter(during & (pl.col("camera_id") == "CAM02")).height > 1000
    h = sim.camera_health.with_columns(down=pl.col("window_start").is_between(lo, hi, closed="left"))
    down = h.filter(pl.col("down") & (pl.col("camera_id") == "CAM01"))
    assert (
        down.height == 180
        and (down["frames_read"] == 0).all()
        and down["latency_ms_mean"].null_count() == 180
    )
    assert (h.filter(~pl.col("down") | (pl.col("camera_id") == "CAM02"))["frames_read"] == 50).all()
    # The truth is still the world: people kept working while the camera was down.
    assert (
        sim.sessions.filter(pl.col("camera_id") == "CAM01")
        .filter(pl.col("entry_time").is_between(lo, hi))
        .height
        > 0
    )


def test_realistic_dropouts_stay_below_the_session_gap(site):
    assert NOISE_PRESETS["realistic"].dropout_seconds[1] < site.thresholds.session_gap_seconds
    assert NOISE_PRESETS["none"].is_clean


def test_window_restricts_detections_health_and_truth(site):
    window = (time(13, 15), time(13, 45))
    sim = simulate(site, start=MONDAY, days=2, cameras=["CAM03"], window=window, noise="realistic")
    for day in (MONDAY, MONDAY + timedelta(days=1)):
        lo, hi = site.local_datetime(day, window[0]), site.local_datetime(day, window[1])
        det = sim.detections.filter(pl.col("ts").is_between(*site.day_window(day), closed="left"))
        assert det.height > 0 and det["ts"].min() >= lo and det["ts"].max() < hi
        health = sim.camera_health.filter(
            pl.col("window_start").is_between(*site.day_window(day), closed="left")
        )
        assert health.height == 180 and health["window_start"].min() == lo
        sessions = sim.sessions.filter(pl.col("entry_time").is_between(*site.day_window(day), closed="left"))
        assert sessions.height > 0
        assert sessions["entry_time"].min() >= lo and sessions["exit_time"].max() < hi


# --------------------------------------------------------------------------------------------- the world


def test_crew_size_follows_the_zones(site, week):
    workday = week.detections.filter(pl.col("ts").is_between(*site.day_window(MONDAY), closed="left"))
    for cam in site.cameras:
        workers = workday.filter(pl.col("camera_id") == cam.id)["worker_id"].n_unique()
        assert workers == len(staffing(site.zones_for(cam.id), None))


def test_workers_arrive_around_work_start_and_most_leave_at_work_end(site, week):
    leaves = []
    for offset in range(5):
        day = MONDAY + timedelta(days=offset)
        df = week.detections.filter(pl.col("ts").is_between(*site.day_window(day), closed="left"))
        per_worker = df.group_by("camera_id", "worker_id").agg(
            first=pl.col("ts").min(), last=pl.col("ts").max()
        )
        start = site.local_datetime(day, site.schedule.work_start)
        end = site.local_datetime(day, site.schedule.work_end)
        arrive = (per_worker["first"] - start).dt.total_seconds()
        assert arrive.is_between(-25 * 60, 15 * 60).all()
        leaves.extend((per_worker["last"] - end).dt.total_seconds().to_list())
    leave = np.array(leaves)
    assert len(leave) == 5 * sum(len(staffing(site.zones_for(c.id), None)) for c in site.cameras)
    assert ((leave >= -5 * 60) & (leave <= 10 * 60)).mean() > 0.75  # most leave at work_end
    assert 0.03 < (leave > 25 * 60).mean() < 0.3  # a few work on (30-90 minutes)
    assert leave.max() < 95 * 60


def test_some_workdays_have_restricted_visits_and_after_hours_work(site, week):
    restricted = {z.id for z in site.zones if z.type == "restricted"}
    days_with_restricted, days_after_hours = 0, 0
    for offset in range(5):
        day = MONDAY + timedelta(days=offset)
        df = week.detections.filter(pl.col("ts").is_between(*site.day_window(day), closed="left"))
        if df.filter(pl.col("zone_id").is_in(restricted)).height > 0:
            days_with_restricted += 1
        late = site.local_datetime(day, site.schedule.work_end) + timedelta(minutes=20)
        if df.filter(pl.col("ts") > late).height > 0:
            days_after_hours += 1
    assert days_with_restricted >= 2 and days_after_hours >= 2
    # Restricted visits are brief.
    visits = week.sessions.filter(pl.col("zone_id").is_in(restricted))
    assert visits.height > 0 and visits["duration_seconds"].max() < 120


def test_breaks_empty_the_work_zones(site, week):
    work_zones = {z.id for z in site.zones if z.type == "work_area"}
    for offset in range(5):
        day = MONDAY + timedelta(days=offset)
        for brk in site.schedule.breaks:
            start = site.local_datetime(day, brk.start)
            lo, hi = (
                start + timedelta(seconds=90),
                start + timedelta(minutes=brk.minutes) - timedelta(seconds=90),
            )
            during = week.detections.filter(pl.col("ts").is_between(lo, hi))
            assert during.filter(pl.col("zone_id").is_in(work_zones)).height == 0
            before = week.detections.filter(pl.col("ts").is_between(start - timedelta(minutes=10), start))
            assert before.filter(pl.col("zone_id").is_in(work_zones)).height > 100
    # Cameras with a break area see people there during the break.
    break_zones = {z.id for z in site.zones if z.type == "break_area"}
    brk = site.schedule.breaks[0]
    mid = site.local_datetime(MONDAY, brk.start) + timedelta(minutes=brk.minutes / 2)
    at_mid = week.detections.filter(pl.col("ts").is_between(mid - timedelta(seconds=30), mid))
    assert at_mid.filter(pl.col("zone_id").is_in(break_zones)).height > 0


def test_non_workdays_are_quiet(site, week):
    per_day = week.detections.group_by(
        pl.col("ts").dt.convert_time_zone(site.timezone).dt.date().alias("day")
    ).len()
    counts = dict(zip(per_day["day"].to_list(), per_day["len"].to_list(), strict=True))
    busiest_weekend = max(counts.get(MONDAY + timedelta(days=d), 0) for d in (5, 6))
    quietest_workday = min(counts[MONDAY + timedelta(days=d)] for d in range(5))
    assert busiest_weekend < 0.05 * quietest_workday
    weekend = week.detections.filter(pl.col("ts") >= site.day_window(MONDAY + timedelta(days=5))[0])
    visitors = weekend.group_by("camera_id", pl.col("ts").dt.convert_time_zone(site.timezone).dt.date()).agg(
        pl.col("worker_id").n_unique()
    )
    assert (visitors["worker_id"] <= 1).all()  # at most a lone visitor per camera-day
    # Health is still reported on quiet days: zero detections is not zero health.
    health = week.camera_health.filter(
        pl.col("window_start") >= site.day_window(MONDAY + timedelta(days=5))[0]
    )
    assert health.height == 2 * len(site.cameras) * 8640 and (health["frames_read"] > 0).all()


def test_scale_matches_the_reference_rate(site, clean_day):
    """About 7-8 people in view per camera on average over the working day, i.e. ~1.2M rows per camera-day
    at 5 fps (the 10 cameras x 1 day ~ 13M rows reference)."""
    rows_per_camera_day_at_5fps = clean_day.detections.height / len(site.cameras) * 5.0 / 2.0
    assert 0.9e6 < rows_per_camera_day_at_5fps < 1.5e6


# -------------------------------------------------------------------------------------------- bad input


def test_bad_arguments_are_named(site):
    with pytest.raises(ValueError, match="unknown camera.*CAM99"):
        simulate(site, cameras=["CAM99"])
    with pytest.raises(ValueError, match="unknown noise preset 'loud'.*none, realistic"):
        simulate(site, noise="loud")
    with pytest.raises(ValueError, match="must end after it starts"):
        simulate(site, window=(time(10), time(9)))
    with pytest.raises(ValueError, match="days must be at least 1"):
        simulate(site, days=0)
    with pytest.raises(ValueError, match="id_switch_probability"):
        NoiseConfig(id_switch_probability=1.5)


def test_visits_cut_by_a_window_are_active_only_at_the_end_of_the_data(site):
    """Landed together, day 1's visits cut by the window end are followed by day 2's data: interrupted."""
    sim = simulate(
        site, start=WEDNESDAY, days=2, cameras=["CAM01"], window=(time(9, 30), time(9, 45)), seed=4
    )
    first, second = [p.sessions for p in sim.parts]
    assert (first["status"] == "active").sum() > 0 and (second["status"] == "active").sum() > 0
    combined = sim.sessions
    day1 = combined.filter(pl.col("entry_time") < site.day_window(WEDNESDAY)[1])
    assert_frame_equal(day1.drop("status"), first.drop("status"))
    assert day1["status"].to_list() == ["interrupted" if s == "active" else s for s in first["status"]]
    assert_frame_equal(combined.filter(pl.col("entry_time") >= site.day_window(WEDNESDAY)[1]), second)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from([0.2, 1.0, 5.0, 9.8, 10.0, 10.2, 31.0]),
                st.sampled_from([None, "Z01", "Z02"]),
                st.sampled_from([0.0, 0.05, 0.15, 0.6]),
            ),
            min_size=1,
            max_size=25,
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([time(7, 59, 50), time(9, 53), time(16, 59, 30)]),
)
# A visit that ends exactly session_gap_seconds before the camera's last sample is still `active`.
@example(
    [[(1.0, "Z01", 0.6), (5.0, "Z01", 0.6)], [(1.0, None, 0.0), (5.0, None, 0.0), (10.0, None, 0.0)]],
    time(9, 53),
)
def test_numpy_sessionizer_matches_the_reference_on_edge_cases(site, tracks, start_at):
    """Gaps of exactly session_gap_seconds, motion exactly at the threshold, zone flips, excursions to no
    zone, visits starting just before and after index boundaries and the end of work."""
    t0 = site.local_datetime(WEDNESDAY, start_at)
    rows = []
    for n, steps in enumerate(tracks):
        ts = t0
        for dt, zone, motion in steps:
            ts += timedelta(seconds=dt)
            rows.append(
                {
                    "ts": ts,
                    "camera_id": "CAM01",
                    "track_id": 100 + n,
                    "zone_id": zone,
                    "motion_score": motion,
                    "worker_id": f"CAM01-W{n + 1:02d}",
                }
            )
    det = pl.DataFrame(
        rows,
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "camera_id": pl.String,
            "track_id": pl.Int64,
            "zone_id": pl.String,
            "motion_score": pl.Float32,
            "worker_id": pl.String,
        },
    )
    det = det.sort("track_id", "ts")
    zone_ids = ["Z01", "Z02"]
    got = sessionize(
        site,
        "CAM01",
        WEDNESDAY,
        det["track_id"].to_numpy(),
        det["ts"].dt.epoch("us").to_numpy(),
        np.array([-1 if z is None else zone_ids.index(z) for z in det["zone_id"]], dtype=np.int32),
        det["motion_score"].to_numpy(),
        det["track_id"].to_numpy() - 100,
        zone_ids,
        [f"CAM01-W{n + 1:02d}" for n in range(len(tracks))],
    )
    expected = reference_sessions(site, det, WEDNESDAY)
    assert_frame_equal(got.sort("session_id"), expected.sort("session_id"), check_exact=False, abs_tol=1e-6)


def test_a_daylight_saving_day_keeps_local_times(site):
    """Frames are counted from local midnight in elapsed time, so a 23-hour day has 23 hours of health and
    the shift still starts at 08:00 on the wall clock."""
    doc = yaml.safe_load(Path(site.path).read_text())
    doc["site"]["timezone"] = "Europe/Berlin"
    doc["schedule"]["workdays"] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    berlin = parse_site(doc, "berlin.yaml")
    spring_forward = date(2025, 3, 30)
    sim = simulate(berlin, start=spring_forward, cameras=["CAM01"], fps=0.5, seed=1)
    assert sim.camera_health.height == 23 * 3600 // HEALTH_WINDOW_SECONDS
    local = sim.detections["ts"].dt.convert_time_zone("Europe/Berlin")
    first = local.min()
    assert time(7, 35) <= first.time() <= time(8, 15) and first.date() == spring_forward
    secs = local_seconds(berlin, sim.detections["ts"], spring_forward)
    assert np.allclose(secs, sim.detections["frame_idx"].to_numpy() / 0.5)
    assert sim.sessions["index_number"].is_not_null().any()
