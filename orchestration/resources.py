"""Dagster resources: thin, configurable handles on the site config, the warehouse, SQLMesh and the
detection source. Values come from the environment (`EnvVar`) where one is set, so the same definitions
run embedded (DuckDB file, simulated cameras) and deployed (PostgreSQL, recorded segments)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from ingestion.site import Site, load_site
from ingestion.warehouse import DEFAULT_WAREHOUSE_URL, Warehouse, connect
from ingestion.warehouse.base import SIMULATOR_SOURCE

DEFAULT_SEGMENTS_DIR = "data/segments"


class SiteResource(dg.ConfigurableResource):
    """The site config (cameras, zones, schedule, thresholds)."""

    path: str | None = Field(
        default=None, description="Site YAML file; default $SIGHTLINE_SITE or site.yaml."
    )

    def load(self) -> Site:
        return load_site(self.path)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse the raw facts land in and SQLMesh builds the marts in."""

    url: str = Field(
        default=DEFAULT_WAREHOUSE_URL,
        description="duckdb:///path.duckdb (embedded) or postgresql://... (deployed).",
    )
    site: SiteResource

    @property
    def backend(self) -> str:
        return "duckdb" if self.url.startswith("duckdb://") else "postgres"

    @contextmanager
    def connect(self) -> Iterator[Warehouse]:
        """An open warehouse, closed on exit: DuckDB allows one writing process, so never hold it idle."""
        wh = connect(self.url, self.site.load())
        try:
            yield wh
        finally:
            wh.close()


class SQLMeshResource(dg.ConfigurableResource):
    """The SQLMesh project in transforms/, run through `ingestion.transform` (the one way marts are built,
    shared with `sightline transform`) against the warehouse resource's database."""

    warehouse: WarehouseResource

    def build(self, start: date, end: date):
        """Build the marts for site-local days [start, end); returns ingestion.transform.TransformResult.

        Always a restatement: materialising a day means "build this day from what has landed now", so a
        re-landed camera-day or a day built earlier by the CLI is rebuilt, and only that window changes.
        """
        from ingestion.transform import build_marts

        return build_marts(self.warehouse.url, start, end, restate=True, site=self.warehouse.site.load())

    @contextmanager
    def open(self) -> Iterator:
        """A SQLMesh context on this warehouse (to run audits after a failed build), closed on exit."""
        from ingestion.transform import sqlmesh_context

        ctx = sqlmesh_context(self.warehouse.url, self.warehouse.site.load())
        try:
            yield ctx
        finally:
            ctx.close()


@dataclass(frozen=True)
class LandedPartition:
    """What one camera-day's ingestion landed."""

    source: str
    landed: int
    rejected: int
    health_rows: int
    inputs: tuple[str, ...] = ()  # files read, for recorded sources


class DetectionSourceResource(dg.ConfigurableResource):
    """Where a camera-day's detections come from.

    - `simulated` (default): the deterministic simulator, for demos and tests.
    - `segments`: recorded video segments `<path>/<camera>/<start>.mp4`, run through the vision pipeline.
    - `detection_logs`: detection logs `<path>/<camera>/<day>.*` written by an upstream tracker.
    """

    kind: Literal["simulated", "segments", "detection_logs"] = "simulated"
    path: str | None = Field(default=None, description="Folder of recorded segments or detection logs.")
    fps: float = Field(default=2.0, description="Simulated or processed frames per second.")
    noise: str = Field(default="realistic", description="Simulator noise: none or realistic.")
    seed: int = 0
    window: str | None = Field(
        default=None,
        description="Simulate only this local time window each day, "
        "HH:MM-HH:MM (e.g. 08:00-10:00 for quick tests).",
    )
    detector: str = Field(default="motion", description="Vision detector for segments: motion or yolo.")
    weights: str | None = Field(default=None, description="YOLO weights file for detector=yolo.")
    segments_dir: str = Field(
        default=DEFAULT_SEGMENTS_DIR,
        description="Folder the new_recorded_segments sensor watches for recorded segments "
        "(<camera>/<local start>.mp4); $SIGHTLINE_SEGMENTS_DIR where set.",
    )

    def folder(self) -> Path:
        if not self.path:
            raise ValueError(
                f"the {self.kind} detection source needs a folder: set SIGHTLINE_SOURCE_PATH "
                "or the detection_source resource's `path`"
            )
        return Path(self.path)

    def land(self, wh: Warehouse, site: Site, camera_id: str, day: date) -> LandedPartition:
        """Land one camera-day; re-running is idempotent. The simulator replaces the partition, and refuses
        (SimulatorWouldReplaceRealData) when the camera-day holds rows of any other source."""
        if self.kind == "simulated":
            return self._land_simulated(wh, site, camera_id, day)
        if self.kind == "segments":
            return self._land_segments(wh, site, camera_id, day)
        return self._land_detection_logs(wh, site, camera_id, day)

    def _land_simulated(self, wh: Warehouse, site: Site, camera_id: str, day: date) -> LandedPartition:
        from ingestion.simulate import simulate

        window = _parse_window(self.window) if self.window else None
        now_local = datetime.now(site.tz)
        if day == now_local.date():  # today: only what has "happened" so far
            window = ((window or (time(0), time(0)))[0], now_local.time().replace(microsecond=0))
        sim = simulate(
            site,
            start=day,
            days=1,
            cameras=[camera_id],
            fps=self.fps,
            noise=self.noise,
            seed=self.seed,
            window=window,
        )
        res = wh.replace_partition(
            camera_id, day, sim.detections, source=SIMULATOR_SOURCE, camera_health=sim.camera_health
        )
        return LandedPartition(SIMULATOR_SOURCE, res.landed, res.rejected, res.health_rows)

    def _land_segments(self, wh: Warehouse, site: Site, camera_id: str, day: date) -> LandedPartition:
        """Every recorded segment of the camera starting on this site-local day, through the vision pipeline.
        Segments land in batches whose ids derive from the segment, so re-running skips what landed."""
        from ingestion.detectors import make_detector
        from ingestion.video import VideoFileSource, VideoPipeline, discover_segments

        segments = [
            seg
            for seg in discover_segments(self.folder(), site, cameras=[camera_id])
            if site.local_day(seg.start_time) == day
        ]
        landed = rejected = health = 0
        for seg in segments:
            detector = make_detector(self.detector, fps=self.fps, weights=self.weights)
            pipeline = VideoPipeline(wh, site, camera_id, detector, fps=self.fps, source_name="segments")
            report = pipeline.run(VideoFileSource(seg.path, seg.start_time, target_fps=self.fps))
            landed, rejected, health = (
                landed + report.landed,
                rejected + report.rejected,
                health + report.health_rows,
            )
        return LandedPartition("segments", landed, rejected, health, tuple(str(seg.path) for seg in segments))

    def _land_detection_logs(self, wh: Warehouse, site: Site, camera_id: str, day: date) -> LandedPartition:
        """Detection logs `<path>/<camera>/<YYYY-MM-DD>*.jsonl|parquet` (named by their site-local day),
        landed exactly once per file content (ingestion.detection_logs)."""
        from ingestion.detection_logs import ingest_detection_log

        folder = self.folder() / camera_id
        files = sorted(p for p in folder.glob(f"{day.isoformat()}*") if p.suffix in (".jsonl", ".parquet"))
        landed = rejected = 0
        for path in files:
            summary = ingest_detection_log(wh, path, path.suffix.lstrip("."), camera_id=camera_id)
            landed, rejected = landed + summary.landed, rejected + summary.rejected
        return LandedPartition("detection_log", landed, rejected, 0, tuple(str(p) for p in files))


def _parse_window(text: str) -> tuple[time, time]:
    try:
        a, b = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError as exc:
        raise ValueError(
            f"detection_source window {text!r}: write it as HH:MM-HH:MM, e.g. 08:00-10:00"
        ) from exc
    return a, b


def env_or(name: str, default: str | None) -> str | dg.EnvVar | None:
    """EnvVar(name) when the variable is set (resolved at run time, shown as such in the UI), else default."""
    return dg.EnvVar(name) if os.environ.get(name) else default
