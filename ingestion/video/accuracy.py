"""How well the vision path recovers ground-truth sessions (the simulator knows the truth)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class SessionAccuracy:
    truth_sessions: int
    matched_sessions: (
        int  # ground-truth sessions with a detected session of the same camera and zone overlapping
    )
    detected_sessions: int
    truth_dwell_seconds: float
    detected_dwell_seconds: float

    @property
    def matched_share(self) -> float:
        return self.matched_sessions / self.truth_sessions if self.truth_sessions else 1.0

    @property
    def dwell_error(self) -> float:
        """Relative error of total dwell (detected vs truth)."""
        if not self.truth_dwell_seconds:
            return 0.0 if not self.detected_dwell_seconds else float("inf")
        return abs(self.detected_dwell_seconds - self.truth_dwell_seconds) / self.truth_dwell_seconds

    def __str__(self) -> str:
        return (
            f"{self.matched_sessions}/{self.truth_sessions} ground-truth sessions matched "
            f"({self.matched_share:.1%}), {self.detected_sessions} detected; total dwell "
            f"{self.detected_dwell_seconds:.0f} s vs {self.truth_dwell_seconds:.0f} s true "
            f"({self.dwell_error:.1%} off)"
        )


def compare_sessions(truth: pl.DataFrame, detected: pl.DataFrame) -> SessionAccuracy:
    """Match sessions by camera and zone with overlapping [entry_time, exit_time] (a join, no loops)."""
    cols = ["camera_id", "zone_id", "entry_time", "exit_time"]
    t = truth.select(cols).with_row_index("truth_row")
    d = detected.select(cols)
    pairs = t.join(d, on=["camera_id", "zone_id"], suffix="_d").filter(
        (pl.col("entry_time") <= pl.col("exit_time_d")) & (pl.col("entry_time_d") <= pl.col("exit_time"))
    )
    return SessionAccuracy(
        truth_sessions=truth.height,
        matched_sessions=pairs["truth_row"].n_unique(),
        detected_sessions=detected.height,
        truth_dwell_seconds=float(truth["duration_seconds"].sum()),
        detected_dwell_seconds=float(detected["duration_seconds"].sum()),
    )
