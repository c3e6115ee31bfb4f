"""Camera health rows: per camera per 10 s window, what the camera delivered (frames read and processed,
drops, decode errors, processing latency). An outage shows as windows with no frames read."""

from __future__ import annotations

import numpy as np
import polars as pl

from ingestion.schema import CAMERA_HEALTH_SCHEMA, HEALTH_WINDOW_SECONDS
from ingestion.simulate.noise import Intervals
from ingestion.simulate.randomness import hashed_uniform


def camera_health(
    camera_id: str,
    midnight_us: int,
    fps: float,
    first_frame: int,
    end_frame: int,
    window: tuple[float, float],
    outages: Intervals,
    key: int,
) -> pl.DataFrame:
    """Rows for the 10 s windows (aligned to local midnight) that meet `window` (seconds since midnight)."""
    step = HEALTH_WINDOW_SECONDS
    first_w = int(window[0] // step)
    end_w = int(-(-window[1] // step))
    n = max(end_w - first_w, 0)
    frames = np.arange(first_frame, end_frame, dtype=np.int64)
    t = frames / fps
    delivered = ~outages.covers(np.full(len(t), -1, np.int64), t)
    w_idx = np.floor(t[delivered] / step).astype(np.int64) - first_w
    read = np.bincount(w_idx, minlength=n)[:n].astype(np.int32)
    widx = np.arange(first_w, end_w, dtype=np.int64)
    u1 = hashed_uniform(key, widx, widx, 101)
    u2 = hashed_uniform(key, widx, widx, 102)
    mean = 12.0 + 14.0 * u1
    p95 = mean * (1.3 + 0.5 * u2)
    has = read > 0
    starts_us = midnight_us + widx * step * 1_000_000
    return pl.DataFrame(
        {
            "window_start": pl.Series(starts_us, dtype=pl.Int64)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC"),
            "camera_id": pl.Series([camera_id] * n, dtype=pl.String),
            "frames_read": read,
            "frames_processed": read,
            "frames_dropped": np.zeros(n, np.int32),
            "decode_errors": np.zeros(n, np.int32),
            "latency_ms_mean": pl.Series(np.where(has, mean, np.nan), dtype=pl.Float32).fill_nan(None),
            "latency_ms_p95": pl.Series(np.where(has, p95, np.nan), dtype=pl.Float32).fill_nan(None),
            "batch_id": pl.Series([None] * n, dtype=pl.String),
        },
        schema=CAMERA_HEALTH_SCHEMA,
    )
