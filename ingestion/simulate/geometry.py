"""Where people can stand in one camera's frame: the door they enter by, spots inside zones, aisle spots.

Spots are precomputed once per camera on a pixel grid (cached), so planning a day only draws indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ingestion.site import Camera, Zone
from ingestion.zones import points_in_polygon

# A spot must stay inside its zone (and outside every other) this far around it, so the small sway of a
# working person never flips the zone assignment.
MARGIN_PX = 14.0
_OFFSETS = np.array(
    [
        (0, 0),
        (MARGIN_PX, 0),
        (-MARGIN_PX, 0),
        (0, MARGIN_PX),
        (0, -MARGIN_PX),
        (MARGIN_PX, MARGIN_PX),
        (-MARGIN_PX, -MARGIN_PX),
        (MARGIN_PX, -MARGIN_PX),
        (-MARGIN_PX, MARGIN_PX),
    ]
)
# The person box is about 60 px wide and 160 px tall: keep its bottom-centre where the box fits the frame.
EDGE_X, TOP_Y = 40.0, 170.0
GRID_PX = 6.0


@dataclass(frozen=True)
class CameraGeometry:
    camera: Camera
    zones: tuple[Zone, ...]
    door: tuple[float, float]
    zone_spots: tuple[np.ndarray, ...]  # per zone: (n, 2) spots well inside it and outside all others
    aisle_spots: np.ndarray  # (n, 2) spots well outside every zone

    def zones_of(self, *types: str) -> list[Zone]:
        return [z for z in self.zones if z.type in types]

    def point_in_zone(self, zone: Zone, rng: np.random.Generator) -> tuple[float, float]:
        spots = self.zone_spots[self.zones.index(zone)]
        if len(spots) == 0:  # a zone too small for the margin: its centroid is the best we can do
            return float(np.mean([p[0] for p in zone.polygon])), float(np.mean([p[1] for p in zone.polygon]))
        x, y = spots[rng.integers(len(spots))]
        return float(x), float(y)

    def aisle_point(self, rng: np.random.Generator) -> tuple[float, float]:
        if len(self.aisle_spots) == 0:
            return self.door
        x, y = self.aisle_spots[rng.integers(len(self.aisle_spots))]
        return float(x), float(y)


def _zone_membership(zones: tuple[Zone, ...], px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """(len(zones), n) bool: whether each point and its whole margin ring lies inside each zone, and
    whether any point of the ring touches it (row len(zones))."""
    all_in = np.ones((len(zones), len(px)), dtype=bool)
    touches_any = np.zeros(len(px), dtype=bool)
    for dx, dy in _OFFSETS:
        for i, zone in enumerate(zones):
            inside = points_in_polygon(px + dx, py + dy, zone.polygon)
            all_in[i] &= inside
            touches_any |= inside
    return np.vstack([all_in, touches_any[None, :]])


@lru_cache(maxsize=64)
def camera_geometry(camera: Camera, zones: tuple[Zone, ...]) -> CameraGeometry:
    """Spots per zone and in the aisles, and the door: the spot on the frame's bottom edge (else a side
    edge) outside all zones nearest the middle, so people enter and leave without appearing in a zone."""
    w, h = float(camera.width), float(camera.height)
    gx, gy = np.meshgrid(
        np.arange(EDGE_X, w - EDGE_X + 1e-9, GRID_PX), np.arange(TOP_Y, h - 2.0 + 1e-9, GRID_PX)
    )
    px, py = gx.ravel(), gy.ravel()
    member = _zone_membership(zones, px, py)
    spots = []
    for i in range(len(zones)):
        # Inside this zone by its whole margin and touching no other zone (assign_zones gives overlaps to
        # the first listed, so a spot near another zone could flip).
        others = np.zeros(len(px), dtype=bool)
        for j in range(len(zones)):
            if j != i:
                others |= _touches(zones[j], px, py)
        spots.append(np.column_stack([px, py])[member[i] & ~others])
    aisle = np.column_stack([px, py])[~member[-1]]

    xs = np.arange(EDGE_X, w - EDGE_X + 1e-9, GRID_PX / 2)
    ys = np.arange(TOP_Y, h - 2.0 + 1e-9, GRID_PX / 2)
    for cx, cy, preference in (
        (xs, np.full_like(xs, h - 2.0), np.abs(xs - w / 2)),
        (np.full_like(ys, EDGE_X), ys, np.abs(ys - h)),
        (np.full_like(ys, w - EDGE_X), ys, np.abs(ys - h)),
    ):
        ok = ~_zone_membership(zones, cx, cy)[-1]
        if ok.any():
            i = int(np.argmin(np.where(ok, preference, np.inf)))
            return CameraGeometry(camera, zones, (float(cx[i]), float(cy[i])), tuple(spots), aisle)
    raise ValueError(
        f"camera {camera.id}: no spot on the frame edge lies outside all zones, so simulated people "
        "cannot enter; leave part of the frame's bottom or side edge outside the zone polygons"
    )


def _touches(zone: Zone, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    hit = np.zeros(len(px), dtype=bool)
    for dx, dy in _OFFSETS:
        hit |= points_in_polygon(px + dx, py + dy, zone.polygon)
    return hit
