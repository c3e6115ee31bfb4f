"""`sightline stream --source rtsp://...|file --camera CAMxx`: the vision pipeline, run live.

This is `ingestion.video.VideoPipeline` (detector, tracker, motion, health, landing through
`append_batch` with deterministic batch ids), fed by a live source and stoppable by a signal (exit 0):

- live camera (rtsp://, http://, a device number): on SIGTERM the source stops after the current frame and
  the pipeline lands the open chunk. Live frames cannot be replayed, so a SIGKILL loses the open chunk
  (at most `--batch-seconds`, rounded up to 10 s) and nothing else.
- a file is replayed as recorded: its start time comes from its sidecar or segment name when it has one
  (see `ingestion.video.segments`), otherwise from the wall clock now. On SIGTERM the open chunk is *not*
  landed: it would commit under the id of the full chunk and a re-run would then skip the missing rest.
  Running the file again lands exactly what is missing (committed chunks are skipped by the ledger).

On a DuckDB file the warehouse is opened for each chunk and closed after it (`_PerCall`), like the MQTT
consumer does between micro-batches, so Dagster and transforms can open the file meanwhile.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ingestion.site import Site
from ingestion.video import LiveStreamSource, VideoFileSource, VideoPipeline
from ingestion.video.health import HealthRecorder
from ingestion.video.pipeline import FrameSource
from ingestion.video.segments import SegmentError, segment_start_time
from ingestion.video.sources import Frame
from ingestion.warehouse import connect

log = logging.getLogger(__name__)
LIVE_SOURCE = "stream-video"
LIVE_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


class StoppedBeforeEnd(Exception):
    """A file replay was stopped: the open chunk is dropped, committed chunks stay (re-run to finish)."""


class _UntilStopped:
    """Wraps a file source so that a stop request ends it between frames, without landing the open chunk."""

    def __init__(self, inner: FrameSource, stop: threading.Event):
        self.inner, self.stop = inner, stop
        self.label, self.start_time = inner.label, inner.start_time

    def frames(self, health: HealthRecorder) -> Iterator[Frame]:
        for frame in self.inner.frames(health):
            yield frame
            if self.stop.is_set():
                raise StoppedBeforeEnd(self.label)


def open_source(source: str, site: Site, *, fps: float, stop: threading.Event) -> FrameSource:
    if source.startswith(LIVE_SCHEMES) or source.isdigit():
        return LiveStreamSource(source, target_fps=fps, stop=stop)
    path = Path(source)
    try:
        start = segment_start_time(path, site)
    except SegmentError:
        start = datetime.now(UTC)
        log.info("%s has no recorded start time: stamping frames from now (%s)", path, start.isoformat())
    return _UntilStopped(VideoFileSource(path, start, target_fps=fps), stop)


def stream_video(
    source: str,
    camera_id: str,
    warehouse_url: str,
    site: Site,
    *,
    detector: str = "motion",
    weights: str | None = None,
    fps: float = 5.0,
    batch_seconds: float = 10.0,
) -> int:
    """Run until the source ends or SIGTERM/SIGINT; returns the process exit code (0)."""
    from ingestion.detectors import make_detector

    site.camera(camera_id)  # unknown camera: a clear KeyError before anything starts
    # Health windows are 10 s and may not straddle batches, so chunks are whole multiples of 10 s.
    chunk_seconds = max(10, math.ceil(batch_seconds / 10) * 10)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(
            source,
            camera_id,
            warehouse_url,
            site,
            fps=fps,
            chunk_seconds=chunk_seconds,
            stop=stop,
            detector=make_detector(detector, fps=fps, weights=weights),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _PerCall:
    """The warehouse calls of the pipeline (`append_batch`, `reject`), each on a connection opened for it and
    closed after it: an embedded DuckDB file is held only while a chunk lands."""

    def __init__(self, url: str, site: Site):
        self.url, self.site = url, site

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            with connect(self.url, self.site) as wh:
                return getattr(wh, name)(*args, **kwargs)

        return call

    def __enter__(self) -> _PerCall:
        return self

    def __exit__(self, *exc) -> None:
        pass


def _run(
    source: str,
    camera_id: str,
    warehouse_url: str,
    site: Site,
    *,
    detector,
    fps: float,
    chunk_seconds: int,
    stop: threading.Event,
) -> int:
    with connect(warehouse_url, site) as wh:
        wh.require_setup()
    embedded_file = warehouse_url.startswith("duckdb:///") and warehouse_url != "duckdb:///:memory:"
    with _PerCall(warehouse_url, site) if embedded_file else connect(warehouse_url, site) as wh:
        pipeline = VideoPipeline(
            wh,
            site,
            camera_id,
            detector,
            fps=fps,
            batch_seconds=chunk_seconds,
            source_name=LIVE_SOURCE,
            on_batch=lambda r: log.info(
                "batch %s: %d rows landed%s",
                r.batch_id,
                r.landed,
                " (already landed before)" if r.skipped else "",
            ),
        )
        try:
            report = pipeline.run(open_source(source, site, fps=fps, stop=stop))
        except StoppedBeforeEnd:
            log.info(
                "stopped before the end of %s: committed chunks are kept, run it again to land the rest",
                source,
            )
            return 0
    log.info(
        "stopped: %d frames processed, %d detections, %d rows landed in %d batches (%d skipped)",
        report.frames_processed,
        report.detections,
        report.landed,
        report.batches_landed,
        report.batches_skipped,
    )
    return 0
