"""Stationary people stay tracked: a rendered worker walks in, stands perfectly still for 10 minutes (the
figure is drawn identically in every frame: no sway, no hands, no outline flicker) and walks out. Through
`sightline ingest video --detector motion` and `sightline transform`, that is one session in their zone,
with dwell and idle time within 5% of the simulator's ground truth.

Without a frozen background the still figure fades into MOG2's model within seconds, the track is lost
after the tracker's buffer and the session (and its idle time) ends there. Rendered small (320x180) at
2 fps to keep the 10 minutes fast. Below it, the two mechanisms on drawn frames: shadows dropped from
the presence mask, and a still person kept only by the frozen background."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from ingestion.detectors.foreground import ForegroundModel
from ingestion.detectors.motion import MotionDetector
from ingestion.simulate.render import render_stationary_worker
from ingestion.warehouse import connect
from orchestration.cli import main

DAY = date(2025, 1, 15)
FPS = 2.0


@pytest.mark.slow
def test_worker_standing_still_for_ten_minutes_is_one_session_with_its_idle_time(tmp_path, site):
    from ingestion.transform import build_marts

    scene = render_stationary_worker(
        site, tmp_path / "video", camera_id="CAM01", day=DAY, still_seconds=600, fps=FPS, scale=0.25
    )
    truth = scene.sessions
    assert truth.height == 1  # the truth: one visit of the zone, nearly all of it idle
    zone = truth["zone_id"][0]
    true_idle = truth["total_idle_seconds"][0]
    assert true_idle >= 600 - 1 / FPS

    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    (segment,) = scene.segments
    argv = ["ingest", "video", str(segment), "--camera", "CAM01", "--detector", "motion"]
    assert main([*argv, "--fps", str(FPS), "--warehouse", url]) == 0
    build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
    with connect(url, site) as wh:
        detected = wh.query(
            "SELECT zone_id, entry_time, exit_time, duration_seconds, total_idle_seconds "
            "FROM analytics.sessions WHERE camera_id = 'CAM01'"
        )
    in_zone = detected.filter(pl.col("zone_id") == zone)
    assert in_zone.height == 1, f"expected one session in {zone}, got:\n{detected}"
    dwell, idle = in_zone["duration_seconds"][0], in_zone["total_idle_seconds"][0]
    assert dwell == pytest.approx(truth["duration_seconds"][0], rel=0.05)
    assert idle == pytest.approx(true_idle, rel=0.05)
    # Nothing else is in view, so nothing else may be reported (no ghost where they stood).
    assert detected.height == in_zone.height


def _floor() -> np.ndarray:
    return np.full((180, 320, 3), (92, 96, 98), np.uint8)


def test_shadow_pixels_are_not_foreground_and_do_not_widen_the_blob():
    """A figure walks in with a shadow beside it (the floor darkened to 60%, same hue): the presence mask
    holds the figure and not the shadow, so the detected box is the figure's."""
    fg, det = ForegroundModel(5.0), MotionDetector(fps=5.0)
    rng = np.random.default_rng(4)
    for t in range(40):
        img = _floor()
        x = 40 + 3 * t
        img[60:140, x + 20 : x + 60] = (img[60:140, x + 20 : x + 60] * 0.6).astype(np.uint8)  # shadow
        img[60:140, x : x + 20] = rng.integers(0, 256, size=(80, 20, 3), dtype=np.uint8)  # figure
        mask = fg.apply(img)
        tracks = det.update(img, mask)
    assert (mask[62:138, x + 24 : x + 56] > 0).mean() < 0.05  # the shadow is background
    assert (mask[62:138, x + 2 : x + 18] > 0).mean() > 0.9  # the figure is foreground
    assert len(tracks) == 1
    assert tracks.xywh[0, 2] <= 24  # the figure's 20 px, not figure + shadow (60 px)


@pytest.mark.parametrize("freeze", [True, False])
def test_a_person_who_stops_stays_foreground_only_while_their_box_is_frozen(freeze):
    """Walks in, then stands perfectly still for 60 s at 5 fps (3x the 20 s history): with the pipeline's
    freeze (boxes of moved tracks) they stay one track with a motion score of ~0; without it they fade
    into the background and the track is lost."""
    fg, det = ForegroundModel(5.0), MotionDetector(fps=5.0)
    figure = np.random.default_rng(5).integers(0, 256, size=(80, 20, 3), dtype=np.uint8)
    live = np.empty((0, 4), np.float32)
    ids, motion = set(), []
    for t in range(25 + 300):
        img = _floor()
        x = 20 + 6 * min(t, 25)  # walks 150 px, then stops
        img[60:140, x : x + 20] = figure
        mask = fg.apply(img, freeze=live if freeze else None)
        tracks = det.update(img, mask)
        live = det.freeze_boxes(tracks)
        if t >= 25 + 50:  # 10 s after stopping
            ids.update(tracks.track_id.tolist())
            motion.extend(fg.motion_score(tracks.xywh, img).tolist())
            if freeze:
                assert len(tracks) == 1, f"frame {t}: {len(tracks)} tracks"
    if freeze:
        assert len(ids) == 1
        assert max(motion) < 0.05  # still: idle
    else:
        assert len(tracks) == 0


def still_minute_in_segments(site, tmp_path):
    """A worker standing still for 60 s, recorded in 20 s segments under tmp_path/video/CAM01."""
    return render_stationary_worker(
        site,
        tmp_path / "video",
        camera_id="CAM01",
        day=DAY,
        still_seconds=60,
        fps=FPS,
        scale=0.25,
        segment_seconds=20,
    )


def ingest_segments(tmp_path, site) -> str:
    """`sightline ingest segments` of tmp_path/video with `site`'s file into a fresh DuckDB; its URL."""
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    argv = ["ingest", "segments", str(tmp_path / "video"), "--cameras", "CAM01", "--detector", "motion"]
    assert main([*argv, "--fps", str(FPS), "--warehouse", url, "--site", site.path]) == 0
    return url


@pytest.mark.slow
@pytest.mark.pipeline
def test_still_worker_across_segment_cuts_keeps_one_track_and_one_session(tmp_path, site):
    """The recording is cut into 20 s segments while the worker stands still (issue 10). Each segment
    continues the previous one (`VideoPipeline.continues`): the background model and the tracks carry
    over, so the worker is one track and one session with their dwell and idle time. With a fresh
    background model and tracker per segment, the still figure is in the first frame of the next
    segment, becomes background, and the visit ends at the first cut (a new track appears only when they
    walk out)."""
    from ingestion.transform import build_marts

    scene = still_minute_in_segments(site, tmp_path)
    assert len(scene.segments) >= 4  # the still minute spans at least two cuts
    truth = scene.sessions
    assert truth.height == 1
    zone = truth["zone_id"][0]

    url = ingest_segments(tmp_path, site)
    with connect(url, site) as wh:
        tracks = wh.query(
            "SELECT track_id, MIN(ts) AS first_ts, MAX(ts) AS last_ts FROM raw.detections "
            "WHERE camera_id = 'CAM01' GROUP BY track_id"
        )
    # One track from entry to exit across every cut (a blip of a second where they step off the frozen
    # spot is not a visit: sessions drop it, min_session_seconds).
    long = tracks.filter((pl.col("last_ts") - pl.col("first_ts")).dt.total_seconds() >= 3)
    assert long.height == 1, f"expected one track across the cuts, got:\n{tracks}"
    build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
    with connect(url, site) as wh:
        detected = wh.query(
            "SELECT zone_id, duration_seconds, total_idle_seconds FROM analytics.sessions "
            "WHERE camera_id = 'CAM01'"
        )
    assert detected.height == 1 and detected["zone_id"][0] == zone, str(detected)
    assert detected["duration_seconds"][0] == pytest.approx(truth["duration_seconds"][0], rel=0.05)
    assert detected["total_idle_seconds"][0] == pytest.approx(truth["total_idle_seconds"][0], rel=0.05)


@pytest.mark.slow
@pytest.mark.pipeline
@pytest.mark.parametrize("empty_scene", [True, False])
def test_a_camera_started_while_a_worker_stands_still_sees_them_from_its_empty_scene(
    tmp_path, site, empty_scene
):
    """The recording starts 20 s into the visit, while the worker already stands perfectly still (a camera
    or the pipeline restarted mid-shift): a cold start. A fresh background model learns its first frame as
    the background, worker included, so they are not seen until they walk out. With the camera's
    `background_image` (a still of the empty scene, site.yaml) the model starts from the empty floor: the
    worker is foreground from the first frame and their track is kept (frozen background) until they
    leave, one session with their dwell and idle time from the start of the recording."""
    from ingestion.simulate.render import site_file_with_empty_scenes
    from ingestion.site import load_site
    from ingestion.transform import build_marts
    from ingestion.video.segments import segment_start_time

    scene = still_minute_in_segments(site, tmp_path)
    truth = scene.sessions
    assert truth.height == 1
    recording_start = segment_start_time(scene.segments[1], site)
    assert truth["entry_time"][0] < recording_start < truth["exit_time"][0]
    scene.segments[0].unlink()  # the camera was not recording then
    site_path = tmp_path / "site.yaml"
    if empty_scene:
        site = load_site(site_file_with_empty_scenes(site, scene.empty_scenes, site_path))
    url = ingest_segments(tmp_path, site)
    build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
    with connect(url, site) as wh:
        detected = wh.query(
            "SELECT zone_id, entry_time, duration_seconds, total_idle_seconds FROM analytics.sessions "
            "WHERE camera_id = 'CAM01'"
        )
    seen = (truth["exit_time"][0] - recording_start).total_seconds()
    seen_idle = truth["total_idle_seconds"][0] - (recording_start - truth["entry_time"][0]).total_seconds()
    if not empty_scene:
        # The still worker is background: at most the walk out is seen (a short visit or none).
        assert detected["duration_seconds"].sum() < 0.5 * seen, str(detected)
        return
    assert detected.height == 1 and detected["zone_id"][0] == truth["zone_id"][0], str(detected)
    assert detected["duration_seconds"][0] == pytest.approx(seen, rel=0.05)
    assert detected["total_idle_seconds"][0] == pytest.approx(seen_idle, rel=0.05)
