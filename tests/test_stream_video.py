"""`sightline stream --source <video> --camera`: the vision pipeline run as a stoppable stream."""

from __future__ import annotations

import logging
import os
import re
import signal
from datetime import time as clock

import polars as pl
from polars.testing import assert_frame_equal

from ingestion.detectors import make_detector
from ingestion.schema import DETECTION_SCHEMA
from ingestion.simulate.render import render_video
from ingestion.video import VideoFileSource, VideoPipeline
from ingestion.video.segments import segment_start_time
from ingestion.warehouse import connect
from orchestration.cli import main

VALUE_COLUMNS = [c for c in DETECTION_SCHEMA.names() if c != "batch_id"]
KEY = ["camera_id", "ts", "track_id"]


class _SigtermOnFirstChunk(logging.Handler):
    """Sends SIGTERM to this process when the stream logs its first landed chunk; keeps the log lines."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.sent = False

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if not self.sent and re.search(r"batch stream-video:\S+: \d+ rows landed", self.lines[-1]):
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)


def _rows(url, site) -> pl.DataFrame:
    with connect(url, site) as wh:
        return (
            wh.query(f"SELECT {', '.join(VALUE_COLUMNS)} FROM raw.detections")
            .cast({c: DETECTION_SCHEMA[c] for c in VALUE_COLUMNS})
            .sort(KEY)
        )


def test_video_stream_stops_cleanly_and_a_rerun_lands_the_rest(site, tmp_path):
    video = render_video(
        site, tmp_path / "video", window=(clock(9), clock(9, 1)), cameras=["CAM01"], fps=5.0, scale=0.5
    ).segments[0]
    # Reference: the same file through the vision pipeline directly (what `sightline ingest video` runs).
    reference_url = f"duckdb:///{tmp_path / 'reference.duckdb'}"
    with connect(reference_url, site) as wh:
        wh.setup()
        VideoPipeline(wh, site, "CAM01", make_detector("motion", fps=5.0), fps=5.0, batch_seconds=10).run(
            VideoFileSource(video, segment_start_time(video, site), target_fps=5.0)
        )
    reference = _rows(reference_url, site)
    assert reference.height > 0

    url = f"duckdb:///{tmp_path / 'stream.duckdb'}"
    args = [
        "stream",
        "--source",
        str(video),
        "--camera",
        "CAM01",
        "--warehouse",
        url,
        "--batch-seconds",
        "10",
    ]
    # The stop must come while the file is still being read. A child process signalled when its log shows the
    # first landed chunk may read the rest of the file before the signal arrives (a loaded machine), so the
    # command runs here and SIGTERM is sent to this process on the very log line that reports the first
    # landed chunk: the handler `sightline stream` installed runs before the next frame is read.
    stopper = _SigtermOnFirstChunk()
    logger = logging.getLogger("ingestion.stream.video")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(stopper)
    try:
        assert main(args) == 0
    finally:
        logger.removeHandler(stopper)
        logger.setLevel(level)
    log = "\n".join(stopper.lines)
    assert stopper.sent, log
    assert any("stopped before the end" in line for line in stopper.lines), log
    stopped = _rows(url, site)
    # stopped part-way...
    assert 0 < stopped.height < reference.height, (stopped.height, reference.height, log)
    with connect(url, site) as wh:
        chunks = wh.query("SELECT batch_id FROM raw.ingest_batches")["batch_id"].to_list()
    assert all(":partial" not in c for c in chunks)
    # ...with whole chunks only: each landed chunk equals the reference's rows of its 10 s window.
    start = segment_start_time(video, site)
    chunk_of = ((pl.col("ts") - pl.lit(start)).dt.total_seconds() // 10).alias("chunk")
    landed_chunks = stopped.select(chunk_of.unique())["chunk"].to_list()
    assert_frame_equal(stopped, reference.filter(chunk_of.is_in(landed_chunks)))

    assert main(args) == 0  # the re-run
    assert_frame_equal(_rows(url, site), reference)  # complete, nothing twice
