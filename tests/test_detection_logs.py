"""Detection logs: real MOT17 ground truth and tracker output, JSON lines, Parquet, and the CLI."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from ingestion.detection_logs import DetectionLogError, ingest_detection_log, parse_mot
from ingestion.schema import DETECTION_SCHEMA
from ingestion.site import Site
from ingestion.warehouse import connect
from orchestration.cli import main

MOT17 = (Path(__file__).resolve().parents[1] / "../shared/data/mot17/MOT17-09").resolve()
START = datetime.fromisoformat("2025-01-15T08:00:00+07:00")
FPS = 30.0
KEY = ["camera_id", "ts", "track_id"]

needs_mot17 = pytest.mark.skipif(
    not (MOT17 / "gt.txt").is_file(),
    reason=f"MOT17 test data not found at {MOT17} (see ../shared/data/mot17/README.md)",
)


def _mot_rows(path: Path) -> list[list[float]]:
    with open(path, newline="") as fh:
        return [[float(v) for v in row] for row in csv.reader(fh) if row]


def _landed(wh) -> pl.DataFrame:
    return wh.query(
        f"SELECT {', '.join(DETECTION_SCHEMA.names())} FROM raw.detections ORDER BY camera_id, ts, track_id"
    ).cast(DETECTION_SCHEMA)


@pytest.fixture
def duck(tmp_path: Path, site: Site):
    with connect(f"duckdb:///{tmp_path / 'w.duckdb'}", site) as wh:
        wh.setup()
        yield wh


@needs_mot17
def test_mot17_ground_truth_lands_pedestrians_exactly_once(warehouse_url: str, site: Site):
    rows = _mot_rows(MOT17 / "gt.txt")
    people = [r for r in rows if r[6] == 1 and r[7] == 1]  # README: consider = 1 and class = 1
    with connect(warehouse_url, site) as wh:
        wh.setup()
        first = ingest_detection_log(
            wh, MOT17 / "gt.txt", "mot", camera_id="CAM01", start_time=START, fps=FPS, batch_rows=2000
        )
        assert (first.landed, first.rejected, first.ignored) == (len(people), 0, len(rows) - len(people))
        assert first.batches == math.ceil(len(people) / 2000) and first.batches_skipped == 0
        stored = _landed(wh)
        again = ingest_detection_log(
            wh, MOT17 / "gt.txt", "mot", camera_id="CAM01", start_time=START, fps=FPS, batch_rows=2000
        )
        assert again.landed == 0 and again.batches_skipped == first.batches
        assert _landed(wh).equals(stored)
        ledger = wh.query("SELECT sum(row_count) AS n, count(*) AS batches FROM raw.ingest_batches").row(0)
        assert ledger == (len(people), first.batches)
    expected = {
        (
            int(r[1]),
            int(r[0]),
            START.astimezone(UTC) + timedelta(microseconds=round((r[0] - 1) * 1e6 / FPS)),
            r[2] - 1,
            r[3] - 1,
            r[4],
            r[5],
        )
        for r in people
    }
    got = set(stored.select("track_id", "frame_idx", "ts", "x", "y", "w", "h").iter_rows())
    assert got == expected
    assert set(stored["class_id"]) == {0} and set(stored["confidence"]) == {1.0}
    assert set(stored["motion_score"]) == {0.0}  # no motion measurable from a log


@needs_mot17
def test_mot17_tracker_output_keeps_confidences_and_tracks(duck, site: Site):
    rows = _mot_rows(MOT17 / "tracker_LifT.txt")
    summary = ingest_detection_log(
        duck, MOT17 / "tracker_LifT.txt", "mot", camera_id="CAM02", start_time=START, fps=FPS
    )
    stored = _landed(duck)
    assert summary.landed == len(rows) == stored.height and summary.ignored == 0
    assert stored["track_id"].n_unique() == len({r[1] for r in rows})
    by_key = {(int(r[1]), int(r[0])): r for r in rows}
    for track, frame, conf, x in stored.select("track_id", "frame_idx", "confidence", "x").iter_rows():
        assert conf == pytest.approx(by_key[(track, frame)][6], rel=1e-6)
        assert x == pytest.approx(by_key[(track, frame)][2] - 1, rel=1e-6)


def test_zones_are_assigned_from_the_bbox_bottom_centre(duck, site: Site, tmp_path: Path):
    z01 = next(z for z in site.zones if z.id == "Z01")
    xs, ys = [p[0] for p in z01.polygon], [p[1] for p in z01.polygon]  # Z01 is an axis-aligned rectangle
    inside = (min(xs) + 10, max(ys) - 50, 20, 40)  # bottom-centre (x + 10, y + 40) lies inside
    outside = (max(xs) + 5, max(ys) + 30, 20, 40)
    log = tmp_path / "zones.txt"
    log.write_text(
        f"1,1,{inside[0] + 1},{inside[1] + 1},{inside[2]},{inside[3]},0.9,-1,-1,-1\n"
        f"1,2,{outside[0] + 1},{outside[1] + 1},{outside[2]},{outside[3]},0.9,-1,-1,-1\n"
    )
    ingest_detection_log(duck, log, "mot", camera_id="CAM01", start_time=START, fps=FPS)
    assert dict(duck.query("SELECT track_id, zone_id FROM raw.detections").rows()) == {1: "Z01", 2: None}


def test_malformed_mot_lines_become_dead_letters_with_line_numbers(duck, tmp_path: Path):
    log = tmp_path / "broken.txt"
    lines = [
        "1,1,10,10,5,5,0.9,-1,-1,-1",
        "garbage",
        "",
        "2,1,x,10,5,5,0.9,-1,-1,-1",
        "3,2,1,2",
        "0,3,1,1,1,1,0.5,-1,-1,-1",
        "4,1,10,10,5,5,1.7,-1,-1,-1",
        "5,1,10,10,5,5,0.8,-1,-1,-1",
    ]
    log.write_text("\n".join(lines) + "\n")
    summary = ingest_detection_log(duck, log, "mot", camera_id="CAM01", start_time=START, fps=FPS)
    dead = duck.query("SELECT payload, reason FROM raw.rejected_detections ORDER BY reason")
    by_line = {
        int(r.split(":")[0].removeprefix("line ")): (p, r) for p, r in dead.rows() if r.startswith("line ")
    }
    assert sorted(by_line) == [2, 4, 5, 6]  # line 3 is blank, not malformed
    assert by_line[2][0] == "garbage" and "at least 6" in by_line[2][1]
    assert "field 3 (left) is not a number: 'x'" in by_line[4][1]
    assert "frame 0 outside 1.." in by_line[6][1]
    # Line 7's confidence 1.7 is no calibrated score: it lands with confidence NULL and is counted.
    assert (summary.landed, summary.malformed_lines, summary.rejected, summary.unscored) == (3, 4, 4, 1)
    assert duck.query("SELECT frame_idx FROM raw.detections WHERE confidence IS NULL").rows() == [(4,)]
    # Ingesting the same file again adds neither rows nor dead letters.
    ingest_detection_log(duck, log, "mot", camera_id="CAM01", start_time=START, fps=FPS)
    assert duck.query("SELECT count(*) AS n FROM raw.rejected_detections")["n"][0] == dead.height


def test_mot_needs_start_time_and_fps(duck, tmp_path: Path):
    log = tmp_path / "a.txt"
    log.write_text("1,1,10,10,5,5,0.9,-1,-1,-1\n")
    with pytest.raises(DetectionLogError, match="--start-time and --fps"):
        ingest_detection_log(duck, log, "mot", camera_id="CAM01")
    with pytest.raises(DetectionLogError, match="UTC offset"):
        parse_mot(log.read_bytes(), camera_id="CAM01", start_time=datetime(2025, 1, 15, 8), fps=FPS)
    with pytest.raises(DetectionLogError, match="unknown camera 'CAM42'"):
        ingest_detection_log(duck, log, "mot", camera_id="CAM42", start_time=START, fps=FPS)


def _sample(site: Site, n: int = 50) -> pl.DataFrame:
    start = START.astimezone(UTC)
    return pl.DataFrame(
        {
            "ts": [start + timedelta(milliseconds=200 * i) for i in range(n)],
            "camera_id": ["CAM03"] * n,
            "frame_idx": list(range(n)),
            "track_id": [i % 3 for i in range(n)],
            "class_id": [0] * n,
            "confidence": [0.5 + i / (4 * n) for i in range(n)],
            "x": [200.0 + i for i in range(n)],
            "y": [300.0] * n,
            "w": [40.0] * n,
            "h": [120.0] * n,
            "zone_id": ["Z08"] * n,
            "motion_score": [i / n for i in range(n)],
            "worker_id": [None] * n,
            "batch_id": [None] * n,
        },
        schema=DETECTION_SCHEMA,
    )


def test_jsonl_round_trip_with_a_malformed_line(duck, site: Site, tmp_path: Path):
    rows = _sample(site)
    text = rows.drop("batch_id", "worker_id").write_ndjson().splitlines()
    text.insert(10, '{"ts": "2025-01-15T01:00:00Z", "x": "left"')  # line 11: truncated JSON
    log = tmp_path / "d.jsonl"
    log.write_text("\n".join(text) + "\n")
    summary = ingest_detection_log(duck, log, "jsonl", camera_id="CAM03")
    assert (summary.landed, summary.malformed_lines) == (rows.height, 1)
    assert _landed(duck).drop("batch_id").equals(rows.sort(KEY).drop("batch_id"))
    reason = duck.query("SELECT reason FROM raw.rejected_detections")["reason"][0]
    assert reason.startswith("line 11: not a JSON object")


def test_jsonl_without_motion_score_gets_zero_and_computed_zones(duck, site: Site, tmp_path: Path):
    rows = _sample(site, 5)
    log = tmp_path / "m.jsonl"
    log.write_text(
        "\n".join(
            json.dumps(
                {
                    "ts": ts.isoformat(),
                    "track_id": t,
                    "x": x,
                    "y": 300.0,
                    "w": 40.0,
                    "h": 120.0,
                    "confidence": 0.9,
                }
            )
            for ts, t, x in rows.select("ts", "track_id", "x").iter_rows()
        )
    )
    ingest_detection_log(duck, log, "jsonl", camera_id="CAM03")
    stored = _landed(duck)
    assert stored.height == 5 and set(stored["motion_score"]) == {0.0} and set(stored["zone_id"]) == {"Z08"}
    assert set(stored["camera_id"]) == {"CAM03"}


def test_parquet_round_trip(duck, site: Site, tmp_path: Path):
    rows = _sample(site)
    path = tmp_path / "d.parquet"
    rows.write_parquet(path)
    assert ingest_detection_log(duck, path, "parquet", camera_id="CAM03").landed == rows.height
    assert _landed(duck).drop("batch_id").equals(rows.sort(KEY).drop("batch_id"))
    assert ingest_detection_log(duck, path, "parquet", camera_id="CAM03").batches_skipped == 1


@needs_mot17
def test_cli_ingest_detections_twice_is_a_no_op(tmp_path: Path, capsys):
    url = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    args = [
        "ingest",
        "detections",
        str(MOT17 / "tracker_LifT.txt"),
        "--format",
        "mot",
        "--camera",
        "CAM01",
        "--start-time",
        "2025-01-15T08:00:00+07:00",
        "--fps",
        "30",
        "--warehouse",
        url,
        "--batch-rows",
        "1000",
    ]
    n = len(_mot_rows(MOT17 / "tracker_LifT.txt"))
    assert main(args) == 0
    assert f"landed {n} rows" in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "landed 0 rows" in out and f"{math.ceil(n / 1000)} already landed" in out


def test_cli_rejects_a_start_time_without_offset(capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "ingest",
                "detections",
                "x.txt",
                "--format",
                "mot",
                "--camera",
                "CAM01",
                "--start-time",
                "2025-01-15T08:00:00",
                "--fps",
                "30",
            ]
        )
    assert "has no UTC offset" in capsys.readouterr().err


# --- MOT interop (issue 10): the variants trackers and benchmarks write, -1 scores, hostile lines ---

# One detection of track 7 at frame 3, as each MOT edition writes it (results and ground truth).
_MOT_VARIANTS = {
    "6 fields (no score)": ("3,7,101,51,40,120", "results", None),
    "MOT15 results (conf -1, x y z -1)": ("3,7,101,51,40,120,-1,-1,-1,-1", "results", None),
    "MOT16/17 results (conf)": ("3,7,101,51,40,120,0.75,-1,-1,-1", "results", 0.75),
    "MOT17 results, 7 fields": ("3,7,101,51,40,120,0.5", "results", 0.5),
    "MOT20 results (conf 1, 9 fields)": ("3,7,101,51,40,120,1,-1,-1", "results", 1.0),
    "uncalibrated score 37.2": ("3,7,101,51,40,120,37.2,-1,-1,-1", "results", None),
    "MOT16/17/20 gt (consider, class, visibility)": ("3,7,101,51,40,120,1,1,0.8", "gt", 1.0),
}


@pytest.mark.parametrize("name", sorted(_MOT_VARIANTS))
def test_mot_variants_land_with_the_right_score(name: str):
    line, variant, confidence = _MOT_VARIANTS[name]
    parsed = parse_mot(f"{line}\n".encode(), camera_id="CAM01", start_time=START, fps=FPS)
    assert parsed.variant == variant and parsed.dead_letters.height == 0
    row = parsed.detections.row(0, named=True)
    box = (row["frame_idx"], row["track_id"], row["x"], row["y"], row["w"], row["h"])
    assert box == (3, 7, 100, 50, 40, 120)
    assert row["ts"] == START.astimezone(UTC) + timedelta(seconds=2 / FPS)
    if confidence is None:
        assert row["confidence"] is None and parsed.unscored == 1
    else:
        assert row["confidence"] == pytest.approx(confidence) and parsed.unscored == 0


@needs_mot17
def test_tracker_results_with_minus_one_scores_land_every_row(warehouse_url: str, site: Site, tmp_path: Path):
    """A tracker's results with conf -1 (as many write it): every row lands, unscored, both backends."""
    rows = _mot_rows(MOT17 / "tracker_LifT.txt")
    log = tmp_path / "minus_one.txt"
    log.write_text(
        "".join(f"{int(r[0])},{int(r[1])},{r[2]},{r[3]},{r[4]},{r[5]},-1,-1,-1,-1\n" for r in rows)
    )
    with connect(warehouse_url, site) as wh:
        wh.setup()
        summary = ingest_detection_log(wh, log, "mot", camera_id="CAM01", start_time=START, fps=FPS)
        assert (summary.landed, summary.rejected, summary.unscored) == (len(rows), 0, len(rows))
        stored = wh.query("SELECT count(*) AS n, count(confidence) AS scored FROM raw.detections").row(0)
        assert stored == (len(rows), 0)


def test_hostile_mot_lines_are_dead_letters_and_never_abort_the_file(duck, tmp_path: Path):
    good = "1,1,10,10,5,5,0.9,-1,-1,-1"
    hostile = {
        2: ("1e30,1,10,10,5,5,0.9,-1,-1,-1", "frame 1e30 outside"),
        3: ("inf,1,10,10,5,5,0.9,-1,-1,-1", "frame is NaN or infinite"),
        4: ("2,9e20,10,10,5,5,0.9,-1,-1,-1", "id 9e20 is too large"),
        5: ("2,-1,10,10,5,5,0.9,-1,-1,-1", "id -1 is negative"),
        6: ("2,3,1e39,10,5,5,0.9,-1,-1,-1", "left 1e39 is beyond"),
        7: ("2,3,10,10,nan,5,0.9,-1,-1,-1", "width is NaN or infinite"),
        8: ("2,3,10,10,5,-5,0.9,-1,-1,-1", "height must be > 0"),
        9: ("2,x3,10,10,5,5,0.9,-1,-1,-1", "field 2 (id) is not a number: 'x3'"),
        10: ("2.5,3,10,10,5,5,0.9,-1,-1,-1", "frame must be a whole number"),
    }
    lines = [good] + [hostile[n][0] for n in sorted(hostile)] + ["3,1,10,10,5,5,nan,-1,-1,-1"]
    log = tmp_path / "hostile.txt"
    log.write_text("\n".join(lines) + "\n")
    summary = ingest_detection_log(duck, log, "mot", camera_id="CAM01", start_time=START, fps=FPS)
    reasons = {
        int(r.split(":")[0].removeprefix("line ")): r
        for r in duck.query("SELECT reason FROM raw.rejected_detections")["reason"]
    }
    assert sorted(reasons) == sorted(hostile)
    for n, (_, expected) in hostile.items():
        assert expected in reasons[n], (n, reasons[n])
    # The good line and the NaN-score line land (the latter unscored): nothing aborted the file.
    assert (summary.landed, summary.malformed_lines, summary.unscored) == (2, len(hostile), 1)


def test_setup_relaxes_not_null_confidence_of_an_older_warehouse(
    landing_url: str, site: Site, tmp_path: Path, capsys
):
    """A warehouse set up before confidence became nullable accepts unscored rows after `db setup`."""
    with connect(landing_url, site) as wh:
        wh.setup()
        with wh._transaction():  # the DDL of the previous version
            wh._execute("ALTER TABLE raw.detections ALTER COLUMN confidence SET NOT NULL")
        wh.setup()
    log = tmp_path / "unscored.txt"
    log.write_text("1,4,10,10,5,5,-1,-1,-1,-1\n2,4,11,10,5,5,-1,-1,-1,-1\n")
    assert (
        main(
            [
                "ingest",
                "detections",
                str(log),
                "--format",
                "mot",
                "--camera",
                "CAM01",
                "--start-time",
                START.isoformat(),
                "--fps",
                "30",
                "--warehouse",
                landing_url,
            ]
        )
        == 0
    )
    assert "2 rows without a calibrated score (confidence NULL)" in capsys.readouterr().out
    with connect(landing_url, site) as wh:
        assert wh.query("SELECT count(*) AS n FROM raw.detections WHERE confidence IS NULL").item() == 2
