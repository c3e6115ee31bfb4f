"""Stationary people stay tracked: a rendered worker walks in, stands perfectly still for 10 minutes (the
figure is drawn identically in every frame: no sway, no hands, no outline flicker) and walks out. Through
`sightline ingest video --detector motion` and `sightline transform`, that is one session in their zone,
with dwell and idle time within 5% of the simulator's ground truth.

Without a frozen background the still figure fades into MOG2's model within seconds, the track is lost
after the tracker's buffer and the session (and its idle time) ends there. Rendered small (320x180) at
2 fps to keep the 10 minutes fast."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

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
