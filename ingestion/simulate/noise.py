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
    # Fragmentation as a real tracker does it (rates per minute of track time, any number per track):
    # after a dropout the person comes back under a new id with this probability...
    dropout_new_id_probability: float = 0.0
    # ...and the id changes between two frames without any gap at this rate.
    id_switches_per_minute: float = 0.0
    # Gaussian noise on the box position (px); the size gets half of it.
    bbox_jitter_px: float = 0.0
    # The same as a share of the box height (real trackers' errors scale with the person's size): the
    # foot position's sigma, and the sigma of the box size.
    bbox_jitter_relative: float = 0.0
    bbox_size_jitter_relative: float = 0.0
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
            "id_switches_per_minute",
            "bbox_jitter_px",
            "bbox_jitter_relative",
            "bbox_size_jitter_relative",
            "false_positives_per_hour",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"NoiseConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("id_switch_probability", "dropout_new_id_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"NoiseConfig.{name} must be within 0..1, got {getattr(self, name)}")
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


# What a published tracker (Lif_T) gets wrong on MOT17-09 (../shared/data/mot17/MOT17-09, tracker_LifT.txt
# against gt.txt; 26 identities, 2.96 identity-minutes at 30 fps), measured by
# quality.accuracy.fragmentation_stats (boxes matched one-to-one per frame at IoU >= 0.5) and printed by
# bench/accuracy.py. tests/test_simulator_realism.py checks these numbers against the data and that the
# `realistic` preset reproduces them.
MOT17_FRAGMENTATION: dict[str, float] = {
    "recall": 0.7275,  # annotated person-frames the tracker finds (not modelled: whole people missed)
    "gaps_per_minute": 3.042,  # runs of missed frames inside an identity, per identity-minute
    "gap_seconds_mean": 2.141,
    "gap_seconds_p90": 3.853,
    "switches_per_minute": 5.408,  # tracker id changes along an identity, per identity-minute
    "switch_after_gap_share": 0.4375,  # of those, the share across a gap
    "gap_new_id_share": 0.7778,  # of the gaps, the share after which the person has a new id
    "false_tracks_per_minute": 3.429,  # tracks matching nothing in >= half their frames, per minute
    "false_track_seconds_mean": 0.1333,
    "foot_noise": 0.0211,  # std of the foot point's offset, in box heights
    "height_noise": 0.0350,  # std of log(height / true height)
}
_M = MOT17_FRAGMENTATION

NOISE_PRESETS: dict[str, NoiseConfig] = {
    "none": NoiseConfig(),
    # A real tracker, from MOT17_FRAGMENTATION: ~3 dropouts per person-minute of ~2 s (uniform 0.2..4.1 s:
    # mean 2.15, p90 3.7), after most of which the person has a new id; id changes between frames at the
    # remaining switch rate; box noise scaled to the box; ~3.4 short false tracks a minute. The dropout
    # rate is that of a renewal process whose waits exclude the run and MIN_SEEN_SECONDS, so that the
    # gaps per minute of person time match.
    "realistic": NoiseConfig(
        dropouts_per_minute=1 / (1 / _M["gaps_per_minute"] - (2.15 + MIN_SEEN_SECONDS) / 60),
        dropout_seconds=(0.2, 4.1),
        dropout_new_id_probability=_M["gap_new_id_share"],
        id_switches_per_minute=_M["switches_per_minute"] * (1 - _M["switch_after_gap_share"]),
        bbox_jitter_relative=_M["foot_noise"],
        bbox_size_jitter_relative=_M["height_noise"],
        false_positives_per_hour=_M["false_tracks_per_minute"] * 60,
        false_positive_seconds=(0.1, 0.2),  # mean 0.15 s: at least one frame at 10 fps
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


def plan_fragments(
    rng: np.random.Generator,
    track_start: np.ndarray,
    track_end: np.ndarray,
    dropouts: Intervals,
    cfg: NoiseConfig,
) -> Intervals:
    """The moments a track changes id for good (as `Intervals` with start = the moment, end unused):
    the end of a dropout with probability dropout_new_id_probability, plus id switches between frames at
    id_switches_per_minute (Poisson per track). Sorted by (track, time)."""
    rate = cfg.id_switches_per_minute / 60.0
    counts = rng.poisson(rate * np.maximum(track_end - track_start, 0.0))
    group = np.repeat(np.arange(len(track_start), dtype=np.int64), counts)
    at = track_start[group] + rng.random(group.size) * (track_end - track_start)[group]
    after_gap = rng.random(len(dropouts.start)) < cfg.dropout_new_id_probability
    group = np.concatenate([group, dropouts.group[after_gap]])
    at = np.concatenate([at, dropouts.end[after_gap]])
    order = np.lexsort((at, group))
    return Intervals(group[order], at[order], at[order])


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
