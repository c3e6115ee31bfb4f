"""simulate(): a site's cameras over days, as detections, camera health and ground-truth sessions.

Every camera-day is generated on its own from (seed, camera, day, fps, noise, window), so one camera-day
simulated alone equals its slice of a larger run, and a window equals its slice of the whole day.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property

import numpy as np
import polars as pl

from ingestion.schema import CAMERA_HEALTH_SCHEMA, DETECTION_SCHEMA, EPOCH, epoch_us
from ingestion.simulate.detections import (
    detection_frame,
    false_positive_rows,
    frame_offset_us,
    noisy_rows,
    stored_boxes,
    zone_codes,
)
from ingestion.simulate.geometry import camera_geometry
from ingestion.simulate.ground_truth import SESSION_SCHEMA, restatus, sessionize
from ingestion.simulate.health import camera_health
from ingestion.simulate.noise import NoiseConfig, outage_intervals, resolve_noise
from ingestion.simulate.plan import DayClock, WorldConfig, plan_camera_day
from ingestion.simulate.randomness import hashed_uniform_pair, stable_key, stable_rng
from ingestion.simulate.trajectories import frame_range, motion_scores, sample_plan
from ingestion.site import Site

TRACKS_PER_DAY = 1_000_000  # track_id = day ordinal * this + n: unique per camera per day, readable


@dataclass(frozen=True)
class CameraDay:
    camera_id: str
    day: date
    detections: pl.DataFrame
    camera_health: pl.DataFrame
    sessions: pl.DataFrame  # ground truth, statuses judged from this camera-day's own data
    last_seen: datetime | None  # the camera's last clean sample of the day (the status rule's "end of data")


@dataclass
class SimulationResult:
    site: Site
    start: date
    days: int
    cameras: tuple[str, ...]
    fps: float
    noise: NoiseConfig
    seed: int
    window: tuple[time, time] | None
    parts: list[CameraDay] = field(repr=False)

    @cached_property
    def detections(self) -> pl.DataFrame:
        """All detections (DETECTION_SCHEMA, batch_id null), sorted by camera_id, ts, track_id."""
        return _concat([p.detections for p in self.parts], DETECTION_SCHEMA)

    @cached_property
    def camera_health(self) -> pl.DataFrame:
        return _concat([p.camera_health for p in self.parts], CAMERA_HEALTH_SCHEMA)

    @cached_property
    def sessions(self) -> pl.DataFrame:
        """Ground truth: the sessions a perfect system reports (analytics.sessions columns) from all these
        camera-days landed together (see combine_sessions)."""
        return combine_sessions(self.parts, self.site)

    def camera_days(self) -> Iterator[tuple[str, date, pl.DataFrame, pl.DataFrame]]:
        """(camera_id, day, detections, camera_health) per camera-day, cameras in id order, days ascending."""
        for p in self.parts:
            yield p.camera_id, p.day, p.detections, p.camera_health


def _concat(frames: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    return pl.concat(frames, rechunk=False) if frames else pl.DataFrame(schema=schema)


def combine_sessions(parts: Iterable[CameraDay], site: Site) -> pl.DataFrame:
    """The ground truth of camera-days landed together. A visit cut by the end of a window is `active` only
    if it ends within session_gap_seconds of its camera's last data over all of them, else `interrupted`."""
    parts = list(parts)
    last_seen: dict[str, datetime] = {}
    for p in parts:
        if p.last_seen is not None:
            last_seen[p.camera_id] = max(p.last_seen, last_seen.get(p.camera_id, p.last_seen))
    sessions = _concat([p.sessions for p in parts], SESSION_SCHEMA)
    return restatus(sessions, last_seen, site.thresholds.session_gap_seconds)


def simulate(
    site: Site,
    start: date = date(2025, 1, 15),
    days: int = 1,
    cameras: Sequence[str] | None = None,
    fps: float = 5.0,
    noise: str | NoiseConfig = "none",
    seed: int = 0,
    window: tuple[time, time] | None = None,
    *,
    workers_per_camera: int | None = None,
    progress: bool = False,
) -> SimulationResult:
    """Simulate `days` site-local days from `start` for `cameras` (default: all, in id order).

    `window=(time(8), time(9))` restricts detections, health and ground truth to that local time window of
    each day (end time(0) = midnight). `noise` is a preset name ("none", "realistic") or a NoiseConfig.
    `workers_per_camera` overrides the crew size derived from the zones (see plan.staffing).
    """
    cfg = resolve_noise(noise)
    cam_ids = resolve_cameras(site, cameras)
    parts = list(
        iter_camera_days(
            site,
            start,
            days,
            cam_ids,
            fps=fps,
            noise=cfg,
            seed=seed,
            window=window,
            workers_per_camera=workers_per_camera,
            progress=progress,
        )
    )
    return SimulationResult(site, start, days, tuple(cam_ids), fps, cfg, seed, window, parts)


def resolve_cameras(site: Site, cameras: Sequence[str] | None) -> list[str]:
    """The cameras to simulate, in id order; unknown ids are an error naming the site's cameras."""
    if isinstance(cameras, str):  # one camera id, not a sequence of one-letter ids
        cameras = [cameras]
    cam_ids = sorted(site.camera_ids if cameras is None else set(cameras))
    unknown = [c for c in cam_ids if c not in site.camera_ids]
    if unknown:
        raise ValueError(
            f"unknown camera(s) {', '.join(unknown)}; the site {site.path} has {', '.join(site.camera_ids)}"
        )
    return cam_ids


def iter_camera_days(
    site: Site,
    start: date,
    days: int,
    cameras: Sequence[str] | None = None,
    *,
    fps: float = 5.0,
    noise: str | NoiseConfig = "none",
    seed: int = 0,
    window: tuple[time, time] | None = None,
    workers_per_camera: int | None = None,
    progress: bool = False,
) -> Iterator[CameraDay]:
    """Camera-days one at a time (cameras in id order, days ascending), for callers that land each one and
    need not hold them all in memory."""
    cfg = resolve_noise(noise)
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if window is not None and not (window[0] < window[1] or window[1] == time(0)):
        raise ValueError(
            f"window {window[0]:%H:%M}-{window[1]:%H:%M} must end after it starts "
            "(windows across midnight are not supported; use time(0) as the end for midnight)"
        )
    world = WorldConfig(workers_per_camera=workers_per_camera)
    jobs = [(c, start + timedelta(days=d)) for c in resolve_cameras(site, cameras) for d in range(days)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="simulating camera-days", unit="camera-day")
    for camera_id, day in jobs:
        yield simulate_camera_day(
            site, camera_id, day, fps=fps, noise=cfg, seed=seed, window=window, world=world
        )


def simulate_camera_day(
    site: Site,
    camera_id: str,
    day: date,
    *,
    fps: float = 5.0,
    noise: str | NoiseConfig = "none",
    seed: int = 0,
    window: tuple[time, time] | None = None,
    world: WorldConfig | None = None,
) -> CameraDay:
    """One camera-day, a pure function of (site, camera, day, fps, noise, seed, window, world)."""
    cfg = resolve_noise(noise)
    world = world or WorldConfig()
    camera = site.camera(camera_id)
    zones = site.zones_for(camera_id)
    geo = camera_geometry(camera, zones)
    clock = DayClock.of(site, day)
    day_start = site.day_window(day)[0]
    midnight_us = epoch_us(day_start)

    def sec_of(at: time, end: bool = False) -> float:
        if end and at == time(0):
            return clock.day_length
        return (site.local_datetime(day, at) - day_start).total_seconds()

    w_lo, w_hi = (
        (0.0, clock.day_length) if window is None else (sec_of(window[0]), sec_of(window[1], end=True))
    )
    k_lo, k_hi = (int(k) for k in frame_range(w_lo, w_hi, fps))

    plan = plan_camera_day(
        geo,
        clock,
        stable_rng("plan", seed, camera_id, day.isoformat()),
        world,
        site.thresholds.excessive_idle_seconds,
    )
    s = sample_plan(plan, fps, k_lo, k_hi)
    base_id = day.toordinal() * TRACKS_PER_DAY
    track_ids = base_id + 1 + np.arange(plan.n_tracks, dtype=np.int64)
    zone_ids, worker_ids = [z.id for z in zones], list(plan.worker_ids)

    # Clean rows: the world as it is. The truth is computed from these.
    tid = track_ids[s.track]
    box_w, box_h = plan.track_w[s.track], plan.track_h[s.track]
    x, y, w, h = stored_boxes(s.px - box_w / 2, s.py - box_h, box_w, box_h, camera)
    zone = zone_codes(zones, x, y, w, h)
    u_conf, u_motion = hashed_uniform_pair(
        stable_key("rows", seed, camera_id, day.isoformat()), tid, s.frame, 1
    )
    motion = motion_scores(s.kind, u_motion, site.thresholds.idle_motion_score).astype(np.float32)
    worker = plan.track_worker[s.track]
    ts_us = midnight_us + frame_offset_us(s.frame, fps)
    sessions = sessionize(site, camera_id, day, tid, ts_us, zone, motion, worker, zone_ids, worker_ids)

    outages = outage_intervals(cfg, camera_id, sec_of)
    if cfg.is_clean:
        rows = {
            "frame": s.frame,
            "tid": tid,
            "conf": 0.6 + 0.35 * u_conf,
            "x": x,
            "y": y,
            "w": w,
            "h": h,
            "zone": zone,
            "motion": motion,
            "worker": worker,
        }
    else:
        key = stable_key("noise", seed, camera_id, day.isoformat())
        rows = noisy_rows(
            s, tid, u_conf, motion, worker, plan, cfg, outages, camera, zones, fps, key, base_id
        )
        if cfg.false_positives_per_hour > 0:
            fp = false_positive_rows(
                cfg, outages, camera, zones, fps, (k_lo, k_hi), key, clock.day_length, base_id
            )
            rows = {k: np.concatenate([v, fp[k]]) for k, v in rows.items()}

    detections = detection_frame(camera_id, rows, midnight_us, fps, zone_ids, worker_ids)
    health = camera_health(
        camera_id,
        midnight_us,
        fps,
        k_lo,
        k_hi,
        (w_lo, w_hi),
        outages,
        stable_key("health", seed, camera_id, day.isoformat()),
    )
    last_seen = EPOCH + timedelta(microseconds=int(ts_us.max())) if len(ts_us) else None
    return CameraDay(camera_id, day, detections, health, sessions, last_seen)
