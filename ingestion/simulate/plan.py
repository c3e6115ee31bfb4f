"""The world, as plans: what every person in view of one camera does on one day.

A plan is a short list of segments per track (a few hundred per person-day, built in plain Python), each
a straight walk or a stay at one spot in one activity state. Sampling the segments at the frame rate is
vectorised in `trajectories.py`. Times are seconds since the site-local midnight (elapsed, not wall clock).

A track is one continuous appearance of a person in the frame: leaving through the door ends it, coming
back starts a new one (a tracker cannot know it is the same person), while worker_id stays the same.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import date, time

import numpy as np

from ingestion.simulate.geometry import CameraGeometry
from ingestion.site import Site, Zone

WALK, ACTIVE, IDLE = 0, 1, 2
SWAY_PX = 6.0  # how far a working person moves around their spot


@dataclass(frozen=True)
class DayClock:
    """The schedule of one day in seconds since local midnight."""

    workday: bool
    work_start: float
    work_end: float
    breaks: tuple[tuple[float, float], ...]
    day_length: float

    @classmethod
    def of(cls, site: Site, day: date) -> DayClock:
        start, end = site.day_window(day)

        def sec(at: time) -> float:
            return (site.local_datetime(day, at) - start).total_seconds()

        on_day = site.schedule_on(day)  # dated changes and overrides (None: not worked)
        s = on_day or site.schedule_in_force(day)
        breaks = tuple((sec(b.start), sec(b.start) + 60.0 * b.minutes) for b in s.breaks)
        return cls(
            on_day is not None, sec(s.work_start), sec(s.work_end), breaks, (end - start).total_seconds()
        )


@dataclass(frozen=True)
class Plan:
    """Segments sorted by (track, t0); segments of one track are contiguous in time."""

    t0: np.ndarray
    t1: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    sway: np.ndarray
    kind: np.ndarray  # WALK | ACTIVE | IDLE
    track: np.ndarray  # index into the track arrays
    track_worker: np.ndarray  # index into worker_ids
    track_w: np.ndarray  # person box size of the track, px
    track_h: np.ndarray
    track_start: np.ndarray
    track_end: np.ndarray
    worker_ids: tuple[str, ...]

    @property
    def n_tracks(self) -> int:
        return len(self.track_worker)


@dataclass(frozen=True)
class WorldConfig:
    """People per camera. None: the staffed places (work areas, and inspection zones that need someone)
    at their max_workers, plus half as many again of floaters who roam between stations."""

    workers_per_camera: int | None = None
    after_hours_probability: float = 0.15
    restricted_visit_probability: float = 0.25
    weekend_visitor_probability: float = 0.35


class _Builder:
    def __init__(self, rng: np.random.Generator, clock: DayClock):
        self.rng, self.clock = rng, clock
        self.rows: list[tuple] = []  # (t0, t1, x0, y0, x1, y1, sway, kind, track)
        self.tracks: list[tuple] = []  # (worker, w, h)
        self.track = -1
        self.t = 0.0
        self.pos = (0.0, 0.0)

    def appear(self, worker: int, t: float, at: tuple[float, float]) -> None:
        self.tracks.append((worker, self.rng.uniform(52, 68), self.rng.uniform(145, 175)))
        self.track, self.t, self.pos = len(self.tracks) - 1, t, at

    def _add(self, t1: float, to: tuple[float, float], sway: float, kind: int) -> None:
        t1 = min(t1, self.clock.day_length - 1.0)
        if t1 > self.t:
            self.rows.append((self.t, t1, *self.pos, *to, sway, kind, self.track))
        self.t, self.pos = max(t1, self.t), to

    def walk_to(self, to: tuple[float, float], speed: float) -> None:
        dist = math.hypot(to[0] - self.pos[0], to[1] - self.pos[1])
        self._add(self.t + max(dist / speed, 0.5), to, 0.0, WALK)

    def stay(self, until: float, kind: int) -> None:
        self._add(until, self.pos, SWAY_PX if kind == ACTIVE else SWAY_PX / 3, kind)

    def leave(self, door: tuple[float, float], speed: float) -> None:
        self.walk_to(door, speed)
        self.track = -1


def staffing(zones: tuple[Zone, ...], workers: int | None) -> list[Zone | None]:
    """Home zone per worker (None = floater). Places fill round-robin so a short crew spreads over zones."""
    staffed = [z for z in zones if z.type == "work_area" or (z.type == "inspection" and z.min_workers > 0)]
    places: list[Zone] = []
    for r in range(max((z.max_workers for z in staffed), default=0)):
        places.extend(z for z in staffed if z.max_workers > r)
    total = workers if workers is not None else (len(places) + math.ceil(len(places) / 2) if places else 2)
    return [places[i] if i < len(places) else None for i in range(total)]


def plan_camera_day(
    geo: CameraGeometry,
    clock: DayClock,
    rng: np.random.Generator,
    world: WorldConfig,
    excessive_idle_seconds: float,
) -> Plan:
    cam = geo.camera.id
    homes = staffing(geo.zones, world.workers_per_camera)
    b = _Builder(rng, clock)
    worker_ids = [f"{cam}-W{i + 1:02d}" for i in range(len(homes))]
    if clock.workday:
        for w, home in enumerate(homes):
            _worker_day(b, geo, clock, w, home, homes, world, excessive_idle_seconds)
    elif rng.random() < world.weekend_visitor_probability:
        worker_ids.append(f"{cam}-V01")
        _visitor(b, geo, clock, len(worker_ids) - 1)
    return _to_plan(b, worker_ids)


def _worker_day(
    b: _Builder,
    geo: CameraGeometry,
    clock: DayClock,
    w: int,
    home: Zone | None,
    homes: list[Zone | None],
    world: WorldConfig,
    excessive_idle: float,
) -> None:
    rng = b.rng
    speed = rng.uniform(60, 120)
    anchor = geo.point_in_zone(home, rng) if home is not None else geo.aisle_point(rng)
    inspection = [z for z in geo.zones_of("inspection") if z is not home]
    restricted = geo.zones_of("restricted")
    break_areas = geo.zones_of("break_area")

    def work_until(t_end: float) -> None:
        if home is None:
            _roam_until(b, geo, t_end, speed, homes)
            return
        while b.t < t_end - 1.0:
            if inspection and rng.random() < 0.05 and t_end - b.t > 600:
                b.walk_to(geo.point_in_zone(inspection[rng.integers(len(inspection))], rng), speed)
                b.stay(b.t + rng.uniform(60, 240), ACTIVE)
                b.walk_to(anchor, speed)
                continue
            b.stay(min(b.t + rng.lognormal(math.log(200), 0.6), t_end), ACTIVE)
            if b.t >= t_end - 1.0:
                break
            # Mostly short pauses; about one in eight is long enough to count as excessive idling.
            idle = (
                rng.uniform(excessive_idle + 30, excessive_idle * 2.5 + 30)
                if rng.random() < 0.12
                else rng.uniform(15, min(100, excessive_idle * 0.6))
            )
            b.stay(min(b.t + idle, t_end), IDLE)

    # Arrive around work start, enter through the door, go to the station.
    b.appear(w, clock.work_start + float(np.clip(rng.normal(-300, 240), -1200, 600)), geo.door)
    b.walk_to(anchor, speed)

    visit_at = None
    if restricted and rng.random() < world.restricted_visit_probability:
        visit_at = _time_away_from_breaks(rng, clock)
    stays_late = rng.random() < world.after_hours_probability
    leave_at = clock.work_end + (rng.uniform(1800, 5400) if stays_late else rng.uniform(-180, 480))

    for b_start, b_end in clock.breaks + ((leave_at, leave_at),):
        if visit_at is not None and visit_at < b_start:
            work_until(visit_at)
            b.walk_to(geo.point_in_zone(restricted[rng.integers(len(restricted))], rng), speed)
            b.stay(b.t + rng.uniform(15, 90), ACTIVE)
            b.walk_to(anchor, speed)
            visit_at = None
        if b_start == leave_at:
            break
        work_until(b_start + rng.uniform(-60, 20))
        back_at = b_end + rng.uniform(-60, 90)
        if break_areas and rng.random() < 0.5:
            b.walk_to(geo.point_in_zone(break_areas[rng.integers(len(break_areas))], rng), speed)
            b.stay(back_at, IDLE)
            b.walk_to(anchor, speed)
        else:
            b.leave(geo.door, speed)
            b.appear(w, back_at, geo.door)
            b.walk_to(anchor, speed)
    work_until(leave_at)
    b.leave(geo.door, speed)


def _roam_until(
    b: _Builder, geo: CameraGeometry, t_end: float, speed: float, homes: list[Zone | None]
) -> None:
    """A floater: fetches parts along the walkways, checks work at stations with room to spare, and now and
    then stops briefly at a full station. Rarely they help out at one long enough to overflow it."""
    rng = b.rng
    staffed = Counter(h.id for h in homes if h is not None)
    stations = geo.zones_of("work_area", "inspection")
    spare = [z for z in stations if staffed[z.id] < z.max_workers]
    full = [z for z in stations if staffed[z.id] >= z.max_workers]
    while b.t < t_end - 30.0:
        r = rng.random()  # where to next: a station with room (10%), a full one (8%), else the walkways
        if r < 0.10 and spare:
            b.walk_to(geo.point_in_zone(spare[rng.integers(len(spare))], rng), speed)
            dwell = rng.uniform(20, 90)
        elif 0.10 <= r < 0.18 and full:
            b.walk_to(geo.point_in_zone(full[rng.integers(len(full))], rng), speed)
            dwell = rng.uniform(45, 120) if rng.random() < 0.03 else rng.uniform(5, 20)
        else:
            b.walk_to(geo.aisle_point(rng), speed)
            dwell = rng.uniform(30, 300)
        b.stay(min(b.t + dwell, t_end), ACTIVE if rng.random() < 0.7 else IDLE)


def _visitor(b: _Builder, geo: CameraGeometry, clock: DayClock, w: int) -> None:
    """A rare non-workday visit (maintenance, security round): shows up as after-hours presence."""
    rng = b.rng
    speed = rng.uniform(60, 120)
    t = rng.uniform(9 * 3600, 16 * 3600)
    b.appear(w, t, geo.door)
    _roam_until(b, geo, t + rng.uniform(600, 2400), speed, [])
    b.leave(geo.door, speed)


def _time_away_from_breaks(rng: np.random.Generator, clock: DayClock) -> float | None:
    """A time in working hours at least 10 minutes from any break and from the day's start and end (None
    when the schedule has no such time)."""
    edges = [clock.work_start, *[t for br in clock.breaks for t in br], clock.work_end]
    spans = [(a + 600, b - 600) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a > 1200]
    if not spans:
        return None
    a, b_ = spans[rng.integers(len(spans))]
    return float(rng.uniform(a, b_))


def _to_plan(b: _Builder, worker_ids: list[str]) -> Plan:
    n_cols = 9
    seg = np.array(b.rows, dtype=np.float64).reshape(-1, n_cols)
    tracks = np.array(b.tracks, dtype=np.float64).reshape(-1, 3)
    track = seg[:, 8].astype(np.int64)
    n_tracks = len(tracks)
    start = np.full(n_tracks, np.inf)
    end = np.full(n_tracks, -np.inf)
    np.minimum.at(start, track, seg[:, 0])
    np.maximum.at(end, track, seg[:, 1])
    # Number tracks in order of appearance (then worker), the order a tracker hands out ids.
    order = np.lexsort((tracks[:, 0], start))
    rank = np.empty(n_tracks, dtype=np.int64)
    rank[order] = np.arange(n_tracks)
    new_track = rank[track]
    seg_order = np.lexsort((seg[:, 0], new_track))
    seg = seg[seg_order]
    return Plan(
        t0=seg[:, 0],
        t1=seg[:, 1],
        x0=seg[:, 2],
        y0=seg[:, 3],
        x1=seg[:, 4],
        y1=seg[:, 5],
        sway=seg[:, 6],
        kind=seg[:, 7].astype(np.int8),
        track=new_track[seg_order],
        track_worker=tracks[order, 0].astype(np.int64),
        track_w=tracks[order, 1],
        track_h=tracks[order, 2],
        track_start=start[order],
        track_end=end[order],
        worker_ids=tuple(worker_ids),
    )
