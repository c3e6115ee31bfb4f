"""`sightline simulate` lands exactly what simulate() produces, writes the ground truth, and is idempotent."""

from __future__ import annotations

from datetime import date, time

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingestion.simulate import simulate
from ingestion.warehouse import connect
from orchestration.cli import main


def test_simulate_command_lands_the_simulated_days(site, warehouse_url, tmp_path, capsys):
    truth_path = tmp_path / "truth.parquet"
    argv = [
        "simulate",
        "--days",
        "2",
        "--start",
        "2025-01-15",
        "--cameras",
        "CAM03,CAM01",
        "--noise",
        "realistic",
        "--window",
        "08:00-08:15",
        "--seed",
        "7",
        "--warehouse",
        warehouse_url,
        "--truth-out",
        str(truth_path),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert str(truth_path) in out

    expected = simulate(
        site,
        start=date(2025, 1, 15),
        days=2,
        cameras=["CAM01", "CAM03"],
        noise="realistic",
        window=(time(8), time(8, 15)),
        seed=7,
    )
    for cam in ("CAM01", "CAM03"):  # the printed table names each camera with its landed rows
        n = expected.detections.filter(pl.col("camera_id") == cam).height
        assert any(line.startswith(cam) and f"{n:,}" in line for line in out.splitlines())
    assert_frame_equal(pl.read_parquet(truth_path), expected.sessions)

    def landed() -> tuple[pl.DataFrame, pl.DataFrame]:
        with connect(warehouse_url, site) as wh:
            det = wh.query(
                "SELECT camera_id, ts, track_id, zone_id, worker_id, motion_score FROM raw.detections "
                "ORDER BY camera_id, ts, track_id"
            )
            health = wh.query(
                "SELECT camera_id, count(*) AS n, sum(frames_read) AS frames FROM raw.camera_health "
                "GROUP BY camera_id ORDER BY camera_id"
            )
        return det, health

    det, health = landed()
    want = expected.detections.select("camera_id", "ts", "track_id", "zone_id", "worker_id", "motion_score")
    assert det.height == want.height
    assert_frame_equal(det.with_columns(pl.col("ts").dt.convert_time_zone("UTC")), want, check_dtypes=False)
    assert health["n"].to_list() == [2 * 90, 2 * 90]
    assert health["frames"].to_list() == [2 * 90 * 50, 2 * 90 * 50]

    # Running it again replaces the partitions: the same rows, no duplicates.
    assert main(argv) == 0
    again, _ = landed()
    assert_frame_equal(again, det)


def test_simulate_command_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--window", "9-8"])
    assert "HH:MM-HH:MM" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--days", "0"])
    assert "positive whole number" in capsys.readouterr().err
    assert main(["simulate", "--cameras", "CAM99", "--warehouse", "duckdb:///:memory:"]) == 1
    assert "unknown camera(s) CAM99" in capsys.readouterr().err
