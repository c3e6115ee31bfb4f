"""Landing rules at exactly their limits (issue 15, item 6), on both backends: a batch window is half-open,
[start, end), so a row stamped exactly at its end belongs to the next batch and goes to the dead-letter
table; confidence and motion_score exactly 0 or 1 are valid, the next float32 past 1 is not. The session
gap, minimum session length and idle threshold are pinned the same way in SQLMesh's unit tests
(transforms/tests/test_thresholds.yaml).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from ingestion.schema import DETECTION_SCHEMA
from ingestion.site import Site
from ingestion.warehouse import connect

DAY = date(2025, 1, 15)
US = timedelta(microseconds=1)
ABOVE_ONE = float(np.nextafter(np.float32(1), np.float32(2)))  # 1.0000001192092896, the next float32


def _rows(site: Site, cases: list[tuple]) -> pl.DataFrame:
    """One detection per case: (ts, confidence, motion_score), each on its own track."""
    n = len(cases)
    return pl.DataFrame(
        {
            "ts": [c[0] for c in cases],
            "camera_id": ["CAM01"] * n,
            "frame_idx": list(range(n)),
            "track_id": list(range(1, n + 1)),
            "class_id": [0] * n,
            "confidence": [c[1] for c in cases],
            "x": [100.0] * n,
            "y": [100.0] * n,
            "w": [40.0] * n,
            "h": [80.0] * n,
            "zone_id": [None] * n,
            "motion_score": [c[2] for c in cases],
            "worker_id": [None] * n,
            "batch_id": [None] * n,
        }
    ).cast(dict(DETECTION_SCHEMA))


def test_limits_are_accepted_and_one_step_past_them_is_a_dead_letter(warehouse_url: str, site: Site):
    start = site.day_window(DAY)[0] + timedelta(hours=2)
    end = start + timedelta(hours=1)
    cases = {
        # track id (1-based position) -> (ts, confidence, motion_score), and the reason when rejected
        "at window start, confidence 1, motion 1": ((start, 1.0, 1.0), None),
        "a microsecond before the end, confidence 0, motion 0": ((end - US, 0.0, 0.0), None),
        "exactly at the window end": ((end, 0.5, 0.5), "outside the batch window"),
        "a microsecond before the start": ((start - US, 0.5, 0.5), "outside the batch window"),
        "confidence just above 1": ((start + US, ABOVE_ONE, 0.5), "confidence outside 0..1"),
        "motion just above 1": ((start + 2 * US, 0.5, ABOVE_ONE), "motion_score outside 0..1"),
    }
    frame = _rows(site, [c for c, _ in cases.values()])
    with connect(warehouse_url, site) as wh:
        wh.setup()
        result = wh.append_batch("limits", frame, source="test", camera_id="CAM01", window=(start, end))
        landed = wh.query("SELECT track_id FROM raw.detections ORDER BY track_id")["track_id"].to_list()
        dead = wh.query("SELECT reason FROM raw.rejected_detections WHERE batch_id = 'limits'")
    expected_good = [i + 1 for i, (_, reason) in enumerate(cases.values()) if reason is None]
    assert landed == expected_good
    assert (result.landed, result.rejected) == (2, 4)
    reasons = sorted(dead["reason"].to_list())
    wanted = sorted(reason for _, reason in cases.values() if reason)
    assert len(reasons) == len(wanted)
    for got, want in zip(reasons, wanted, strict=True):
        assert want in got, (got, want)
