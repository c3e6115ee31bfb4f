"""Ground-truth sessions from clean samples, in numpy, following the session semantics of COMMON.md
(an implementation independent of the SQL one in transforms/, so each can judge the other).

Per (camera, track), over the samples that have a zone, ordered by time: a visit starts where the zone
changes or where the time since the previous zoned sample exceeds session_gap_seconds. Active/idle time
adds min(dt, gap) to the state (by motion_score vs idle_motion_score) of the earlier sample of each pair.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from ingestion.schema import UTC_TS, epoch_us
from ingestion.site import Site

SESSION_SCHEMA = pl.Schema(
    {
        "session_id": pl.String(),
        "camera_id": pl.String(),
        "zone_id": pl.String(),
        "track_id": pl.Int64(),
        "worker_id": pl.String(),
        "entry_time": UTC_TS,
        "exit_time": UTC_TS,
        "duration_seconds": pl.Float64(),
        "total_active_seconds": pl.Float64(),
        "total_idle_seconds": pl.Float64(),
        "index_number": pl.Int32(),
        "status": pl.String(),
    }
)


def session_id(camera_id: str, track_id: int, entry_us: int) -> str:
    """md5 of camera_id|track_id|epoch-microseconds of entry_time, as the transforms compute it."""
    return hashlib.md5(f"{camera_id}|{track_id}|{entry_us}".encode()).hexdigest()


def empty_sessions() -> pl.DataFrame:
    return pl.DataFrame(schema=SESSION_SCHEMA)


def sessionize(
    site: Site,
    camera_id: str,
    day: date,
    track_id: np.ndarray,
    ts_us: np.ndarray,
    zone_code: np.ndarray,
    motion: np.ndarray,
    worker_code: np.ndarray,
    zone_ids: list[str],
    worker_ids: list[str],
) -> pl.DataFrame:
    """Sessions of one camera-day. Inputs are per sample and sorted by (track_id, ts_us); zone_code -1 means
    no zone, worker_code -1 no worker. All samples of the camera are given (for the status rule)."""
    th = site.thresholds
    if len(ts_us) == 0:
        return empty_sessions()
    gap_us = int(round(th.session_gap_seconds * 1e6))
    camera_last = int(ts_us.max())

    # Last sample of each track, whatever its zone: a visit that ends before it was seen leaving.
    track_change = np.flatnonzero(track_id[1:] != track_id[:-1]) + 1
    track_last_idx = np.append(track_change - 1, len(track_id) - 1)
    track_ids_sorted = track_id[track_last_idx]
    track_last_ts = ts_us[track_last_idx]

    zoned = zone_code >= 0
    tr, t, zone, mot = track_id[zoned], ts_us[zoned], zone_code[zoned], motion[zoned]
    wk = worker_code[zoned]
    if len(t) == 0:
        return empty_sessions()
    dt = np.diff(t)
    new_visit = np.ones(len(t), dtype=bool)
    new_visit[1:] = (tr[1:] != tr[:-1]) | (zone[1:] != zone[:-1]) | (dt > gap_us)
    starts = np.flatnonzero(new_visit)
    ends = np.append(starts[1:] - 1, len(t) - 1)

    # Pair (i, i+1) counts for sample i when both are in the same visit; its length is capped at the gap.
    pair_len = np.zeros(len(t), dtype=np.int64)
    same = ~new_visit[1:]
    pair_len[:-1] = np.where(same, np.minimum(dt, gap_us), 0)
    active = mot.astype(np.float64) >= th.idle_motion_score  # as SQL compares real with double
    active_us = np.add.reduceat(np.where(active, pair_len, 0), starts)
    idle_us = np.add.reduceat(np.where(active, 0, pair_len), starts)

    entry, exit_ = t[starts], t[ends]
    duration_us = exit_ - entry
    keep = duration_us >= int(round(th.min_session_seconds * 1e6))
    starts, entry, exit_, duration_us = starts[keep], entry[keep], exit_[keep], duration_us[keep]
    active_us, idle_us = active_us[keep], idle_us[keep]
    s_track, s_zone, s_worker = tr[starts], zone[starts], wk[starts]

    last_of_track = track_last_ts[np.searchsorted(track_ids_sorted, s_track)]
    status = np.where(
        last_of_track > exit_, "completed", np.where(camera_last - exit_ <= gap_us, "active", "interrupted")
    )

    blocks = site.index_timeline(day)
    block_start = np.array([epoch_us(b.scheduled_start) for b in blocks], dtype=np.int64)
    block_end = np.array([epoch_us(b.scheduled_end) for b in blocks], dtype=np.int64)
    bi = np.searchsorted(block_start, entry, side="right") - 1
    in_block = (
        (bi >= 0) & (entry < block_end[np.clip(bi, 0, None)]) if len(blocks) else np.zeros(len(entry), bool)
    )
    index_number = [int(i) + 1 if ok else None for i, ok in zip(bi, in_block, strict=True)]

    zone_names = np.array(zone_ids, dtype=object)
    worker_names = np.array([*worker_ids, None], dtype=object)
    return (
        pl.DataFrame(
            {
                "session_id": [
                    session_id(camera_id, int(a), int(b)) for a, b in zip(s_track, entry, strict=True)
                ],
                "camera_id": [camera_id] * len(entry),
                "zone_id": zone_names[s_zone].tolist(),
                "track_id": s_track,
                "worker_id": worker_names[s_worker].tolist(),
                "entry_time": entry,
                "exit_time": exit_,
                "duration_seconds": duration_us / 1e6,
                "total_active_seconds": active_us / 1e6,
                "total_idle_seconds": idle_us / 1e6,
                "index_number": index_number,
                "status": status.tolist(),
            },
            schema_overrides={"entry_time": pl.Int64, "exit_time": pl.Int64},
        )
        .with_columns(
            pl.col("entry_time").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            pl.col("exit_time").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        )
        .cast(dict(SESSION_SCHEMA))
        .select(list(SESSION_SCHEMA))
    )


def restatus(sessions: pl.DataFrame, last_seen: dict[str, datetime], gap_seconds: float) -> pl.DataFrame:
    """Re-judge `active` sessions against each camera's end of data over several camera-days together."""
    if sessions.is_empty() or not last_seen:
        return sessions
    end = pl.col("camera_id").replace_strict(last_seen, default=None, return_dtype=UTC_TS)
    too_old = (pl.col("status") == "active") & (end - pl.col("exit_time") > timedelta(seconds=gap_seconds))
    status = pl.when(too_old).then(pl.lit("interrupted")).otherwise(pl.col("status"))
    return sessions.with_columns(status=status)
