"""One warehouse per backend shared by the workforce and report tests (building marts is the slow part).

Site: the repository's site.yaml plus a worker registry (two simulated workers with assigned zones, one
without, the rest left unregistered) and a schedule override on 2025-01-30 (different hours, one long
break, 4 indices). Data:
- 2025-01-30 (the override day) and 2025-01-31: camera CAM01 simulated without noise at 1 fps;
- 2025-02-03 (a Monday, another week and month): constructed detections on CAM02 only, a late start in
  block 1 and work going on 6 minutes past the end of the day, by an unregistered worker id.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from ingestion.schema import CAMERA_HEALTH_SCHEMA, DETECTION_SCHEMA, HEALTH_WINDOW_SECONDS, epoch_us
from ingestion.simulate import SimulationResult, simulate
from ingestion.site import Site, load_site
from ingestion.transform import TransformResult, build_marts
from ingestion.warehouse import connect

REPO_SITE = Path(__file__).resolve().parent.parent / "site.yaml"
OVERRIDE_DAY, REGULAR_DAY, CONSTRUCTED_DAY = date(2025, 1, 30), date(2025, 1, 31), date(2025, 2, 3)
UNREGISTERED = "B-77"
REGISTRY = [
    {"worker_id": "CAM01-W01", "name": "Ann Lee", "shift": "day", "zones": ["Z01"], "skill": "assembly"},
    {"worker_id": "CAM01-W02", "name": "Bo Chan", "shift": "day", "zones": ["Z02", "Z03"]},
    {"worker_id": "CAM01-W03", "name": "Cy Park"},
]


def workforce_site(tmp: Path) -> Site:
    doc = yaml.safe_load(REPO_SITE.read_text())
    doc = copy.deepcopy(doc)
    doc["workers"] = REGISTRY
    doc["schedule"]["overrides"] = [
        {
            "date": OVERRIDE_DAY,
            "work_start": "08:00",
            "work_end": "16:00",
            "breaks": [{"start": "12:00", "minutes": 60}],
            "indices": 4,
            "note": "stock-take",
        },
    ]
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_site(path)


def constructed_day(site: Site, day: date = CONSTRUCTED_DAY) -> tuple[pl.DataFrame, pl.DataFrame]:
    """CAM02 on `day`, 1 fps in zone Z05: track 1 from 08:10 to the 10:00 break (block 1 starts 10 minutes
    late), track 2 from 16:00 to 17:06 (the last block's work ends 6 minutes late); health every 10 s from
    07:50 to 17:20, so the data covers every block."""

    def seconds(a: time, b: time) -> pl.Series:
        start = site.local_datetime(day, a)
        n = int((site.local_datetime(day, b) - start).total_seconds())
        return pl.Series("ts", epoch_us(start) + 1_000_000 * np.arange(n + 1)).cast(pl.Datetime("us"))

    parts = []
    for track, (a, b) in enumerate([(time(8, 10), time(10)), (time(16), time(17, 6))], start=1):
        ts = seconds(a, b)
        parts.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "camera_id": "CAM02",
                    "frame_idx": np.arange(len(ts)),
                    "track_id": track,
                    "class_id": 0,
                    "confidence": 0.9,
                    "x": 300.0,
                    "y": 300.0,
                    "w": 60.0,
                    "h": 120.0,
                    "zone_id": "Z05",
                    "motion_score": 0.5,
                    "worker_id": UNREGISTERED,
                    "batch_id": "constructed",
                }
            )
        )
    detections = (
        pl.concat(parts)
        .with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
        .cast(dict(DETECTION_SCHEMA))
        .select(list(DETECTION_SCHEMA))
    )
    start = site.local_datetime(day, time(7, 50))
    windows = [
        start + timedelta(seconds=HEALTH_WINDOW_SECONDS * i)
        for i in range(int(9.5 * 3600 / HEALTH_WINDOW_SECONDS))
    ]
    health = (
        pl.DataFrame(
            {
                "window_start": windows,
                "camera_id": "CAM02",
                "frames_read": 10,
                "frames_processed": 10,
                "frames_dropped": 0,
                "decode_errors": 0,
                "latency_ms_mean": 5.0,
                "latency_ms_p95": 8.0,
                "batch_id": "constructed",
            }
        )
        .cast(dict(CAMERA_HEALTH_SCHEMA))
        .select(list(CAMERA_HEALTH_SCHEMA))
    )
    return detections, health


@dataclass
class Workforce:
    site: Site
    sim: SimulationResult
    urls: dict[str, str]  # backend -> warehouse URL
    builds: dict[str, list[TransformResult]]


def land_and_build(url: str, site: Site, sim: SimulationResult) -> list[TransformResult]:
    with connect(url, site) as wh:
        wh.setup()
        for camera_id, day, detections, health in sim.camera_days():
            wh.replace_partition(camera_id, day, detections, source="simulator", camera_health=health)
        detections, health = constructed_day(site)
        wh.replace_partition(
            "CAM02", CONSTRUCTED_DAY, detections, source="detection_log", camera_health=health
        )
    return [
        build_marts(url, OVERRIDE_DAY, REGULAR_DAY + timedelta(days=1), site=site),
        build_marts(url, CONSTRUCTED_DAY, CONSTRUCTED_DAY + timedelta(days=1), site=site),
    ]


def make_workforce(tmp: Path, pg_url: str) -> Workforce:
    site = workforce_site(tmp)
    sim = simulate(site, start=OVERRIDE_DAY, days=2, cameras=["CAM01"], fps=1.0, noise="none", seed=5)
    urls = {"duckdb": f"duckdb:///{tmp / 'warehouse.duckdb'}", "postgres": pg_url}
    builds = {backend: land_and_build(url, site, sim) for backend, url in urls.items()}
    return Workforce(site, sim, urls, builds)


def local(site: Site, day: date, at: time) -> datetime:
    return site.local_datetime(day, at)
