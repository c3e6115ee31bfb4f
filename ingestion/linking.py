"""Visitors: join the track fragments of one person before sessionizing (DESIGN.md, "Visitors").

A real tracker breaks one person's path into several track ids (ID switches, occlusions, missed
frames, a gap in a recording: contiguous segments continue their tracks, `VideoPipeline.continues`).
Track B continues track A (same camera) when

- B starts after A ends, within `max_gap_seconds` (0 < gap <= max_gap),
- B's first position is near where A was heading: A's last position extrapolated by A's last velocity
  over the gap, the distance measured in A's box heights, positions being the bbox bottom-centre (where
  the person stands). The velocity is the least-squares slope of A's last second shrunk by how well
  those samples fix it (`tail_velocity`: a walk keeps most of it, a standing person's sway or a
  two-sample track's jitter fades to zero, so a person who stopped is looked for where they stopped),
  and the distance allowed grows with the gap like the uncertainty of where an unseen person is:
  <= `max_distance` + `distance_growth` x sqrt(gap seconds), and
- the boxes are of a similar size (height ratio <= `max_size_ratio`).

Among the candidate pairs the links are one-to-one and of least total cost (Hungarian assignment per
connected group of candidates); links chain (A->B->C is one visitor) and a chain's visitor id is the
track id of its first track, so the result is deterministic and a track that nothing continues keeps its
own id. Everything is vectorised with numpy except the assignment of groups with more than one
candidate, which loops per group (not per detection).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Columns of the per-track end summaries `link_tracks` reads (times in epoch seconds, pixels).
TRACK_ENDS_SCHEMA = pl.Schema(
    {
        "camera_id": pl.String,
        "track_id": pl.Int64,
        "first_t": pl.Float64,  # first sample
        "last_t": pl.Float64,  # last sample
        "head_t": pl.Float64,  # mean time, foot position and box height over the first `window` seconds
        "head_x": pl.Float64,
        "head_y": pl.Float64,
        "head_h": pl.Float64,
        "tail_t": pl.Float64,  # the same over the last `window` seconds
        "tail_x": pl.Float64,
        "tail_y": pl.Float64,
        "tail_h": pl.Float64,
        "tail_vx": pl.Float64,  # least-squares velocity over the last `window` seconds (null: one sample)
        "tail_vy": pl.Float64,
        "tail_spread": pl.Float64,  # Σ(t - mean t)² of those samples (s²): how well they fix the velocity
    }
)
END_WINDOW_SECONDS = 1.0  # how much of a track's start and end summarises where it is and where it heads
MAX_SPEED_HEIGHTS = 2.0  # |velocity| is capped at this many box heights per second (a running person)
_NO_EDGE = 1e9


@dataclass(frozen=True)
class LinkParams:
    max_gap_seconds: float = 6.0
    max_distance: float = 0.7  # in box heights, at a gap of 0...
    max_size_ratio: float = 1.5
    distance_growth: float = 0.1  # ...plus this many box heights times sqrt(gap seconds)
    # How far a tail's foot points stray from a straight line (detector jitter, a standing person's sway), in
    # box heights: sets the tail velocity's standard error (`tail_velocity`; 0 takes the slope at face
    # value). Both from bench/accuracy.py (bench/README.md, "Session accuracy").
    tail_noise: float = 0.25


# Exact integer sums per track (µs, centipixels) from which the summaries are computed in Python: integer
# sums are equal on every engine whatever the summation order, so both backends link identically.
_SUM_COLUMNS = (
    "first_us",
    "last_us",
    "n_head",
    "head_u",
    "head_x",
    "head_y",
    "head_h",
    "n_tail",
    "tail_u",
    "tail_uu",
    "tail_x",
    "tail_y",
    "tail_h",
    "tail_ux",
    "tail_uy",
)


def track_ends_sql(source: str, start: str, end: str, window: float = END_WINDOW_SECONDS) -> str:
    """SQL (the same on DuckDB and PostgreSQL) giving per (camera, track) of `source` (columns camera_id,
    track_id, ts, foot_x, foot_y, h), over samples with start <= ts < end (SQL literals), the integer
    sums `track_ends_from_sums` turns into TRACK_ENDS_SCHEMA."""
    w = int(round(window * 1e6))
    head, tail = f"t_us <= first_us + {w}", f"t_us >= last_us - {w}"
    return f"""
WITH d AS (
  SELECT camera_id, track_id,
         CAST(ROUND(EXTRACT(EPOCH FROM ts) * 1000000) AS BIGINT) AS t_us,
         CAST(FLOOR(CAST(foot_x AS DOUBLE PRECISION) * 100) AS BIGINT) AS fx,
         CAST(FLOOR(CAST(foot_y AS DOUBLE PRECISION) * 100) AS BIGINT) AS fy,
         CAST(FLOOR(CAST(h AS DOUBLE PRECISION) * 100) AS BIGINT) AS hc
  FROM {source}
  WHERE ts >= {start} AND ts < {end}
), e AS (
  SELECT camera_id, track_id, MIN(t_us) AS first_us, MAX(t_us) AS last_us FROM d GROUP BY camera_id, track_id
), b AS (
  -- a hash join to the per-track ends, not a window over (camera_id, track_id): PostgreSQL sorted the
  -- whole range for the window (2-2.4x slower at 4.3 M rows)
  SELECT d.*, e.first_us, e.last_us FROM d JOIN e ON d.camera_id = e.camera_id AND d.track_id = e.track_id
), c AS (
  SELECT *, CASE WHEN {head} THEN 1 ELSE 0 END AS hd, CASE WHEN {tail} THEN 1 ELSE 0 END AS tl,
         t_us - last_us AS u
  FROM b
  WHERE {head} OR {tail} -- only these samples add to the sums (every track keeps its first and last)
)
SELECT
  camera_id, track_id, MIN(first_us) AS first_us, MIN(last_us) AS last_us,
  SUM(hd) AS n_head, SUM(hd * (t_us - first_us)) AS head_u,
  SUM(hd * fx) AS head_x, SUM(hd * fy) AS head_y, SUM(hd * hc) AS head_h,
  SUM(tl) AS n_tail, SUM(tl * u) AS tail_u, SUM(tl * u * u) AS tail_uu,
  SUM(tl * fx) AS tail_x, SUM(tl * fy) AS tail_y, SUM(tl * hc) AS tail_h,
  SUM(tl * u * fx) AS tail_ux, SUM(tl * u * fy) AS tail_uy
FROM c
GROUP BY camera_id, track_id
"""


def track_ends_from_sums(sums: pl.DataFrame) -> pl.DataFrame:
    """TRACK_ENDS_SCHEMA from the integer sums of `track_ends_sql` (times in s, pixels)."""
    s = sums.with_columns(pl.col(c).cast(pl.Int64) for c in _SUM_COLUMNS)
    n_h, n_t = pl.col("n_head").cast(pl.Float64), pl.col("n_tail").cast(pl.Float64)

    def slope(v: str) -> pl.Expr:
        # least squares over the tail: (n Σuv - Σu Σv) / (n Σuu - (Σu)²), centipixels/µs -> px/s
        num = pl.col("n_tail") * pl.col(f"tail_u{v}") - pl.col("tail_u") * pl.col(f"tail_{v}")
        den = pl.col("n_tail") * pl.col("tail_uu") - pl.col("tail_u") * pl.col("tail_u")
        return pl.when(den > 0).then(num.cast(pl.Float64) / den.cast(pl.Float64) * 1e4)

    return s.select(
        pl.col("camera_id").cast(pl.String),
        pl.col("track_id"),
        (pl.col("first_us") / 1e6).alias("first_t"),
        (pl.col("last_us") / 1e6).alias("last_t"),
        ((pl.col("first_us") + pl.col("head_u") / n_h) / 1e6).alias("head_t"),
        (pl.col("head_x") / n_h / 100).alias("head_x"),
        (pl.col("head_y") / n_h / 100).alias("head_y"),
        (pl.col("head_h") / n_h / 100).alias("head_h"),
        ((pl.col("last_us") + pl.col("tail_u") / n_t) / 1e6).alias("tail_t"),
        (pl.col("tail_x") / n_t / 100).alias("tail_x"),
        (pl.col("tail_y") / n_t / 100).alias("tail_y"),
        (pl.col("tail_h") / n_t / 100).alias("tail_h"),
        slope("x").alias("tail_vx"),
        slope("y").alias("tail_vy"),
        ((pl.col("tail_uu").cast(pl.Float64) - pl.col("tail_u").cast(pl.Float64) ** 2 / n_t) / 1e12).alias(
            "tail_spread"
        ),
    ).cast(TRACK_ENDS_SCHEMA)


def track_ends(detections: pl.DataFrame, window: float = END_WINDOW_SECONDS) -> pl.DataFrame:
    """The same summary as the warehouse's (`track_ends_sql`), from a frame of raw.detections columns."""
    w = int(round(window * 1e6))
    key = ["camera_id", "track_id"]
    d = detections.select(
        *key,
        pl.col("ts").dt.epoch("us").alias("t_us"),
        ((pl.col("x").cast(pl.Float64) + pl.col("w").cast(pl.Float64) / 2) * 100)
        .floor()
        .cast(pl.Int64)
        .alias("fx"),
        ((pl.col("y").cast(pl.Float64) + pl.col("h").cast(pl.Float64)) * 100)
        .floor()
        .cast(pl.Int64)
        .alias("fy"),
        (pl.col("h").cast(pl.Float64) * 100).floor().cast(pl.Int64).alias("hc"),
    )
    d = d.with_columns(
        pl.col("t_us").min().over(key).alias("first_us"), pl.col("t_us").max().over(key).alias("last_us")
    )
    d = d.with_columns(
        (pl.col("t_us") <= pl.col("first_us") + w).cast(pl.Int64).alias("hd"),
        (pl.col("t_us") >= pl.col("last_us") - w).cast(pl.Int64).alias("tl"),
        (pl.col("t_us") - pl.col("last_us")).alias("u"),
    )
    hd, tl, u = pl.col("hd"), pl.col("tl"), pl.col("u")
    sums = d.group_by(key).agg(
        pl.col("first_us").min(),
        pl.col("last_us").min(),
        hd.sum().alias("n_head"),
        (hd * (pl.col("t_us") - pl.col("first_us"))).sum().alias("head_u"),
        (hd * pl.col("fx")).sum().alias("head_x"),
        (hd * pl.col("fy")).sum().alias("head_y"),
        (hd * pl.col("hc")).sum().alias("head_h"),
        tl.sum().alias("n_tail"),
        (tl * u).sum().alias("tail_u"),
        (tl * u * u).sum().alias("tail_uu"),
        (tl * pl.col("fx")).sum().alias("tail_x"),
        (tl * pl.col("fy")).sum().alias("tail_y"),
        (tl * pl.col("hc")).sum().alias("tail_h"),
        (tl * u * pl.col("fx")).sum().alias("tail_ux"),
        (tl * u * pl.col("fy")).sum().alias("tail_uy"),
    )
    return track_ends_from_sums(sums)


def tail_velocity(ends: pl.DataFrame, tail_noise: float) -> tuple[np.ndarray, np.ndarray]:
    """The velocity (px/s) each track's end is extrapolated with: the least-squares slope of its tail,
    shrunk by how well the tail fixes it, then capped at a running person's speed.

    The slope's standard error is `tail_noise` box heights / sqrt(tail_spread) per axis; the slope
    is multiplied by |v|² / (|v|² + se²), so a velocity well above its error (a walk) is kept and one
    within it (the sway of a person standing still, a track of two samples) fades to zero."""
    h = ends["tail_h"].to_numpy()
    vx = np.nan_to_num(ends["tail_vx"].to_numpy(), nan=0.0)
    vy = np.nan_to_num(ends["tail_vy"].to_numpy(), nan=0.0)
    spread = np.nan_to_num(ends["tail_spread"].to_numpy(), nan=0.0)
    speed2 = vx * vx + vy * vy
    error2 = np.where(spread > 0, (tail_noise * h) ** 2 / np.maximum(spread, 1e-12), np.inf)
    shrink = np.divide(speed2, speed2 + error2, out=np.zeros_like(speed2), where=speed2 > 0)
    speed = np.sqrt(speed2) * shrink
    cap = MAX_SPEED_HEIGHTS * h
    scale = shrink * np.where(speed > cap, cap / np.maximum(speed, 1e-12), 1.0)
    return vx * scale, vy * scale


def _candidates(ends: pl.DataFrame, p: LinkParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, gap, cost) of every admissible pair; a and b are row numbers of `ends`."""
    codes = ends["camera_id"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    first = ends["first_t"].to_numpy()
    last = ends["last_t"].to_numpy()
    # One sorted axis for all cameras: camera code * span + time keeps cameras apart.
    span = float(np.nanmax(last) - np.nanmin(first)) + 10 * (p.max_gap_seconds + 1) if len(first) else 1.0
    base = float(np.nanmin(first)) if len(first) else 0.0
    key_first = codes * span + (first - base)
    key_last = codes * span + (last - base)
    order = np.argsort(key_first, kind="stable")
    sorted_first = key_first[order]
    lo = np.searchsorted(sorted_first, key_last, side="right")  # strictly after A's end
    hi = np.searchsorted(sorted_first, key_last + p.max_gap_seconds, side="right")
    counts = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(len(first)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    b = order[np.repeat(lo, counts) + offsets]
    if a.size == 0:
        empty = np.zeros(0)
        return a, b, empty, empty
    col = {
        n: ends[n].to_numpy()
        for n in ("head_t", "head_x", "head_y", "head_h", "tail_t", "tail_x", "tail_y", "tail_h")
    }
    vx, vy = tail_velocity(ends, p.tail_noise)
    dt = col["head_t"][b] - col["tail_t"][a]
    px = col["tail_x"][a] + vx[a] * dt
    py = col["tail_y"][a] + vy[a] * dt
    dist = np.hypot(col["head_x"][b] - px, col["head_y"][b] - py) / col["tail_h"][a]
    ratio = np.maximum(col["tail_h"][a], col["head_h"][b]) / np.minimum(col["tail_h"][a], col["head_h"][b])
    gap = first[b] - last[a]
    reach = p.max_distance + p.distance_growth * np.sqrt(np.maximum(gap, 0.0))
    ok = (gap > 0) & (gap <= p.max_gap_seconds) & (dist <= reach) & (ratio <= p.max_size_ratio)
    # Cost: distance in box heights, then (a little) the gap and the size change, so ties break sensibly.
    cost = dist + 0.1 * gap / max(p.max_gap_seconds, 1e-9) + 0.1 * (ratio - 1)
    return a[ok], b[ok], gap[ok], cost[ok]


def _assign(n: int, a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices into (a, b, cost) of a one-to-one, least-cost set of links (per connected group)."""
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    # Bipartite graph: node i = track i as predecessor, node n + j = track j as successor.
    graph = coo_matrix((np.ones(a.size), (a, n + b)), shape=(2 * n, 2 * n))
    _, label = connected_components(graph, directed=False)
    group = label[a]
    edges_per_group = np.bincount(group, minlength=label.max() + 1)
    single = edges_per_group[group] == 1
    chosen = [np.flatnonzero(single)]
    multi = np.flatnonzero(~single)
    if multi.size:
        by_group = multi[np.argsort(group[multi], kind="stable")]
        bounds = np.flatnonzero(np.diff(group[by_group])) + 1
        for edges in np.split(by_group, bounds):  # one Hungarian assignment per ambiguous group
            rows, row_idx = np.unique(a[edges], return_inverse=True)
            cols, col_idx = np.unique(b[edges], return_inverse=True)
            matrix = np.full((rows.size, cols.size), _NO_EDGE)
            matrix[row_idx, col_idx] = cost[edges]
            r, c = linear_sum_assignment(matrix)
            keep = matrix[r, c] < _NO_EDGE
            lookup = {(i, j): e for i, j, e in zip(row_idx, col_idx, edges, strict=True)}
            chosen.append(
                np.array([lookup[(i, j)] for i, j in zip(r[keep], c[keep], strict=True)], dtype=np.int64)
            )
    return np.sort(np.concatenate(chosen))


def link_tracks(ends: pl.DataFrame, params: LinkParams | None = None) -> pl.DataFrame:
    """One row per (camera, track) of `ends` (TRACK_ENDS_SCHEMA): its visitor and the link that joined it.

    Columns: camera_id, track_id, visitor_id (track id of the chain's first track), previous_track_id
    (the track this one continues; null for a chain's first track), link_gap_seconds and link_cost (of
    that link), track_index (0 for the first track of the visitor, 1 for the next, ...)."""
    p = params or LinkParams()
    ends = ends.sort("camera_id", "first_t", "track_id")
    n = ends.height
    prev = np.full(n, -1, dtype=np.int64)
    gap_of = np.full(n, np.nan)
    cost_of = np.full(n, np.nan)
    if n and p.max_gap_seconds > 0:
        a, b, gap, cost = _candidates(ends, p)
        keep = _assign(n, a, b, cost)
        prev[b[keep]] = a[keep]
        gap_of[b[keep]] = gap[keep]
        cost_of[b[keep]] = cost[keep]
    # Pointer doubling to each chain's first track; depth counts the links walked.
    root = np.where(prev >= 0, prev, np.arange(n))
    depth = (prev >= 0).astype(np.int64)
    while n and (root[root] != root).any():
        depth = depth + depth[root]
        root = root[root]
    track = ends["track_id"].to_numpy()
    return pl.DataFrame(
        {
            "camera_id": ends["camera_id"],
            "track_id": ends["track_id"],
            "visitor_id": pl.Series(track[root] if n else [], dtype=pl.Int64),
            "previous_track_id": pl.Series(
                np.where(prev >= 0, track[np.maximum(prev, 0)], 0) if n else [], dtype=pl.Int64
            ),
            "link_gap_seconds": pl.Series(gap_of, dtype=pl.Float64),
            "link_cost": pl.Series(cost_of, dtype=pl.Float64),
            "track_index": pl.Series(depth, dtype=pl.Int64),
        }
    ).with_columns(
        pl.when(pl.col("link_gap_seconds").is_not_nan())
        .then(pl.col("previous_track_id"))
        .alias("previous_track_id"),
        pl.col("link_gap_seconds").fill_nan(None),
        pl.col("link_cost").fill_nan(None),
    )


# ------------------------------------------------------------------ the analytics.track_links stage

TRACK_LINKS_COLUMNS = {  # SQL types of analytics.track_links (transforms/models/track_links.py)
    "camera_id": "text",
    "track_id": "bigint",
    "visitor_id": "bigint",
    "previous_track_id": "bigint",
    "track_index": "bigint",
    "first_seen": "timestamptz",
    "last_seen": "timestamptz",
    "link_gap_seconds": "double",
    "link_cost": "double",
    "local_date": "date",
}
_TRACK_LINKS_SCHEMA = pl.Schema(
    {
        "camera_id": pl.String,
        "track_id": pl.Int64,
        "visitor_id": pl.Int64,
        "previous_track_id": pl.Int64,
        "track_index": pl.Int64,
        "first_seen": pl.Datetime("us", "UTC"),
        "last_seen": pl.Datetime("us", "UTC"),
        "link_gap_seconds": pl.Float64,
        "link_cost": pl.Float64,
        "local_date": pl.Date,
    }
)


def track_links_rows(
    sums: pl.DataFrame, start: datetime, end: datetime, params: LinkParams, timezone: str
) -> pl.DataFrame:
    """Rows of analytics.track_links for the tracks of `ends` first seen in [start, end).

    `sums` (of `track_ends_sql`) may hold tracks outside the range (they take part in the assignment,
    so a chain that began before the range keeps its first track's id). An empty result is one
    placeholder row dated before `start`: SQLMesh neither inserts nor deletes for an empty frame, and
    the placeholder makes it delete the interval's old rows (its time filter then drops the placeholder)."""
    ends = track_ends_from_sums(sums.with_columns(pl.col("track_id").cast(pl.Int64)))
    if ends.height:
        links = link_tracks(ends, params)
        spans = sums.select("camera_id", pl.col("track_id").cast(pl.Int64), "first_us", "last_us")
        out = links.join(spans, on=["camera_id", "track_id"]).with_columns(
            *[
                pl.col(f"{n}_us").cast(pl.Int64).cast(pl.Datetime("us", "UTC")).alias(f"{n}_seen")
                for n in ("first", "last")
            ],
            # Rounded so both engines' float summaries give identical rows.
            pl.col("link_gap_seconds").round(6),
            pl.col("link_cost").round(6),
        )
        out = out.filter((pl.col("first_seen") >= start) & (pl.col("first_seen") < end)).with_columns(
            pl.col("first_seen").dt.convert_time_zone(timezone).dt.date().alias("local_date")
        )
        out = (
            out.select(_TRACK_LINKS_SCHEMA.names())
            .cast(_TRACK_LINKS_SCHEMA)
            .sort("camera_id", "first_seen", "track_id")
        )
        if out.height:
            return out
    before = start - timedelta(days=1)
    return (
        pl.DataFrame(
            {
                "camera_id": ["-"],
                "track_id": [0],
                "visitor_id": [0],
                "track_index": [0],
                "first_seen": [before],
                "last_seen": [before],
            }
        )
        .with_columns(
            *[
                pl.lit(None).alias(c)
                for c in ("previous_track_id", "link_gap_seconds", "link_cost", "local_date")
            ]
        )
        .select(_TRACK_LINKS_SCHEMA.names())
        .cast(_TRACK_LINKS_SCHEMA)
    )
