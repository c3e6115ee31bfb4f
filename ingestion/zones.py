"""Zone assignment: which zone holds each detection's bbox bottom-centre (where the person stands)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ingestion.site import Zone

if TYPE_CHECKING:
    from ingestion.detectors import Tracks


def bottom_center(xywh: np.ndarray) -> np.ndarray:
    """(N, 2) float64 middle of each box's bottom edge (boxes as top-left x, y, width, height): where a person
    stands, the point a box is assigned a zone by."""
    boxes = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, 0] + boxes[:, 2] / 2.0, boxes[:, 1] + boxes[:, 3]])


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


def assign_zones(zones: Sequence[Zone], boxes: Tracks | np.ndarray) -> np.ndarray:
    """Zone id (or None) per box, by its bottom-centre (`bottom_center`); overlaps go to the first zone.

    `boxes`: Tracks (the video pipeline), or an (N, 4) array of top-left x, y, width, height (rows that
    are not Tracks: the simulator, stream payloads, detection logs)."""
    anchor = bottom_center(boxes if isinstance(boxes, np.ndarray) else boxes.xywh)
    px, py = anchor[:, 0], anchor[:, 1]
    out = np.full(px.shape, None, dtype=object)
    unassigned = np.ones(px.shape, dtype=bool)
    for zone in zones:
        hit = unassigned & points_in_polygon(px, py, zone.polygon)
        out[hit] = zone.id
        unassigned &= ~hit
    return out
