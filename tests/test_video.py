"""Vision ingestion: sources and timestamps, landing in batches, health, faults, re-runs and the CLI.

Videos are rendered by the simulator (small: 640x360 at 5 fps, one minute) or written frame by frame here;
faulty files are made by truncating or overwriting real ones."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime, time, timedelta
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest

from ingestion.detectors import make_detector
from ingestion.simulate.render import render_video
from ingestion.video import (
    LiveStreamSource,
    SegmentError,
    VideoFileSource,
    VideoPipeline,
    VideoSourceError,
    discover_segments,
)
from ingestion.video.health import HealthRecorder
from ingestion.warehouse import connect
from ingestion.zones import assign_zones
from orchestration.cli import main
from quality.accuracy import box_iou

START_LOCAL = "2025-01-15T08-00-00"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, site) -> Path:
    """One minute of CAM01 and CAM02 at half resolution, plus the ground truth."""
    out = tmp_path_factory.mktemp("rendered")
    render_video(site, out, window=(time(8), time(8, 1)), cameras=["CAM01", "CAM02"], scale=0.5)
    return out


def _pipeline(wh, site, camera="CAM01", **kw) -> VideoPipeline:
    return VideoPipeline(wh, site, camera, make_detector("motion", fps=5.0), fps=5.0, **kw)


def _segment(rendered: Path, site, camera="CAM01") -> VideoFileSource:
    seg = [s for s in discover_segments(rendered, site) if s.camera_id == camera][0]
    return VideoFileSource(seg.path, seg.start_time, target_fps=5.0)


def _write_numbered_video(path: Path, n: int, fps: float, size=(64, 48)) -> None:
    """Frame i is a flat image of brightness 4 * i, so a decoded frame tells which one it is."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), 4 * i, np.uint8))
    writer.release()


# ----------------------------------------------------------------------------------- sources and segments


def test_segments_take_their_start_from_the_name_or_a_sidecar(site, tmp_path):
    cam = tmp_path / "CAM01"
    cam.mkdir()
    (cam / f"{START_LOCAL}.mp4").write_bytes(b"")
    (cam / "clip-7.mkv").write_bytes(b"")
    (cam / "clip-7.json").write_text(json.dumps({"start_time": "2025-01-15T09:30:00"}))  # site-local
    (tmp_path / "ground_truth").mkdir()  # no videos: not a camera folder, ignored
    segs = discover_segments(tmp_path, site)
    # Asia/Bangkok is UTC+7 all year.
    assert [(s.camera_id, s.path.name, s.start_time) for s in segs] == [
        ("CAM01", f"{START_LOCAL}.mp4", datetime(2025, 1, 15, 1, 0, tzinfo=UTC)),
        ("CAM01", "clip-7.mkv", datetime(2025, 1, 15, 2, 30, tzinfo=UTC)),
    ]
    (cam / "recording.mp4").write_bytes(b"")
    with pytest.raises(SegmentError, match=r"recording\.mp4.*2025-01-15T08-00-00.*sidecar"):
        discover_segments(tmp_path, site)
    (cam / "recording.mp4").unlink()
    (tmp_path / "CAM99").mkdir()
    (tmp_path / "CAM99" / f"{START_LOCAL}.mp4").write_bytes(b"")
    with pytest.raises(SegmentError, match="CAM99.*not a camera"):
        discover_segments(tmp_path, site)


@pytest.mark.parametrize(("native_fps", "target_fps", "expected_step"), [(10, 5, 2), (30, 5, 6), (5, 5, 1)])
def test_file_source_samples_by_time_and_stamps_capture_times(
    tmp_path, native_fps, target_fps, expected_step
):
    path = tmp_path / "numbered.avi"
    n = 2 * native_fps
    _write_numbered_video(path, n, native_fps)
    start = datetime(2025, 1, 15, 1, 0, tzinfo=UTC)
    health = HealthRecorder("CAM01")
    frames = list(VideoFileSource(path, start, target_fps=target_fps).frames(health))
    assert [f.index for f in frames] == list(range(0, n, expected_step))
    assert [f.ts for f in frames] == [
        start + timedelta(seconds=i / native_fps) for i in range(0, n, expected_step)
    ]
    brightness = [int(round(f.image.mean() / 4)) for f in frames]
    assert brightness == [f.index for f in frames]  # the frame decoded is the frame stamped
    rows = health.take()
    assert rows["frames_read"].sum() == n and rows["decode_errors"].sum() == 0


# ----------------------------------------------------------------------------------- landing


def test_a_source_continues_the_previous_one_only_when_it_starts_right_after_it(duckdb_url, site, tmp_path):
    """Recorded segments cut from one stream continue each other (background model, tracks, ids); after
    a gap, an earlier start or a failed source, the next source starts afresh."""
    _write_numbered_video(tmp_path / "clip.avi", 10, 5.0, size=(160, 90))
    start = datetime(2025, 1, 15, 1, tzinfo=UTC)
    with connect(duckdb_url, site) as wh:
        wh.setup()
        pipeline = _pipeline(wh, site)
        assert not pipeline.continues(start)  # nothing ran yet
        pipeline.run(VideoFileSource(tmp_path / "clip.avi", start, target_fps=5.0))
        last = start + timedelta(seconds=9 / 5)  # its tenth frame
        assert pipeline.continues(last + timedelta(seconds=0.2))  # the next segment
        assert pipeline.continues(last + timedelta(seconds=2))
        assert not pipeline.continues(last + timedelta(seconds=2.5))  # a gap in the recording
        assert not pipeline.continues(last)  # not after the last frame
        assert not pipeline.continues(start)
        with pytest.raises(VideoSourceError):
            pipeline.run(VideoFileSource(tmp_path / "missing.avi", last + timedelta(seconds=0.2)))
        assert not pipeline.continues(last + timedelta(seconds=0.4))  # a failed source is not continued


def test_video_lands_tracked_detections_with_zones_motion_and_health(warehouse_url, site, rendered):
    truth = pl.read_parquet(rendered / "ground_truth" / "detections.parquet").filter(
        pl.col("camera_id") == "CAM01"
    )
    with connect(warehouse_url, site) as wh:
        wh.setup()
        report = _pipeline(wh, site, batch_seconds=20).run(_segment(rendered, site))
        rows = wh.query("SELECT * FROM raw.detections ORDER BY ts, track_id")
        health = wh.query("SELECT * FROM raw.camera_health ORDER BY window_start")
        ledger = wh.query("SELECT batch_id, row_count, status FROM raw.ingest_batches ORDER BY batch_id")
    assert (report.frames_read, report.frames_processed, report.decode_errors, report.rejected) == (
        300,
        300,
        0,
        0,
    )
    assert rows.height == report.landed == report.detections > 0
    # Three 20 s batches with deterministic ids, each committed with its row count.
    assert ledger["batch_id"].to_list() == [
        f"video:CAM01:2025-01-15T01-00-00.000000Z:{k:05d}" for k in range(3)
    ]
    assert ledger["row_count"].sum() == rows.height and set(ledger["status"]) == {"committed"}
    # Capture times: the segment's start + frame position, on the 5 fps grid.
    start = datetime(2025, 1, 15, 1, 0, tzinfo=UTC)
    offsets = (rows["ts"].dt.epoch("us") - int(start.timestamp() * 1e6)).to_numpy()
    assert offsets.min() >= 0 and offsets.max() < 60e6 and (offsets % 200_000 == 0).all()
    # Boxes are in the camera's configured 1280x720 pixels although the video is 640x360.
    assert (rows["x"] + rows["w"]).max() > 640 and (rows["x"] + rows["w"]).max() <= 1280
    zones = assign_zones(site.zones_for("CAM01"), rows.select("x", "y", "w", "h").to_numpy())
    assert rows["zone_id"].to_list() == list(zones)
    assert rows["motion_score"].is_between(0, 1).all()
    # Most landed boxes are a true person's box at that instant (IoU > 0.5). 0.74 here (0.97 when the
    # renderer painted working hands over the whole figure): the 8 people standing at their stations
    # since before this minute began are learnt into a fresh background model with the first frame, and
    # only their working hands (the renderer's WORK_BAND, ~40% of their height) stay foreground, so their
    # boxes are about half a person (IoU ~0.4). A camera that runs from before they arrive sees them whole
    # (bench/README.md, "Rendered people keep their clothes": MOTA 67% on CAM01 07:45-08:05).
    matched = _share_matching_truth(rows, truth)
    assert matched > 0.65, matched
    # Health: six 10 s windows, every frame read and processed, latencies measured.
    assert health.height == 6
    assert health["frames_read"].sum() == 300 and health["frames_processed"].sum() == 300
    # Latencies are wall-clock measurements: one slow frame can pull the mean above the p95, so only
    # their presence and sign are certain.
    assert health["decode_errors"].sum() == 0
    assert (health["latency_ms_mean"] > 0).all() and (health["latency_ms_p95"] > 0).all()


def _share_matching_truth(rows: pl.DataFrame, truth: pl.DataFrame) -> float:
    pairs = rows.select("ts", "track_id", "x", "y", "w", "h").join(
        truth.select("ts", *[pl.col(c).alias(f"t_{c}") for c in "xywh"]), on="ts"
    )
    iou = box_iou("", "t_").alias("iou")
    best = pairs.with_columns(iou).group_by("ts", "track_id").agg(pl.col("iou").max())
    return best.filter(pl.col("iou") > 0.5).height / rows.height


class _Crash(RuntimeError):
    pass


def test_crash_mid_video_keeps_committed_batches_and_rerun_does_not_duplicate(tmp_path, site, rendered):
    def crash_after(n: int):
        seen = []

        def on_batch(result):
            seen.append(result)
            if len(seen) == n:
                raise _Crash(f"simulated crash after batch {result.batch_id}")

        return on_batch

    def dump(wh):
        # Latencies are measured, so they differ between runs; everything else must be identical.
        return (
            wh.query("SELECT * FROM raw.detections ORDER BY camera_id, ts, track_id"),
            wh.query(
                "SELECT * EXCLUDE (latency_ms_mean, latency_ms_p95) FROM raw.camera_health "
                "ORDER BY window_start"
            ),
        )

    with connect(f"duckdb:///{tmp_path / 'clean.duckdb'}", site) as wh:
        wh.setup()
        _pipeline(wh, site, batch_seconds=20).run(_segment(rendered, site))
        clean_rows, clean_health = dump(wh)

    with connect(f"duckdb:///{tmp_path / 'crashed.duckdb'}", site) as wh:
        wh.setup()
        with pytest.raises(_Crash):
            _pipeline(wh, site, batch_seconds=20, on_batch=crash_after(2)).run(_segment(rendered, site))
        assert wh.query("SELECT count(*) AS n FROM raw.ingest_batches")["n"][0] == 2  # committed, not lost
        resumed = _pipeline(wh, site, batch_seconds=20).run(_segment(rendered, site))
        assert (resumed.batches_skipped, resumed.batches_landed) == (2, 1)
        rows, health = dump(wh)
    assert rows.equals(clean_rows) and health.equals(clean_health)


# ----------------------------------------------------------------------------------- faults


def test_truncated_segment_lands_what_decoded_and_other_cameras_are_unaffected(
    tmp_path, site, rendered, capsys
):
    # An .mkv can be read up to where it was cut (an .mp4 cannot: its index is written last).
    src = tmp_path / "mkv"
    render_video(site, src, window=(time(8), time(8, 1)), cameras=["CAM01"], scale=0.5, suffix=".mkv")
    segments = tmp_path / "segments"
    (segments / "CAM01").mkdir(parents=True)
    (segments / "CAM02").mkdir()
    data = (src / "CAM01" / f"{START_LOCAL}.mkv").read_bytes()
    broken = segments / "CAM01" / f"{START_LOCAL}.mkv"
    broken.write_bytes(data[: len(data) // 2])
    (segments / "CAM02" / f"{START_LOCAL}.mp4").write_bytes(
        (rendered / "CAM02" / f"{START_LOCAL}.mp4").read_bytes()
    )
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"

    assert main(["ingest", "segments", str(segments), "--warehouse", url]) == 1
    err = capsys.readouterr().err
    assert str(broken) in err and "truncated or corrupt" in err

    with connect(url, site) as wh:
        per_camera = wh.query(
            "SELECT camera_id, count(*) AS n, max(ts) AS last FROM raw.detections "
            "GROUP BY camera_id ORDER BY camera_id"
        )
        health = wh.query(
            "SELECT camera_id, sum(frames_read) AS read, sum(decode_errors) AS errors "
            "FROM raw.camera_health GROUP BY camera_id ORDER BY camera_id"
        )
        dead = wh.query("SELECT camera_id, payload, reason FROM raw.rejected_detections")
        ledger = wh.query(
            "SELECT camera_id, sum(row_count) AS n, count(*) AS batches FROM raw.ingest_batches "
            "WHERE status = 'committed' GROUP BY camera_id ORDER BY camera_id"
        )
    cam01, cam02 = per_camera.rows(named=True)
    start = datetime(2025, 1, 15, 1, 0, tzinfo=UTC)
    assert cam01["n"] > 0 and cam01["last"] < start + timedelta(seconds=45)  # the decoded first part landed
    # The healthy camera landed in full: every frame read, its minute of batches committed.
    assert ledger.rows() == [("CAM01", cam01["n"], ledger["batches"][0]), ("CAM02", cam02["n"], 1)]
    h01, h02 = health.rows(named=True)
    assert 0 < h01["read"] < 300 and h01["read"] + h01["errors"] == 300  # every missing frame counted
    assert h02 == {"camera_id": "CAM02", "read": 300, "errors": 0}
    assert dead["camera_id"].to_list() == ["CAM01"] and str(broken) in dead["payload"][0]
    # Running it again does not land the decoded part twice.
    assert main(["ingest", "segments", str(segments), "--cameras", "CAM01", "--warehouse", url]) == 1
    with connect(url, site) as wh:
        assert (
            wh.query("SELECT count(*) AS n FROM raw.detections WHERE camera_id = 'CAM01'")["n"][0]
            == cam01["n"]
        )


@pytest.mark.parametrize("fault", ["missing", "garbage", "truncated_mp4"])
def test_unreadable_files_fail_with_a_clear_error_naming_them(tmp_path, site, rendered, fault):
    path = tmp_path / f"{START_LOCAL}.mp4"
    if fault == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    elif fault == "truncated_mp4":
        data = (rendered / "CAM01" / f"{START_LOCAL}.mp4").read_bytes()
        path.write_bytes(data[: len(data) * 3 // 4])
    with connect(f"duckdb:///{tmp_path / 'wh.duckdb'}", site) as wh:
        wh.setup()
        source = VideoFileSource(path, datetime(2025, 1, 15, 1, tzinfo=UTC))
        with pytest.raises(VideoSourceError) as caught:
            _pipeline(wh, site).run(source)
        dead = wh.query("SELECT payload, reason FROM raw.rejected_detections")
    message = str(caught.value)
    assert str(path) in message
    assert ("not found" in message) if fault == "missing" else ("cannot be opened as a video" in message)
    assert dead.height == 1 and str(path) in dead["payload"][0]


@pytest.mark.parametrize("fault", ["not an image", "another aspect ratio"])
def test_a_bad_background_image_stops_the_camera_with_a_clear_error_and_lands_nothing(
    tmp_path, site, rendered, capsys, fault
):
    """A camera's site.yaml `background_image` that is no image stops `ingest video` before any frame is
    read; one of another shape than the camera's frames stops it at the first frame. Either way one line
    names the file and the fix, and nothing lands."""
    from ingestion.simulate.render import site_file_with_empty_scenes
    from ingestion.site import load_site

    image = tmp_path / "CAM01.png"
    if fault == "not an image":
        image.write_text("not a PNG")
    else:
        cv2.imwrite(str(image), np.zeros((100, 100, 3), np.uint8))  # square; the video is 16:9
    site = load_site(site_file_with_empty_scenes(site, {"CAM01": image}, tmp_path / "site.yaml"))
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    segment = rendered / "CAM01" / f"{START_LOCAL}.mp4"
    argv = ["ingest", "video", str(segment), "--camera", "CAM01", "--warehouse", url, "--site", site.path]
    assert main(argv) == 1
    error = capsys.readouterr().err
    if fault == "not an image":
        assert f"{image}: cannot read it as an image" in error and "save a PNG or JPEG" in error, error
    else:
        assert "empty-scene image is 100x100" in error and "take background_image from this camera" in error
    with connect(url, site) as wh:
        assert wh.query("SELECT COUNT(*) AS n FROM raw.detections")["n"][0] == 0


def test_unreachable_stream_backs_off_exponentially_then_fails_naming_it_without_the_password():
    sleeps: list[float] = []
    source = LiveStreamSource(
        "rtsp://viewer:s3cret@127.0.0.1:9/stream",
        max_retries=3,
        backoff_initial=0.01,
        open_timeout_s=1,
        sleep=sleeps.append,
    )
    with pytest.raises(VideoSourceError) as caught:
        list(source.frames(HealthRecorder("CAM01")))
    assert "rtsp://viewer:***@127.0.0.1:9/stream" in str(caught.value) and "s3cret" not in str(caught.value)
    assert "unreachable" in str(caught.value)
    assert sleeps == [0.01, 0.02, 0.04]


@pytest.fixture
def http_video(tmp_path):
    """A short clip served over HTTP; every request is counted (each one is a stream connection)."""
    _write_numbered_video(tmp_path / "clip.avi", 3, 5.0, size=(320, 180))  # fewer frames than a test takes
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/clip.avi", requests
    server.shutdown()


def test_live_stream_reconnects_when_it_ends_and_stamps_the_wall_clock(http_video, site, tmp_path):
    url, requests = http_video
    # The clip has 3 frames, so 6 processed frames take at least two connections whatever the timing (how
    # many frames one connection yields depends on the wall clock: a loaded machine decodes slower).
    before = datetime.now(UTC)
    source = LiveStreamSource(url, target_fps=10, max_frames=6, backoff_initial=0.05, max_retries=5)
    with connect(f"duckdb:///{tmp_path / 'wh.duckdb'}", site) as wh:
        wh.setup()
        report = VideoPipeline(
            wh, site, "CAM01", make_detector("motion", fps=10), fps=10, source_name="live"
        ).run(source)
        health = wh.query(
            "SELECT sum(frames_read) AS r, sum(frames_processed) AS p, sum(decode_errors) AS e, "
            "min(window_start) AS first, max(window_start) AS last FROM raw.camera_health"
        )
    after = datetime.now(UTC)
    assert report.frames_processed == 6
    assert source.connections >= 2 and len(requests) >= 2
    assert health["p"][0] == 6 and health["r"][0] >= 6 and health["e"][0] >= 1  # each break is counted
    assert before <= source.start_time <= after
    # Wall-clock capture times: the health windows lie between the test's own clock readings.
    assert before - timedelta(seconds=10) < health["first"][0] <= health["last"][0] <= after


def test_cli_ingest_video_reads_the_start_time_from_the_name(tmp_path, site, rendered, capsys):
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    path = rendered / "CAM02" / f"{START_LOCAL}.mp4"
    assert main(["ingest", "video", str(path), "--camera", "CAM02", "--warehouse", url]) == 0
    assert "frames processed" in capsys.readouterr().out
    with connect(url, site) as wh:
        got = wh.query(
            "SELECT ts AS first, frame_idx, (SELECT count(*) FROM raw.detections) AS n "
            "FROM raw.detections ORDER BY ts LIMIT 1"
        )
    # Frame k of the 5 fps file was captured k / 5 s after the start in its name (the motion detector
    # reports a track from its third frame on, so the first row is not frame 0).
    first_frame = got["frame_idx"][0]
    assert first_frame < 5 and got["n"][0] > 0
    assert got["first"][0] == datetime(2025, 1, 15, 1, 0, tzinfo=UTC) + timedelta(seconds=first_frame / 5)
    assert main(["ingest", "video", str(path), "--camera", "CAM99", "--warehouse", url]) == 1
    assert "CAM99" in capsys.readouterr().err
