"""Zone assignment: which zone holds each detection's bbox bottom-centre (where the person stands)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingestion.site import Zone


def points_in_polygon(px: np.ndarray, py: np.ndarray, polygon: Sequence[tuple[float, float]]) -> np.ndarray:
    """Even-odd ray casting, vectorised over points; loops only over the polygon's few edges."""
    inside = np.zeros(px.shape, dtype=bool)
    xs = np.asarray([p[0] for p in polygon], dtype=np.float64)
    ys = np.asarray([p[1] for p in polygon], dtype=np.float64)
    for x1, y1, x2, y2 in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1), strict=True):
        if y1 == y2:
            continue  # a horizontal edge never crosses a horizontal ray
        crosses = (y1 > py) != (y2 > py)
        x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < x_at)
    return inside


def assign_zones(
    zones: Sequence[Zone], x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray
) -> np.ndarray:
    """Zone id (or None) per bbox given as top-left x, y and size w, h; overlaps go to the first zone."""
    px = np.asarray(x, dtype=np.float64) + np.asarray(w, dtype=np.float64) / 2.0
    py = np.asarray(y, dtype=np.float64) + np.asarray(h, dtype=np.float64)
    out = np.full(px.shape, None, dtype=object)
    unassigned = np.ones(px.shape, dtype=bool)
    for zone in zones:
        hit = unassigned & points_in_polygon(px, py, zone.polygon)
        out[hit] = zone.id
        unassigned &= ~hit
    return out
