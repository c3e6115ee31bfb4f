"""Zone assignment, case by case, against answers worked out by hand (issue 15, item 6).

A detection is in the zone holding its bbox's bottom-centre (x + w/2, y + h): where the person stands. Each
box below is chosen so the bottom-centre, the bbox centre and the top-left corner fall in different places,
so assigning by the wrong point fails; overlapping zones go to the first zone in site order, so the same
boxes with the zones reversed change answer; a concave zone's notch is outside it.

Edges and vertices follow the even-odd ray test's half-open rule (image coordinates, y grows downward): a
point on a zone's left or top edge is inside, on its right or bottom edge outside. So zones that share an
edge tile the plane: a point on the shared edge belongs to exactly one of them, whatever their order.
"""

from __future__ import annotations

import numpy as np
import pytest

from ingestion.detectors import Tracks
from ingestion.site import Zone
from ingestion.zones import assign_zones, points_in_polygon


def zone(zone_id: str, *polygon: tuple[float, float]) -> Zone:
    return Zone(id=zone_id, camera="CAM01", name=zone_id, type="workstation", polygon=tuple(polygon))


def rect(zone_id: str, x0: float, y0: float, x1: float, y1: float) -> Zone:
    return zone(zone_id, (x0, y0), (x1, y0), (x1, y1), (x0, y1))


# A "U": a 30x30 square with the notch [10, 20) x [10, 30) cut out of its bottom middle.
U = zone("U", (0, 0), (30, 0), (30, 30), (20, 30), (20, 10), (10, 10), (10, 30), (0, 30))
A = rect("A", 40, 0, 60, 20)  # A and B overlap on [50, 60) x [10, 20)
B = rect("B", 50, 10, 70, 30)
C = rect("C", 80, 0, 100, 20)  # C and D share the edge x = 100
D = rect("D", 100, 0, 120, 20)
ZONES = (U, A, B, C, D)

# (what the case shows, box x, y, w, h, zone of the bottom-centre with zones in the order above, and with
# them reversed). Comments give the bottom-centre (bc), bbox centre (c) and top-left (tl) points.
CASES = [
    # bc (15, 16) in the notch; c (15, 8) and tl (10, 0) in U's top bar.
    ("concave notch is outside", 10, 0, 10, 16, None, None),
    # bc (5, 25) in U's left arm; c (5, -5) and tl (3, -35) above the frame.
    ("concave left arm", 3, -35, 4, 60, "U", "U"),
    # bc (25, 29) in U's right arm, 1 px above its bottom edge; c (25, 19) also in the arm; tl (21, 9) in it.
    ("concave right arm near the bottom", 21, 9, 8, 20, "U", "U"),
    # bc (15, 9) in U's top bar just above the notch; c (15, -1) and tl (14, -11) above the frame.
    ("top bar over the notch", 14, -11, 2, 20, "U", "U"),
    # bc (55, 15) in A and B: the first zone in site order wins; c (55, 5) in A only, tl (45, -5) in none.
    ("overlap goes to the first zone", 45, -5, 20, 20, "A", "B"),
    # bc (65, 25) in B only, in both orders; c (65, 20) in B; tl (60, 15) on A's right edge, so in B only.
    ("B outside the overlap", 60, 15, 10, 10, "B", "B"),
    # bc (45, 30) below A and left of B; c (45, 20) on A's bottom edge: outside; tl (40, 10) inside A.
    ("under A, in nothing", 40, 10, 10, 20, None, None),
    # bc (100, 10) on the edge C and D share: D's left edge (inside D), C's right edge (outside C).
    ("shared edge belongs to one zone", 95, 0, 10, 10, "D", "D"),
    # bc (80, 0) is C's top-left vertex: inside. c (80, -5) above the frame.
    ("top-left vertex is inside", 78, -10, 4, 10, "C", "C"),
    # bc (120, 20) is D's bottom-right vertex: outside. c (120, 15) on D's right edge: outside as well.
    ("bottom-right vertex is outside", 118, 10, 4, 10, None, None),
    # bc (30, 5) on U's right edge: outside. c (30, 0) and tl (28, -5): outside too.
    ("right edge is outside", 28, -5, 4, 10, None, None),
    # bc (0, 20) on U's left edge: inside. c (0, 10) inside as well, tl (-2, 0) outside.
    ("left edge is inside", -2, 0, 4, 20, "U", "U"),
    # bc (10, 10) is the notch's top-left corner (a reflex vertex of U): the notch side, so outside.
    ("reflex vertex", 8, 0, 4, 10, None, None),
    # bc (15, 10) on the notch's top edge: the notch side (its top edge is its own), so outside U.
    ("notch top edge", 13, 0, 4, 10, None, None),
    # bc (9.999, 20) a hair left of the notch: in the left arm.
    ("just left of the notch", 7.999, 0, 4, 20, "U", "U"),
]


def _columns():
    names = [c[0] for c in CASES]
    xywh = np.array([c[1:5] for c in CASES], dtype=np.float64)
    return names, xywh


def _tracks(xywh: np.ndarray) -> Tracks:
    n = len(xywh)
    return Tracks(np.arange(n), np.zeros(n, np.int16), np.ones(n, np.float32), xywh)


@pytest.mark.parametrize("boxes", ["tracks", "array"])
@pytest.mark.parametrize("order", ["site", "reversed"])
def test_each_box_goes_to_the_zone_of_its_bottom_centre(order, boxes):
    names, xywh = _columns()
    zones = ZONES if order == "site" else ZONES[::-1]
    got = assign_zones(zones, _tracks(xywh) if boxes == "tracks" else xywh)
    want = [c[5] if order == "site" else c[6] for c in CASES]
    wrong = [f"{n}: got {g}, want {e}" for n, g, e in zip(names, got, want, strict=True) if g != e]
    assert not wrong, "\n".join(wrong)


def test_the_cases_tell_the_three_points_apart():
    """The table is only worth having if a wrong reference point gives a different answer somewhere."""
    names, xywh = _columns()
    x, y, w, h = xywh.T
    by_point = {  # boxes whose bottom-centre is this one's centre, ... this one's top-left
        "centre": assign_zones(ZONES, np.column_stack([x, y - h / 2, w, h])),
        "top-left": assign_zones(ZONES, np.column_stack([x - w / 2, y - h, w, h])),
    }
    want = [c[5] for c in CASES]
    for point, got in by_point.items():
        assert sum(g != e for g, e in zip(got, want, strict=True)) >= 3, point


def test_tiling_zones_give_every_point_exactly_one_zone():
    """A 3x3 grid of touching squares: every point of a fine lattice (edges and corners included) is in
    exactly one square, so no detection on a boundary is counted twice or lost between zones."""
    squares = [rect(f"{i}{j}", 10 * i, 10 * j, 10 * i + 10, 10 * j + 10) for i in range(3) for j in range(3)]
    grid = np.arange(0, 30, 0.5)
    px, py = (a.ravel() for a in np.meshgrid(grid, grid))
    hits = np.stack([points_in_polygon(px, py, s.polygon) for s in squares])
    assert (hits.sum(axis=0) == 1).all()
    # And the square is the one the half-open rule names: floor(x / 10), floor(y / 10).
    owner = np.argmax(hits, axis=0)
    assert (owner == (px // 10).astype(int) * 3 + (py // 10).astype(int)).all()
