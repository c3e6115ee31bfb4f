"""Frames -> tracked detections -> landed batches.

Per processed frame: the background subtraction (`ForegroundModel`: a presence mask, frozen inside the
previous frame's tracked boxes so still people stay foreground, and an adaptive motion mask), the detector
and tracker on the presence mask, each box's motion score from the motion mask. Each frame's Tracks
collect, carrying their ts, frame_idx and motion score as data, and land through `Warehouse.append_batch`
every `batch_seconds` of video with a deterministic batch id (`<source>:<camera>:<source start>:<chunk
index>`), so a crash loses nothing already committed and re-running a source skips what landed before. The
merge, scaling to camera pixels, zones and the frame building run once per batch, vectorised.

One pipeline runs the sources of one camera in time order: a source that starts where the previous one
ended (the next recorded segment) continues its background model, tracks and track ids (`continues`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import cv2
import numpy as np
import polars as pl

from ingestion.detectors import Detector, Tracks
from ingestion.detectors.foreground import ForegroundModel
from ingestion.schema import DETECTION_SCHEMA, HEALTH_WINDOW_SECONDS, epoch_us
from ingestion.site import Site
from ingestion.video.health import HealthRecorder, window_floor
from ingestion.video.sources import Frame, VideoSourceError
from ingestion.warehouse.base import LandingResult, Warehouse
from ingestion.zones import assign_zones

log = logging.getLogger(__name__)

# Track ids restart at 1 for every run of contiguous sources; offsetting them by the start of the run's first
# source (epoch seconds) keeps them unique per camera per day and stable across re-runs.
TRACK_ID_STRIDE = 1_000_000
# A source starting at most this long after the previous source's last frame (same pipeline, same camera)
# continues it: the background model and the tracks carry over (recorded segments are cut from one stream).
CONTINUE_GAP_SECONDS = 2.0


class FrameSource(Protocol):
    label: str
    start_time: datetime

    def frames(self, health: HealthRecorder) -> Iterator[Frame]: ...


@dataclass
class IngestReport:
    source: str
    camera_id: str
    frames_read: int = 0
    frames_processed: int = 0
    detections: int = 0
    landed: int = 0
    rejected: int = 0
    batches_landed: int = 0
    batches_skipped: int = 0
    health_rows: int = 0
    decode_errors: int = 0
    error: str | None = None


@dataclass
class _Chunk:
    """One batch window's frames: their Tracks, each carrying data ts (epoch us), frame_idx, motion_score."""

    index: int
    tracks: list[Tracks] = field(default_factory=list)
    frame_size: tuple[int, int] | None = None  # (width, height) of the decoded frames


def track_id_base(start_time: datetime) -> int:
    return int(start_time.timestamp()) * TRACK_ID_STRIDE


class VideoPipeline:
    """Runs one source through background subtraction, a detector and landing. One per source."""

    def __init__(
        self,
        warehouse: Warehouse,
        site: Site,
        camera_id: str,
        detector: Detector,
        *,
        fps: float = 5.0,
        batch_seconds: int = 60,
        source_name: str = "video",
        on_frame: Callable[[IngestReport, int], None] | None = None,
        on_batch: Callable[[LandingResult], None] | None = None,
    ):
        if batch_seconds <= 0 or batch_seconds % HEALTH_WINDOW_SECONDS:
            raise ValueError(
                f"batch_seconds must be a positive multiple of {HEALTH_WINDOW_SECONDS} "
                f"(health windows may not straddle batches), got {batch_seconds}"
            )
        self.warehouse = warehouse
        self.site = site
        self.camera = site.camera(camera_id)
        self.zones = site.zones_for(camera_id)
        self.detector = detector
        self.fps = fps
        self.batch_seconds = batch_seconds
        self.source_name = source_name
        self.on_frame = on_frame
        self.on_batch = on_batch
        self.foreground = ForegroundModel(fps)
        self._last_ts: datetime | None = None  # last processed frame of the previous source
        self._base_id = 0
        self._live = np.empty((0, 4), np.float32)  # last tracked boxes: their background is frozen
        self._empty_scene = self._read_empty_scene()

    def _read_empty_scene(self) -> np.ndarray | None:
        """The camera's `background_image` (an image of the scene without people), or None when the site
        gives none. Read when the pipeline is made, so a bad image stops it before any frame is read."""
        path = self.camera.background_image
        if path is None:
            return None
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(
                f"{path}: cannot read it as an image (camera {self.camera.id}'s background_image in "
                f"{self.site.path}): save a PNG or JPEG still of the empty scene there"
            )
        return image

    def continues(self, start_time: datetime) -> bool:
        """Whether a source starting at `start_time` continues the previous one run by this pipeline: it
        starts after that source's last frame, at most CONTINUE_GAP_SECONDS later (the next segment of
        a recording). Then the background model and the tracker's state carry over and a person keeps
        their track id across the cut, instead of every segment boundary splitting each visit in two
        (and a fresh background absorbing whoever stands still at the cut). The rows of a source
        depend only on it and the contiguous sources before it, which a camera-day run always
        processes in order, so a re-run gives the same rows."""
        if self._last_ts is None:
            return False
        gap = (start_time - self._last_ts).total_seconds()
        return 0 < gap <= CONTINUE_GAP_SECONDS

    def run(self, source: FrameSource) -> IngestReport:
        """Process and land the whole source. Raises VideoSourceError (after landing every decoded frame
        and recording the failure as a dead letter) when the source fails."""
        camera_id = self.camera.id
        report = IngestReport(source.label, camera_id)
        health = HealthRecorder(camera_id)
        if not self.continues(source.start_time):
            self.detector.reset(empty_scene=self._empty_scene is not None)
            self.foreground.reset(self._empty_scene)
            self._base_id = track_id_base(source.start_time)
            self._live = np.empty((0, 4), np.float32)
        self._last_ts = None  # a failed source is not continued
        origin = window_floor(source.start_time)
        prefix = f"{self.source_name}:{camera_id}:{source.start_time:%Y-%m-%dT%H-%M-%S.%fZ}"
        base_id = self._base_id
        chunk: _Chunk | None = None
        live = self._live
        last_ts: datetime | None = None
        try:
            for frame in source.frames(health):
                k = int((frame.ts - origin).total_seconds() // self.batch_seconds)
                if chunk is not None and k != chunk.index:
                    self._land(report, prefix, origin, chunk, health)
                    chunk = None
                if chunk is None:
                    chunk = _Chunk(k)
                started = time.perf_counter()
                mask = self.foreground.apply(frame.image, freeze=live)
                tracks = self.detector.update(frame.image, mask)
                motion = self.foreground.motion_score(tracks.xywh, frame.image)
                live = self.detector.freeze_boxes(tracks)
                health.processed(frame.ts, (time.perf_counter() - started) * 1000.0)
                n = len(tracks)
                data = {
                    "ts": np.full(n, epoch_us(frame.ts), dtype=np.int64),
                    "frame_idx": np.full(n, frame.index, dtype=np.int64),
                    "motion_score": motion,
                }
                chunk.tracks.append(replace(tracks, track_id=tracks.track_id + base_id, data=data))
                chunk.frame_size = (frame.image.shape[1], frame.image.shape[0])
                last_ts = frame.ts
                report.frames_processed += 1
                report.detections += n
                if self.on_frame is not None:
                    self.on_frame(report, n)
        except KeyboardInterrupt:
            # Stopping a live stream (or a long file) with Ctrl-C keeps what was processed so far.
            if chunk is not None:
                self._land(report, prefix, origin, chunk, health, partial=True)
            self._land_health_only(report, prefix, health)
            raise
        except VideoSourceError as exc:
            report.error = str(exc)
            if chunk is not None:
                self._land(report, prefix, origin, chunk, health, partial=True)
                chunk = None
            self._land_health_only(report, prefix, health)
            payload = json.dumps(
                {
                    "source": source.label,
                    "camera_id": camera_id,
                    "error": exc.problem,
                    "frames_processed": report.frames_processed,
                }
            )
            self.warehouse.reject(
                self.source_name, camera_id, [payload], [f"video source failed: {exc.problem}"]
            )
            raise
        finally:
            report.frames_read, report.decode_errors = health.total_read, health.total_decode_errors
        if chunk is not None:
            self._land(report, prefix, origin, chunk, health)
        self._land_health_only(report, prefix, health)
        self._last_ts, self._live = last_ts, live
        return report

    def _land(
        self,
        report: IngestReport,
        prefix: str,
        origin: datetime,
        chunk: _Chunk,
        health: HealthRecorder,
        *,
        partial: bool = False,
    ) -> None:
        start = origin + timedelta(seconds=chunk.index * self.batch_seconds)
        end = start + timedelta(seconds=self.batch_seconds)
        # A chunk cut short (source failure, Ctrl-C) gets its own id, so re-running the source later lands
        # the full chunk instead of skipping it as "already committed" (overlapping rows are refused as
        # duplicates and recorded as dead letters).
        batch_id = f"{prefix}:{chunk.index:05d}" + (":partial" if partial else "")
        rows = self._rows(chunk)
        result = self.warehouse.append_batch(
            batch_id,
            rows,
            source=self.source_name,
            camera_id=self.camera.id,
            window=(start, end),
            camera_health=health.take(before=end),
        )
        self._count(report, result)

    def _land_health_only(self, report: IngestReport, prefix: str, health: HealthRecorder) -> None:
        """Health windows with no processed frame (e.g. decode failures after the last good frame)."""
        rows = health.take()
        if rows.height == 0:
            return
        start = rows["window_start"].min()
        end = rows["window_start"].max() + timedelta(seconds=HEALTH_WINDOW_SECONDS)
        batch_id = f"{prefix}:health:{start:%Y-%m-%dT%H-%M-%S}"
        result = self.warehouse.append_batch(
            batch_id,
            pl.DataFrame(schema=DETECTION_SCHEMA),
            source=self.source_name,
            camera_id=self.camera.id,
            window=(start, end),
            camera_health=rows,
        )
        self._count(report, result)

    def _count(self, report: IngestReport, result: LandingResult) -> None:
        report.landed += result.landed
        report.rejected += result.rejected
        report.health_rows += result.health_rows
        report.batches_skipped += int(result.skipped)
        report.batches_landed += int(not result.skipped)
        if self.on_batch is not None:
            self.on_batch(result)

    def _zone_ids(self, tracks: Tracks) -> pl.Series:
        assigned = assign_zones(self.zones, tracks)
        codes = np.full(len(assigned), len(self.zones), dtype=np.int64)  # last name = null (no zone)
        for i, zone in enumerate(self.zones):
            codes[assigned == zone.id] = i
        return pl.Series("zone_id", [z.id for z in self.zones] + [None], dtype=pl.String).gather(codes)

    def _rows(self, chunk: _Chunk) -> pl.DataFrame:
        """The chunk's detections as a DETECTION_SCHEMA frame, boxes scaled to the camera's pixels."""
        tracks = Tracks.merge(chunk.tracks)
        if len(tracks) == 0:
            return pl.DataFrame(schema=DETECTION_SCHEMA)
        frame_w, frame_h = chunk.frame_size
        # Zones are drawn in the camera's configured pixels; a stream recorded at another resolution
        # (a sub-stream, a downscaled export) is mapped onto them.
        scale = np.array([self.camera.width / frame_w, self.camera.height / frame_h] * 2)
        tracks = replace(tracks, xywh=tracks.xywh.astype(np.float64) * scale)
        x, y, w, h = tracks.xywh.T
        frame = (
            pl.DataFrame(
                {
                    "ts": tracks.data["ts"],
                    "frame_idx": tracks.data["frame_idx"],
                    "track_id": tracks.track_id,
                    "class_id": tracks.class_id,
                    "confidence": tracks.conf,
                    "x": x,
                    "y": y,
                    "w": w,
                    "h": h,
                    "zone_id": self._zone_ids(tracks),
                    "motion_score": tracks.data["motion_score"],
                }
            )
            .with_columns(
                pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
                pl.lit(self.camera.id).alias("camera_id"),
                pl.lit(None, dtype=pl.String).alias("worker_id"),
                pl.lit(None, dtype=pl.String).alias("batch_id"),
            )
            .select(list(DETECTION_SCHEMA))
        )
        return frame.cast(DETECTION_SCHEMA).sort("ts", "track_id")
