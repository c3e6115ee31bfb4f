"""Detection rows of one camera-day: boxes as stored, zones, the noisy view of a tracker, and the final
DETECTION_SCHEMA frame. Rows travel as a dict of equal-length numpy columns until the frame is built."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ingestion.simulate.noise import (
    Intervals,
    NoiseConfig,
    plan_dropouts,
    plan_false_positives,
    plan_fragments,
    plan_id_switches,
)
from ingestion.simulate.plan import Plan
from ingestion.simulate.randomness import hashed_normals, hashed_uniform_pair, stable_rng
from ingestion.simulate.trajectories import Samples, clip_boxes, frame_range
from ingestion.site import Camera, Zone
from ingestion.zones import assign_zones

ID_SWITCH_OFFSET = 400_000  # track_id offset of tracks continued under a new id after an ID switch
FRAGMENT_OFFSET = 600_000  # track_id offset of the fragments a dropout or a between-frame switch starts
FALSE_POSITIVE_OFFSET = 800_000  # track_id offset of false positives


def frame_offset_us(frame: np.ndarray, fps: float) -> np.ndarray:
    return np.rint(frame * (1e6 / fps)).astype(np.int64)


def stored_boxes(x, y, w, h, camera: Camera) -> tuple[np.ndarray, ...]:
    """Boxes clipped to the frame, as the float32 the warehouse stores (zones are assigned from these very
    values, so anyone recomputing a zone from a landed row gets the same answer)."""
    return tuple(a.astype(np.float32) for a in clip_boxes(x, y, w, h, camera.width, camera.height))


def zone_codes(zones: Sequence[Zone], x, y, w, h) -> np.ndarray:
    """Zone index per box (-1: none), through the shared assign_zones."""
    assigned = assign_zones(zones, np.column_stack([x, y, w, h]))
    code_of = {zone.id: i for i, zone in enumerate(zones)} | {None: -1}
    return np.fromiter(map(code_of.__getitem__, assigned), dtype=np.int32, count=len(assigned))


def noisy_rows(
    s: Samples,
    tid: np.ndarray,
    u_conf: np.ndarray,
    motion: np.ndarray,
    worker: np.ndarray,
    plan: Plan,
    cfg: NoiseConfig,
    outages: Intervals,
    camera: Camera,
    zones: Sequence[Zone],
    fps: float,
    key: int,
    base_id: int,
) -> dict[str, np.ndarray]:
    """The clean samples as a tracker reports them: outages and dropouts cut, ids switched, boxes jittered."""
    t = s.frame / fps
    lost = outages.covers(np.full(len(t), -1, np.int64), t)
    dropouts = plan_dropouts(stable_rng(key, "dropouts"), plan.track_start, plan.track_end, cfg)
    lost |= dropouts.covers(s.track, t)
    kept = np.flatnonzero(~lost)
    frame, track, clean_tid, t = s.frame[kept], s.track[kept], tid[kept], t[kept]

    # ID switches: from the switch time on, the track continues under a new id.
    switch_at = plan_id_switches(stable_rng(key, "id_switches"), plan.track_start, plan.track_end, cfg)
    new_ids = base_id + ID_SWITCH_OFFSET + 1 + np.arange(plan.n_tracks, dtype=np.int64)
    out_tid = np.where(t >= switch_at[track], new_ids[track], clean_tid)
    if cfg.dropout_new_id_probability > 0 or cfg.id_switches_per_minute > 0:
        # Fragments: from each change on, the person carries the id of that change (the last one before t).
        rng = stable_rng(key, "fragments")
        changes = plan_fragments(rng, plan.track_start, plan.track_end, dropouts, cfg)
        span = float(1 << 18)  # times are < 2^17 s: keeps tracks apart in one sorted key
        i = np.searchsorted(changes.group * span + changes.start, track * span + t, side="right") - 1
        hit = i >= 0
        hit[hit] = changes.group[i[hit]] == track[hit]
        out_tid = np.where(hit, base_id + FRAGMENT_OFFSET + 1 + i, out_tid)

    box_w, box_h = plan.track_w[track], plan.track_h[track]
    x, y = s.px[kept] - box_w / 2, s.py[kept] - box_h
    if cfg.bbox_jitter_px > 0:
        sigma = cfg.bbox_jitter_px
        n1, n2, n3, n4 = hashed_normals(key, clean_tid, frame, 1)
        x, y = x + sigma * n1, y + sigma * n2
        box_w = np.maximum(box_w + 0.5 * sigma * n3, 4.0)
        box_h = np.maximum(box_h + 0.5 * sigma * n4, 4.0)
    if cfg.bbox_jitter_relative > 0 or cfg.bbox_size_jitter_relative > 0:
        # Foot point (bottom-centre) noise and a log-normal size error, both relative to the box height.
        n1, n2, n3, _ = hashed_normals(key, clean_tid, frame, 2)
        size = np.exp(cfg.bbox_size_jitter_relative * n3)
        foot_x = x + box_w / 2 + cfg.bbox_jitter_relative * box_h * n1
        foot_y = y + box_h + cfg.bbox_jitter_relative * box_h * n2
        box_w, box_h = np.maximum(box_w * size, 4.0), np.maximum(box_h * size, 4.0)
        x, y = foot_x - box_w / 2, foot_y - box_h
    x, y, w, h = stored_boxes(x, y, box_w, box_h, camera)
    return {
        "frame": frame,
        "tid": out_tid,
        "conf": 0.6 + 0.35 * u_conf[kept],
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "zone": zone_codes(zones, x, y, w, h),
        "motion": motion[kept],
        "worker": worker[kept],
    }


def false_positive_rows(
    cfg: NoiseConfig,
    outages: Intervals,
    camera: Camera,
    zones: Sequence[Zone],
    fps: float,
    frames: tuple[int, int],
    key: int,
    day_length: float,
    base_id: int,
) -> dict[str, np.ndarray]:
    """Short-lived, low-confidence boxes of no one, planned over the whole day and cut to the window."""
    fp = plan_false_positives(
        stable_rng(key, "false_positives"), day_length, camera.width, camera.height, cfg
    )
    k0, k1 = frame_range(fp.t0, fp.t1, fps)
    counts = np.maximum(np.clip(k1, *frames) - np.clip(k0, *frames), 0)
    k0 = np.clip(k0, *frames)
    event = np.repeat(np.arange(len(counts)), counts)
    frame = np.arange(len(event), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts - k0, counts)
    delivered = ~outages.covers(np.full(len(frame), -1, np.int64), frame / fps)
    event, frame = event[delivered], frame[delivered]
    fp_tid = base_id + FALSE_POSITIVE_OFFSET + 1 + event
    u_conf, u_motion = hashed_uniform_pair(key, fp_tid, frame, 11)
    lo, hi = cfg.false_positive_confidence
    x, y, w, h = stored_boxes(fp.x[event], fp.y[event], fp.w[event], fp.h[event], camera)
    return {
        "frame": frame,
        "tid": fp_tid,
        "conf": lo + (hi - lo) * u_conf,
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "zone": zone_codes(zones, x, y, w, h),
        "motion": u_motion.astype(np.float32),
        "worker": np.full(len(frame), -1, np.int64),
    }


def detection_frame(
    camera_id: str, rows: dict, midnight_us: int, fps: float, zone_ids: list[str], worker_ids: list[str]
) -> pl.DataFrame:
    order = np.lexsort((rows["tid"], rows["frame"]))
    frame = rows["frame"][order]
    zone = rows["zone"][order]
    worker = rows["worker"][order]
    zone_names = pl.Series("zone_id", [*zone_ids, None], dtype=pl.String)
    worker_names = pl.Series("worker_id", [*worker_ids, None], dtype=pl.String)
    n = len(frame)
    df = pl.DataFrame(
        {
            "ts": pl.Series(midnight_us + frame_offset_us(frame, fps), dtype=pl.Int64),
            "frame_idx": frame,
            "track_id": rows["tid"][order],
            "confidence": rows["conf"][order].astype(np.float32),
            "x": rows["x"][order].astype(np.float32),
            "y": rows["y"][order].astype(np.float32),
            "w": rows["w"][order].astype(np.float32),
            "h": rows["h"][order].astype(np.float32),
            "zone_id": zone_names.gather(np.where(zone < 0, len(zone_ids), zone))
            if n
            else zone_names.clear(),
            "motion_score": rows["motion"][order].astype(np.float32),
            "worker_id": worker_names.gather(np.where(worker < 0, len(worker_ids), worker))
            if n
            else worker_names.clear(),
        }
    )
    return df.select(
        pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.lit(camera_id, dtype=pl.String).alias("camera_id"),
        "frame_idx",
        "track_id",
        pl.lit(0, dtype=pl.Int16).alias("class_id"),
        "confidence",
        "x",
        "y",
        "w",
        "h",
        "zone_id",
        "motion_score",
        "worker_id",
        pl.lit(None, dtype=pl.String).alias("batch_id"),
    )
