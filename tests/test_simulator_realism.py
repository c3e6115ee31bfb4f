"""The `realistic` noise preset is a real tracker's fragmentation (issue 10 part 4): its constants are
what quality.accuracy measures on MOT17-09, and the simulator reproduces them."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest

from ingestion.detection_logs import parse_mot
from ingestion.simulate import simulate
from ingestion.simulate.noise import MOT17_FRAGMENTATION
from quality.accuracy import fragmentation_stats

MOT17 = (Path(__file__).resolve().parents[1] / "../shared/data/mot17/MOT17-09").resolve()
START = datetime.fromisoformat("2025-01-15T09:00:00+07:00")

# Reproduced within: rates (per person-minute) 20%, shares and box noise 10%. The simulator is not a
# tracker: its rates come from a renewal process and frames are sampled at 10 fps, not 30.
TOLERANCE = {
    "gaps_per_minute": 0.20,
    "gap_seconds_mean": 0.20,
    "gap_seconds_p90": 0.20,
    "switches_per_minute": 0.20,
    "false_tracks_per_minute": 0.25,
    "switch_after_gap_share": 0.10,
    "gap_new_id_share": 0.10,
    "foot_noise": 0.10,
    "height_noise": 0.10,
}


@pytest.mark.skipif(not (MOT17 / "gt.txt").is_file(), reason=f"MOT17 test data not found at {MOT17}")
def test_constants_are_the_mot17_measurement():
    def load(name: str):
        return parse_mot((MOT17 / name).read_bytes(), camera_id="CAM01", start_time=START, fps=30).detections

    measured = fragmentation_stats(load("tracker_LifT.txt"), load("gt.txt"), 30.0).as_dict()
    for name, value in MOT17_FRAGMENTATION.items():
        assert measured[name] == pytest.approx(value, rel=2e-3, abs=1e-4), name
    # What makes linking worth it: most of the gaps restart under a new id, and they are short.
    assert MOT17_FRAGMENTATION["gap_new_id_share"] > 0.5 and MOT17_FRAGMENTATION["gap_seconds_p90"] < 6


def test_realistic_preset_reproduces_the_mot17_fragmentation(site):
    kwargs = dict(start=date(2025, 1, 15), cameras=["CAM02"], window=(time(8), time(9)), fps=10.0, seed=11)
    truth = simulate(site, noise="none", **kwargs).detections
    noisy = simulate(site, noise="realistic", **kwargs).detections
    got = fragmentation_stats(noisy, truth, 10.0).as_dict()
    assert got["identity_minutes"] > 100  # enough person-time for the rates to settle
    off = {
        name: (round(got[name], 4), MOT17_FRAGMENTATION[name])
        for name, tol in TOLERANCE.items()
        if abs(got[name] / MOT17_FRAGMENTATION[name] - 1) > tol
    }
    assert not off, off
