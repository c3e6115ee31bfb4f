"""Accuracy of the session layer against a ground truth, and the statistics of a tracker's errors.

Used by bench/accuracy.py (MOT17-09 and the simulator) and by the simulator's realism test:

- `match_boxes`: tracker boxes matched to ground-truth boxes, one-to-one per frame at IoU >= 0.5 (the
  MOTChallenge criterion), by a min-cost assignment per frame;
- `oracle_relabel`: the tracker's boxes relabelled with the identity each matches — the best any
  linking can do with these detections;
- `fragmentation_stats`: how a tracker breaks identities (fragments, gaps, ID switches, false-positive
  tracks, box noise), per minute of annotated identity time so a short clip and a long day compare;
- `zone_totals`, `naive_totals`, `compare`: session count and dwell per zone, the naive first-seen /
  last-seen timer, and relative errors.

Frames are vectorised with polars; only the per-frame assignment loops (over frames, not rows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

IOU_MATCH = 0.5


def box_iou(a: str, b: str) -> pl.Expr:
    """Intersection over union of the boxes in columns {a}x, {a}y, {a}w, {a}h and {b}x... (top-left, size)."""
    ix = (
        pl.min_horizontal(pl.col(f"{a}x") + pl.col(f"{a}w"), pl.col(f"{b}x") + pl.col(f"{b}w"))
        - pl.max_horizontal(f"{a}x", f"{b}x")
    ).clip(lower_bound=0)
    iy = (
        pl.min_horizontal(pl.col(f"{a}y") + pl.col(f"{a}h"), pl.col(f"{b}y") + pl.col(f"{b}h"))
        - pl.max_horizontal(f"{a}y", f"{b}y")
    ).clip(lower_bound=0)
    inter = ix * iy
    return inter / (pl.col(f"{a}w") * pl.col(f"{a}h") + pl.col(f"{b}w") * pl.col(f"{b}h") - inter)


def _boxes(frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return frame.select(
        pl.col("frame_idx").alias("frame"),
        pl.col("track_id").alias(f"{prefix}_id"),
        *[pl.col(c).cast(pl.Float64).alias(f"{prefix}_{c}") for c in ("x", "y", "w", "h")],
        *([pl.col("camera_id")] if "camera_id" in frame.columns else []),
    )


def match_boxes(tracker: pl.DataFrame, truth: pl.DataFrame, iou: float = IOU_MATCH) -> pl.DataFrame:
    """Pairs (frame, trk_id, gt_id, iou, boxes) of tracker and truth boxes (raw.detections columns
    frame_idx, track_id, x, y, w, h; optionally camera_id) matched one-to-one per frame with IoU >= iou,
    maximising the total IoU."""
    key = ["frame"] + (
        ["camera_id"] if "camera_id" in tracker.columns and "camera_id" in truth.columns else []
    )
    t, g = _boxes(tracker, "trk"), _boxes(truth, "gt")
    if len(key) == 1:
        t, g = t.drop("camera_id", strict=False), g.drop("camera_id", strict=False)
    pairs = t.join(g, on=key)
    pairs = pairs.with_columns(box_iou("trk_", "gt_").alias("iou")).filter(pl.col("iou") >= iou)
    if pairs.height == 0:
        return pairs
    # Frames where every candidate box has one candidate are already one-to-one: no assignment needed.
    pairs = pairs.with_columns(
        pl.len().over([*key, "trk_id"]).alias("_nt"), pl.len().over([*key, "gt_id"]).alias("_ng")
    )
    ambiguous = pl.col("_nt").max().over(key).gt(1) | pl.col("_ng").max().over(key).gt(1)
    pairs = pairs.with_columns(ambiguous.alias("_amb"))
    done = [pairs.filter(~pl.col("_amb"))]
    for _, part in pairs.filter(pl.col("_amb")).group_by(key):
        trk, ti = np.unique(part["trk_id"].to_numpy(), return_inverse=True)
        gt, gi = np.unique(part["gt_id"].to_numpy(), return_inverse=True)
        cost = np.full((trk.size, gt.size), 2.0)
        cost[ti, gi] = -part["iou"].to_numpy()
        r, c = linear_sum_assignment(cost)
        keep = cost[r, c] < 0
        chosen = set(zip(trk[r[keep]].tolist(), gt[c[keep]].tolist(), strict=True))
        mask = [
            (a, b) in chosen for a, b in zip(part["trk_id"].to_list(), part["gt_id"].to_list(), strict=True)
        ]
        done.append(part.filter(pl.Series(mask)))
    return pl.concat(done).drop("_nt", "_ng", "_amb").sort(key + ["gt_id"])


def oracle_relabel(tracker: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """The tracker's rows that match a truth box, with track_id replaced by the matched identity (rows
    matching nothing are dropped: the oracle also knows they are false positives)."""
    m = match_boxes(tracker, truth).select(
        "frame",
        pl.col("trk_id").alias("track_id"),
        "gt_id",
        *(["camera_id"] if "camera_id" in tracker.columns else []),
    )
    key = ["frame_idx", "track_id"] + (["camera_id"] if "camera_id" in tracker.columns else [])
    return (
        tracker.join(m.rename({"frame": "frame_idx"}), on=key)
        .with_columns(pl.col("gt_id").alias("track_id"))
        .drop("gt_id")
    )


@dataclass(frozen=True)
class Fragmentation:
    """How a tracker breaks the annotated identities (per minute of identity time = frames / fps / 60)."""

    identities: int
    identity_minutes: float
    recall: float  # share of annotated person-frames matched by a tracker box
    fragments_per_identity: float  # distinct runs of one tracker id along an identity (1 = unbroken)
    gaps_per_minute: float  # runs of unmatched frames between matched ones, per identity-minute
    gap_seconds_mean: float
    gap_seconds_p90: float
    switches_per_minute: float  # tracker id changes along an identity, per identity-minute
    switch_after_gap_share: float  # of the id changes, the share across a gap (else: between frames)
    gap_new_id_share: float  # of the gaps, the share after which the identity has another tracker id
    false_tracks_per_minute: float  # tracker tracks matching nothing in >= half their frames, per minute
    false_track_seconds_mean: float
    foot_noise: float  # std of the matched foot point's offset (x and y pooled), in box heights
    height_noise: float  # std of log(tracker height / truth height)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def fragmentation_stats(tracker: pl.DataFrame, truth: pl.DataFrame, fps: float) -> Fragmentation:
    """Fragmentation of `tracker` against `truth` (both raw.detections columns; one camera or keyed by
    camera_id). Frames are consecutive integers at `fps`."""
    cams = "camera_id" in tracker.columns and "camera_id" in truth.columns
    ident = (["camera_id"] if cams else []) + ["gt_id"]
    m = match_boxes(tracker, truth)
    g = truth.select(
        *(["camera_id"] if cams else []),
        pl.col("track_id").alias("gt_id"),
        pl.col("frame_idx").alias("frame"),
    )
    per_frame = g.join(
        m.select(*(["camera_id"] if cams else []), "gt_id", "frame", "trk_id"),
        on=ident + ["frame"],
        how="left",
    ).sort(ident + ["frame"])
    identity_frames = per_frame.height
    matched = per_frame.filter(pl.col("trk_id").is_not_null())
    minutes = identity_frames / fps / 60
    # Along each identity's matched frames: frame jumps (gaps) and id changes.
    seq = matched.with_columns(
        (pl.col("frame") - pl.col("frame").shift(1).over(ident) - 1).alias("missed"),
        (pl.col("trk_id") != pl.col("trk_id").shift(1).over(ident)).alias("changed"),
    )
    steps = seq.filter(pl.col("missed").is_not_null())
    gaps = steps.filter(pl.col("missed") > 0)
    changes = steps.filter(pl.col("changed"))
    runs = seq.with_columns(
        pl.col("changed").fill_null(True).cast(pl.Int64).cum_sum().over(ident).alias("run")
    )
    fragments = runs.group_by(ident).agg(pl.col("trk_id").n_unique().alias("n"))
    # False-positive tracks: tracker tracks with fewer than half of their frames matched.
    trk_key = (["camera_id"] if cams else []) + ["track_id"]
    own = tracker.group_by(trk_key).agg(pl.len().alias("frames"))
    hit = (
        m.group_by((["camera_id"] if cams else []) + ["trk_id"])
        .agg(pl.len().alias("hits"))
        .rename({"trk_id": "track_id"})
    )
    tracks = own.join(hit, on=trk_key, how="left").with_columns(pl.col("hits").fill_null(0))
    false = tracks.filter(pl.col("hits") < pl.col("frames") / 2)
    fx = (m["trk_x"] + m["trk_w"] / 2 - (m["gt_x"] + m["gt_w"] / 2)) / m["gt_h"]
    fy = (m["trk_y"] + m["trk_h"] - (m["gt_y"] + m["gt_h"])) / m["gt_h"]
    foot = np.concatenate([fx.to_numpy(), fy.to_numpy()])
    gap_s = gaps["missed"].to_numpy() / fps
    return Fragmentation(
        identities=g.select(ident).unique().height,
        identity_minutes=minutes,
        recall=matched.height / max(identity_frames, 1),
        fragments_per_identity=float(fragments["n"].mean()) if fragments.height else 0.0,
        gaps_per_minute=gaps.height / minutes if minutes else 0.0,
        gap_seconds_mean=float(gap_s.mean()) if gap_s.size else 0.0,
        gap_seconds_p90=float(np.quantile(gap_s, 0.9)) if gap_s.size else 0.0,
        switches_per_minute=changes.height / minutes if minutes else 0.0,
        switch_after_gap_share=float((changes["missed"] > 0).mean()) if changes.height else 0.0,
        gap_new_id_share=float(gaps["changed"].mean()) if gaps.height else 0.0,
        false_tracks_per_minute=false.height
        / (tracker["frame_idx"].n_unique() / fps / 60)
        / (tracker["camera_id"].n_unique() if cams else 1),
        false_track_seconds_mean=float(false["frames"].mean() / fps) if false.height else 0.0,
        foot_noise=float(np.std(foot - np.median(foot))) if foot.size else 0.0,
        height_noise=float(np.log(m["trk_h"] / m["gt_h"]).std()) if m.height else 0.0,
    )


# ------------------------------------------------------------------ sessions vs truth


def zone_totals(sessions: pl.DataFrame) -> pl.DataFrame:
    """Per zone: session count and total dwell seconds (sessions with zone_id, duration_seconds)."""
    return (
        sessions.group_by("zone_id")
        .agg(pl.len().alias("sessions"), pl.col("duration_seconds").sum().alias("dwell_seconds"))
        .sort("zone_id")
    )


def naive_totals(detections: pl.DataFrame, min_seconds: float = 0.0) -> pl.DataFrame:
    """The naive timer: per (track, zone), one session from its first to its last sample in the zone
    (no gaps, no linking), kept when at least `min_seconds` long."""
    per = (
        detections.filter(pl.col("zone_id").is_not_null())
        .group_by([c for c in ("camera_id", "track_id", "zone_id") if c in detections.columns])
        .agg(
            ((pl.col("ts").max() - pl.col("ts").min()).dt.total_microseconds() / 1e6).alias(
                "duration_seconds"
            )
        )
    )
    return zone_totals(per.filter(pl.col("duration_seconds") >= min_seconds))


def compare(got: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Per zone and in total ('all'): relative count and dwell error of `got` against `truth` (zone_totals
    frames), in percent."""
    j = truth.join(got, on="zone_id", how="full", suffix="_got", coalesce=True).fill_null(0)
    total = j.select(pl.lit("all").alias("zone_id"), pl.exclude("zone_id").sum())
    j = pl.concat(
        [
            j.with_columns(pl.col(c).cast(pl.Float64) for c in j.columns if c != "zone_id"),
            total.with_columns(pl.col(c).cast(pl.Float64) for c in total.columns if c != "zone_id"),
        ]
    )
    return j.select(
        "zone_id",
        pl.col("sessions").alias("true_sessions"),
        pl.col("sessions_got").alias("sessions"),
        (100 * (pl.col("sessions_got") - pl.col("sessions")) / pl.col("sessions")).alias("count_error_pct"),
        pl.col("dwell_seconds").alias("true_dwell_seconds"),
        pl.col("dwell_seconds_got").alias("dwell_seconds"),
        (100 * (pl.col("dwell_seconds_got") - pl.col("dwell_seconds")) / pl.col("dwell_seconds")).alias(
            "dwell_error_pct"
        ),
    )
