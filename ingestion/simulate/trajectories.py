"""Sampling plans at the frame rate, vectorised: one row per (track, frame) the track is in view.

Frame k of a day is captured k / fps seconds after the site-local midnight; a segment [t0, t1) owns the
frames with t0 <= k / fps < t1, so the contiguous segments of a track share out its frames exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingestion.simulate.plan import ACTIVE, Plan

_EPS = 1e-9


@dataclass(frozen=True)
class Samples:
    track: np.ndarray  # plan track index (int64)
    frame: np.ndarray  # frame number since local midnight (int64)
    px: np.ndarray  # bbox bottom-centre: where the person stands
    py: np.ndarray
    kind: np.ndarray  # WALK | ACTIVE | IDLE of the segment

    def __len__(self) -> int:
        return len(self.frame)


def frame_range(t0: np.ndarray | float, t1: np.ndarray | float, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """[first, end) frame numbers whose capture time lies in [t0, t1)."""
    return (
        np.ceil(np.asarray(t0) * fps - _EPS).astype(np.int64),
        np.ceil(np.asarray(t1) * fps - _EPS).astype(np.int64),
    )


def sample_plan(plan: Plan, fps: float, first_frame: int, end_frame: int) -> Samples:
    """Positions of every track at every frame in [first_frame, end_frame), ordered by (track, frame)."""
    k0, k1 = frame_range(plan.t0, plan.t1, fps)
    k0 = np.clip(k0, first_frame, end_frame)
    k1 = np.clip(k1, first_frame, end_frame)
    counts = np.maximum(k1 - k0, 0)
    seg = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    frame = np.arange(len(seg), dtype=np.int64) - np.repeat(starts - k0, counts)
    t = frame / fps
    span = plan.t1 - plan.t0
    frac = (t - plan.t0[seg]) / span[seg]
    px = plan.x0[seg] + frac * (plan.x1 - plan.x0)[seg]
    py = plan.y0[seg] + frac * (plan.y1 - plan.y0)[seg]
    # A person at a station sways around their spot (walking segments have sway 0); the phase differs per
    # segment so people do not move in step.
    sway = plan.sway[seg]
    phase = seg * 2.399963  # the golden angle: distinct, deterministic phases
    px += sway * np.sin(t * (2 * np.pi / 7.0) + phase)
    py += 0.5 * sway * np.sin(t * (2 * np.pi / 5.3) + 2 * phase)
    return Samples(plan.track[seg], frame, px, py, plan.kind[seg])


def clip_boxes(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, ...]:
    x0 = np.clip(x, 0.0, width - 1.0)
    y0 = np.clip(y, 0.0, height - 1.0)
    x1 = np.clip(x + w, x0 + 1.0, float(width))
    y1 = np.clip(y + h, y0 + 1.0, float(height))
    return x0, y0, x1 - x0, y1 - y0


def motion_ranges(idle_motion_score: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(active/walking range, idle range) of motion_score, clearly on either side of the site threshold."""
    thr = idle_motion_score
    return (thr + 0.25 * (1 - thr), thr + 0.85 * (1 - thr)), (0.0, 0.5 * thr)


def motion_scores(kind: np.ndarray, u: np.ndarray, idle_motion_score: float) -> np.ndarray:
    (a_lo, a_hi), (i_lo, i_hi) = motion_ranges(idle_motion_score)
    idle = kind > ACTIVE  # IDLE is the only kind above ACTIVE
    lo = np.where(idle, i_lo, a_lo)
    hi = np.where(idle, i_hi, a_hi)
    return lo + (hi - lo) * u
