"""What a real detector and tracker get wrong, as knobs: dropouts, ID switches, bbox jitter, false positives
and camera outages. Noise is planned per camera-day in time (independent of fps and window) and applied to
the clean samples; the ground truth is always computed from the clean samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

import numpy as np

MIN_SEEN_SECONDS = 1.0


@dataclass(frozen=True)
class NoiseConfig:
    # Detection dropouts: runs of frames in which a tracked person is not detected (occlusion, blur).
    dropouts_per_minute: float = 0.0  # per minute of track time
    dropout_seconds: tuple[float, float] = (0.4, 6.0)  # run length range; keep the max below session_gap
    # ID switches: the tracker hands a track a new id from some moment on (probability per track).
    id_switch_probability: float = 0.0
    # Gaussian noise on the box position (px); the size gets half of it.
    bbox_jitter_px: float = 0.0
    # False positives: short-lived, low-confidence boxes anywhere in the frame.
    false_positives_per_hour: float = 0.0
    false_positive_seconds: tuple[float, float] = (0.2, 1.0)
    false_positive_confidence: tuple[float, float] = (0.25, 0.5)
    # Camera outages: local-time windows, every simulated day, in which the camera delivers no frames.
    outages: tuple[tuple[time, time], ...] = ()
    outage_cameras: tuple[str, ...] | None = None  # None: every camera

    def __post_init__(self) -> None:
        for name in (
            "dropouts_per_minute",
            "id_switch_probability",
            "bbox_jitter_px",
            "false_positives_per_hour",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"NoiseConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.id_switch_probability <= 1:
            raise ValueError(
                f"NoiseConfig.id_switch_probability must be within 0..1, got {self.id_switch_probability}"
            )
        for name in ("dropout_seconds", "false_positive_seconds", "false_positive_confidence"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(
                    f"NoiseConfig.{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}"
                )
        if self.false_positive_confidence[1] > 1:
            raise ValueError("NoiseConfig.false_positive_confidence must stay within 0..1")
        for start, end in self.outages:
            if not (start < end or end == time(0)):
                raise ValueError(
                    f"NoiseConfig.outages: ({start}, {end}) must end after it starts "
                    "(time(0) as the end means midnight)"
                )

    @property
    def is_clean(self) -> bool:
        return self == NoiseConfig()

    def outage_applies(self, camera_id: str) -> bool:
        return bool(self.outages) and (self.outage_cameras is None or camera_id in self.outage_cameras)


NOISE_PRESETS: dict[str, NoiseConfig] = {
    "none": NoiseConfig(),
    # Roughly a good tracker on a clear overhead view: a dropout every two minutes per person, one track in a
    # hundred switches id, a few px of box noise, a stray box every ten minutes.
    "realistic": NoiseConfig(
        dropouts_per_minute=0.5,
        dropout_seconds=(0.4, 6.0),
        id_switch_probability=0.01,
        bbox_jitter_px=3.0,
        false_positives_per_hour=6.0,
    ),
}


def resolve_noise(noise: str | NoiseConfig) -> NoiseConfig:
    if isinstance(noise, NoiseConfig):
        return noise
    try:
        return NOISE_PRESETS[noise]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown noise preset {noise!r}: use one of {', '.join(NOISE_PRESETS)} "
            "or pass a NoiseConfig(...)"
        ) from None


@dataclass(frozen=True)
class Intervals:
    """Sorted, non-overlapping [start, end) time intervals, each owned by a group (a track, or -1 = all)."""

    group: np.ndarray
    start: np.ndarray
    end: np.ndarray = field(repr=False)

    def covers(self, group: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether each (group, t) falls inside one of the intervals of its group."""
        if len(self.start) == 0:
            return np.zeros(len(t), dtype=bool)
        # Sort key: group first, then time. Times are < 2^17 s, so 2^18 per group keeps them apart.
        span = float(1 << 18)
        keys = self.group * span + self.start
        row = group * span + t
        i = np.searchsorted(keys, row, side="right") - 1
        ok = i >= 0
        inside = np.zeros(len(t), dtype=bool)
        inside[ok] = (self.group[i[ok]] == group[ok]) & (t[ok] < self.end[i[ok]])
        return inside


def plan_dropouts(
    rng: np.random.Generator, track_start: np.ndarray, track_end: np.ndarray, cfg: NoiseConfig
) -> Intervals:
    """A renewal process per track: wait, miss a run of frames, repeat. Runs are at least MIN_SEEN_SECONDS
    apart, so two runs never merge into one gap longer than dropout_seconds allows."""
    groups, starts, ends = [], [], []
    if cfg.dropouts_per_minute > 0:
        mean_wait = 60.0 / cfg.dropouts_per_minute
        lo, hi = cfg.dropout_seconds
        for tr, (a, b) in enumerate(zip(track_start, track_end, strict=True)):
            t = a + rng.exponential(mean_wait)
            while t < b:
                length = rng.uniform(lo, hi)
                groups.append(tr)
                starts.append(t)
                ends.append(t + length)
                t += length + MIN_SEEN_SECONDS + rng.exponential(mean_wait)
    return Intervals(
        np.asarray(groups, dtype=np.int64),
        np.asarray(starts, dtype=np.float64),
        np.asarray(ends, dtype=np.float64),
    )


def plan_id_switches(
    rng: np.random.Generator, track_start: np.ndarray, track_end: np.ndarray, cfg: NoiseConfig
) -> np.ndarray:
    """Per track, the time from which it carries a new id (inf: never)."""
    n = len(track_start)
    switch = rng.random(n) < cfg.id_switch_probability
    at = track_start + rng.uniform(0.1, 0.9, n) * (track_end - track_start)
    return np.where(switch, at, np.inf)


@dataclass(frozen=True)
class FalsePositives:
    t0: np.ndarray
    t1: np.ndarray
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    h: np.ndarray


def plan_false_positives(
    rng: np.random.Generator, day_length: float, width: int, height: int, cfg: NoiseConfig
) -> FalsePositives:
    n = rng.poisson(cfg.false_positives_per_hour * day_length / 3600.0)
    t0 = np.sort(rng.uniform(0, day_length - 2.0, n))
    w = rng.uniform(20, 90, n)
    h = rng.uniform(30, 170, n)
    return FalsePositives(
        t0,
        t0 + rng.uniform(*cfg.false_positive_seconds, n),
        rng.uniform(0, width - w),
        rng.uniform(0, height - h),
        w,
        h,
    )


def outage_intervals(cfg: NoiseConfig, camera_id: str, sec_of) -> Intervals:
    """The day's outage windows as seconds since local midnight (`sec_of` converts a local time)."""
    if not cfg.outage_applies(camera_id):
        return Intervals(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    spans = sorted((sec_of(a), sec_of(b, end=True)) for a, b in cfg.outages)
    merged: list[list[float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    arr = np.asarray(merged, dtype=np.float64).reshape(-1, 2)
    return Intervals(np.full(len(arr), -1, np.int64), arr[:, 0], arr[:, 1])
