"""Per-camera health in 10 s windows (raw.camera_health): what the source delivered, whatever it showed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from ingestion.schema import CAMERA_HEALTH_SCHEMA, EPOCH, HEALTH_WINDOW_SECONDS, epoch_us

_WINDOW_US = HEALTH_WINDOW_SECONDS * 1_000_000


def window_floor(ts: datetime) -> datetime:
    """Start of the 10 s health window holding ts (windows are aligned to the epoch, in UTC)."""
    return EPOCH + timedelta(microseconds=epoch_us(ts) // _WINDOW_US * _WINDOW_US)


@dataclass
class _Window:
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    decode_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)


class HealthRecorder:
    """Counts frames per 10 s window as they happen; `take(before)` hands over finished windows.

    frames_read: frames decoded from the source; frames_processed: frames run through the detector;
    frames_dropped: frames due for processing that were not processed (a live stream outpacing us);
    decode_errors: frames the source lost (corrupt or missing data, failed reads).
    """

    def __init__(self, camera_id: str):
        self.camera_id = camera_id
        self._windows: dict[datetime, _Window] = {}
        self.total_read = 0  # over the whole source, including windows already taken
        self.total_decode_errors = 0

    def _at(self, ts: datetime) -> _Window:
        return self._windows.setdefault(window_floor(ts), _Window())

    def read(self, ts: datetime, n: int = 1) -> None:
        self._at(ts).frames_read += n
        self.total_read += n

    def processed(self, ts: datetime, latency_ms: float) -> None:
        w = self._at(ts)
        w.frames_processed += 1
        w.latencies_ms.append(latency_ms)

    def dropped(self, ts: datetime, n: int = 1) -> None:
        self._at(ts).frames_dropped += n

    def decode_error(self, ts: datetime, n: int = 1) -> None:
        self._at(ts).decode_errors += n
        self.total_decode_errors += n

    def take(self, before: datetime | None = None) -> pl.DataFrame:
        """Remove and return the windows that start before `before` (all when None), as health rows."""
        starts = sorted(s for s in self._windows if before is None or s < before)
        rows = [self._windows.pop(s) for s in starts]
        lat = [np.asarray(r.latencies_ms, dtype=np.float64) for r in rows]
        return pl.DataFrame(
            {
                "window_start": starts,
                "camera_id": [self.camera_id] * len(rows),
                "frames_read": [r.frames_read for r in rows],
                "frames_processed": [r.frames_processed for r in rows],
                "frames_dropped": [r.frames_dropped for r in rows],
                "decode_errors": [r.decode_errors for r in rows],
                "latency_ms_mean": [float(a.mean()) if a.size else None for a in lat],
                "latency_ms_p95": [float(np.percentile(a, 95)) if a.size else None for a in lat],
                "batch_id": [None] * len(rows),
            },
            schema=CAMERA_HEALTH_SCHEMA,
        )
