"""Site configuration: cameras, zones, the work schedule and thresholds, loaded from YAML and validated.

Every validation error names the file, the key and the fix, because the person reading it is editing that
file. The index timeline (the working day cut into equal blocks) is derived here once, so the warehouse's
`ref.index_timeline`, the simulator and the transforms all agree on it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ingestion.vocabulary import ZONE_TYPES

if TYPE_CHECKING:
    from ingestion.alerts.rules import AlertsConfig

DEFAULT_SITE_FILE = Path(__file__).resolve().parent.parent / "site.yaml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Matched with fullmatch: `$` alone would accept a trailing newline ("CAM09\n").
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TIME_PATTERN = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class SiteConfigError(ValueError):
    """The site file is invalid; the message names the file, the key and how to fix it."""

    def __init__(self, path: str | Path, key: str, problem: str, fix: str):
        self.path, self.key, self.problem, self.fix = str(path), key, problem, fix
        super().__init__(f"{path}: {key}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class Camera:
    id: str
    name: str
    source: str
    width: int
    height: int
    fps: float
    # An image of the scene without people (site.yaml `background_image`, resolved against the site file's
    # folder): the motion detector's background starts from it, so people already there when a video
    # starts are seen whole (ingestion.detectors.foreground.ForegroundModel.reset).
    background_image: Path | None = None


@dataclass(frozen=True)
class Zone:
    id: str
    camera: str
    name: str
    type: str
    polygon: tuple[tuple[float, float], ...]
    min_workers: int = 0
    max_workers: int = 1
    alert_on_empty: bool = True
    alert_on_overflow: bool = True


@dataclass(frozen=True)
class Break:
    start: time
    minutes: int


@dataclass(frozen=True)
class Schedule:
    workdays: tuple[int, ...]  # 0 = Monday, as datetime.weekday()
    work_start: time
    work_end: time
    breaks: tuple[Break, ...]
    indices: int


@dataclass(frozen=True)
class ScheduleChange:
    """The schedule in force from `effective` (inclusive) until the next change."""

    effective: date
    schedule: Schedule
    note: str = ""


@dataclass(frozen=True)
class ScheduleOverride:
    """Days [start, end] (inclusive) with their own schedule, or closed (schedule None)."""

    start: date
    end: date
    schedule: Schedule | None
    note: str = ""


@dataclass(frozen=True)
class Worker:
    """A person of the worker registry; the id is what upstream identity puts in detections.worker_id."""

    id: str
    name: str
    shift: str = ""
    zones: tuple[str, ...] = ()  # zones the worker is assigned to
    skill: str = ""


@dataclass(frozen=True)
class Thresholds:
    idle_motion_score: float = 0.15
    session_gap_seconds: float = 10
    min_session_seconds: float = 3
    # An unseen step of a visitor longer than this (and at most session_gap_seconds) is a detection dropout:
    # half of a dropout at a visit's edge counts toward min_session_seconds (analytics.sessions). Above the
    # frame step of any camera at >= 1 fps (0.2 s at the detector's 5 fps: crediting frame steps over-counts
    # walk-throughs of just under 3 s); below a real tracker's dropouts (MOT17-09's 9 gaps: 3 of at most
    # 0.27 s, 6 of 2.2-3.9 s). bench/README.md, "Session accuracy". >= session_gap_seconds: no credit.
    # The step must also exceed two of the camera's sampling steps (the model measures them), so a sparse
    # sampling rate (0.5 fps: every step 2 s) earns no credit.
    session_dropout_seconds: float = 1
    excessive_idle_seconds: float = 180
    overflow_seconds: float = 30
    empty_seconds: float = 120
    # Visitors (track linking, DESIGN.md "Visitors"). Defaults from bench/accuracy.py: MOT17-09's tracker
    # leaves gaps of p90 3.9 s inside one person (6 s covers them); fragments of one person restart within
    # 0.58 box heights of the extrapolated position in 99% of the simulator's true links while the wrong
    # candidates sit at a median 1.6, and on MOT17-09 0.7 beats 1.0 and 0.5 (bench/README.md). The reach
    # grows by 0.1 box heights x sqrt(gap seconds) beyond link_max_distance (ingestion.linking.LinkParams).
    # link_max_gap_seconds 0 turns linking off.
    link_max_gap_seconds: float = 6
    link_max_distance: float = 0.7
    link_max_size_ratio: float = 1.5


@dataclass(frozen=True)
class WarehouseSettings:
    retention_days: int | None = 365
    compress_after_days: int = 7


@dataclass(frozen=True)
class StreamSettings:
    """Bounds on what `sightline stream` accepts (issue 11): a message outside them is a dead letter."""

    max_lateness_days: float = 7  # frames older than now - this are refused (the broker keeps a session 7 d)
    max_future_seconds: float = 300  # frames newer than now + this are refused (edge-box clock skew)
    max_message_bytes: int = 262_144  # larger payloads are refused unparsed


@dataclass(frozen=True)
class IndexBlock:
    """One block of the index timeline. Times are timezone-aware (UTC)."""

    date: date
    index_number: int
    scheduled_start: datetime
    scheduled_end: datetime
    working_seconds: float


@dataclass(frozen=True)
class Site:
    name: str
    timezone: str
    cameras: tuple[Camera, ...]
    zones: tuple[Zone, ...]
    schedule: Schedule
    thresholds: Thresholds = field(default_factory=Thresholds)
    warehouse: WarehouseSettings = field(default_factory=WarehouseSettings)
    path: str = "<memory>"
    stream: StreamSettings = field(default_factory=StreamSettings)
    alerts: AlertsConfig | None = None  # the `alerts:` section (ingestion.alerts.rules); None when absent
    schedule_changes: tuple[ScheduleChange, ...] = ()  # sorted by effective date
    schedule_overrides: tuple[ScheduleOverride, ...] = ()
    workers: tuple[Worker, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def camera_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.cameras)

    def camera(self, camera_id: str) -> Camera:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(f"unknown camera {camera_id!r}; the site {self.path} has {', '.join(self.camera_ids)}")

    def zones_for(self, camera_id: str) -> tuple[Zone, ...]:
        return tuple(z for z in self.zones if z.camera == camera_id)

    def schedule_in_force(self, day: date) -> Schedule:
        """The regular schedule that applies on `day`: the last change effective on or before it."""
        current = self.schedule
        for change in self.schedule_changes:
            if change.effective > day:
                break
            current = change.schedule
        return current

    def override_on(self, day: date) -> ScheduleOverride | None:
        for o in self.schedule_overrides:
            if o.start <= day <= o.end:
                return o
        return None

    def schedule_on(self, day: date) -> Schedule | None:
        """The working schedule of `day` (override, else the schedule in force), or None when not worked."""
        o = self.override_on(day)
        if o is not None:
            return o.schedule
        s = self.schedule_in_force(day)
        return s if day.weekday() in s.workdays else None

    def is_workday(self, day: date) -> bool:
        return self.schedule_on(day) is not None

    def local_datetime(self, day: date, at: time) -> datetime:
        """A site-local wall-clock time on `day`, as an aware UTC datetime."""
        return datetime.combine(day, at, tzinfo=self.tz).astimezone(UTC)

    def day_window(self, day: date) -> tuple[datetime, datetime]:
        """[start, end) of the site-local calendar day, in UTC."""
        return self.local_datetime(day, time(0)), self.local_datetime(day + timedelta(days=1), time(0))

    def local_day(self, ts: datetime) -> date:
        return ts.astimezone(self.tz).date()

    def working_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's working time (work_start..work_end minus breaks) as UTC intervals; empty off workdays."""
        s = self.schedule_on(day)
        if s is None:
            return []
        wall = [s.work_start]
        for brk in s.breaks:  # sorted at load
            wall += [brk.start, (datetime.combine(day, brk.start) + timedelta(minutes=brk.minutes)).time()]
        wall.append(s.work_end)
        # On a DST day a wall time can be skipped (mapped past a later one) or repeated; a running maximum
        # keeps the boundaries in order, so such a day just has less (or more) working time.
        bounds: list[datetime] = []
        for at in wall:
            utc = self.local_datetime(day, at)
            bounds.append(max(utc, bounds[-1]) if bounds else utc)
        intervals = list(zip(bounds[::2], bounds[1::2], strict=True))
        return [(a, b) for a, b in intervals if b > a]

    def index_timeline(self, day: date) -> list[IndexBlock]:
        """Cut the day's working time into `indices` blocks of equal working time.

        Boundaries are placed on a microsecond grid of working time; a block that meets a break is
        extended by it (it ends after the break). A boundary that lands exactly on a break start ends the
        block there and starts the next one when work resumes, so no block starts or ends inside a break.
        """
        intervals = self.working_intervals(day)
        if not intervals:
            return []
        us = [int((b - a) / timedelta(microseconds=1)) for a, b in intervals]
        total_us = sum(us)
        n = self.schedule_on(day).indices
        offsets = [round(k * total_us / n) for k in range(n + 1)]

        def to_wall(offset_us: int, *, as_end: bool) -> datetime:
            remaining = offset_us
            for (a, _end), length in zip(intervals, us, strict=True):
                # An end boundary exactly at an interval's end belongs to that interval (before the break);
                # a start boundary there belongs to the next interval (after the break).
                if remaining < length or (as_end and remaining == length):
                    return a + timedelta(microseconds=remaining)
                remaining -= length
            return intervals[-1][1]

        blocks = []
        for k in range(n):
            start = to_wall(offsets[k], as_end=False)
            end = to_wall(offsets[k + 1], as_end=True)
            blocks.append(IndexBlock(day, k + 1, start, end, (offsets[k + 1] - offsets[k]) / 1e6))
        return blocks


# --------------------------------------------------------------------------------------------- loading


def site_path(path: str | Path | None = None) -> Path:
    """The site file to use: the argument, else $SIGHTLINE_SITE, else the repository's site.yaml."""
    return Path(path or os.environ.get("SIGHTLINE_SITE") or DEFAULT_SITE_FILE)


def load_site(path: str | Path | None = None) -> Site:
    """Load and validate a site file. Raises SiteConfigError naming file, key and fix."""
    p = site_path(path)
    if not p.is_file():
        raise SiteConfigError(
            p,
            "<file>",
            "the site file does not exist",
            "create it (see site.yaml in the repository) or point SIGHTLINE_SITE at one",
        )
    try:
        doc = yaml.load(p.read_text(), Loader=_SiteLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise SiteConfigError(
            p,
            exc.key,
            f"duplicate key (on lines {exc.first_line} and {exc.line})",
            "keep one of them: YAML would silently use the last",
        ) from exc
    except yaml.YAMLError as exc:
        raise SiteConfigError(p, "<file>", f"not valid YAML ({exc})", "correct the YAML syntax") from exc
    return parse_site(doc, p)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, first_line: int, line: int):
        self.key, self.first_line, self.line = key, first_line, line
        super().__init__(f"{key}: duplicate key on lines {first_line} and {line}")


class _SiteLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping holding the same key twice (plain PyYAML keeps the last one).

    The check walks the composed node tree before constructing it, so the error can name the key's path
    (`thresholds.idle_motion_score`, `cameras[1].id`)."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _reject_duplicate_keys(node, "", set())
        return self.construct_document(node)


def _reject_duplicate_keys(node: yaml.Node, path: str, visited: set[int]) -> None:
    if id(node) in visited:  # an alias of a node already checked
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            key = f"{path}.{name}" if path else str(name)
            if name is not None and name != "<<":  # "<<" is YAML's merge key, not data
                line = key_node.start_mark.line + 1
                if name in first_lines:
                    raise _DuplicateKey(key, first_lines[name], line)
                first_lines[name] = line
            _reject_duplicate_keys(value_node, key, visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{path}[{i}]" if path else f"[{i}]", visited)


def parse_site(doc: Any, path: str | Path = "<memory>") -> Site:
    v = _Validator(path)
    doc = v.mapping(doc, "<root>")
    site_doc = v.mapping(v.required(doc, "site"), "site")
    name = v.string(v.required(site_doc, "name", "site"), "site.name")
    tz_name = v.string(v.required(site_doc, "timezone", "site"), "site.timezone")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise v.error(
            "site.timezone",
            f"unknown timezone {tz_name!r}",
            "use an IANA name such as Asia/Bangkok or Europe/Berlin",
        ) from exc

    cameras = tuple(
        v.camera(c, f"cameras[{i}]")
        for i, c in enumerate(v.sequence(v.required(doc, "cameras"), "cameras", min_len=1))
    )
    v.unique([c.id for c in cameras], "cameras", "id")
    by_id = {c.id: c for c in cameras}
    zones = tuple(
        v.zone(z, f"zones[{i}]", by_id) for i, z in enumerate(v.sequence(doc.get("zones", []), "zones"))
    )
    v.unique([z.id for z in zones], "zones", "id")
    schedule_doc = v.mapping(v.required(doc, "schedule"), "schedule")
    schedule = v.schedule(schedule_doc)
    changes, overrides = parse_schedule_calendar(v, schedule_doc, schedule)
    thresholds = v.thresholds(v.mapping(doc.get("thresholds", {}) or {}, "thresholds"))
    warehouse = v.warehouse(v.mapping(doc.get("warehouse", {}) or {}, "warehouse"))
    stream = v.stream(v.mapping(doc.get("stream", {}) or {}, "stream"))
    workers = parse_workers(v, doc.get("workers"), {z.id for z in zones})
    unknown = set(doc) - {
        "site",
        "cameras",
        "zones",
        "schedule",
        "thresholds",
        "warehouse",
        "stream",
        "alerts",
        "workers",
    }
    if unknown:
        raise v.error(
            sorted(unknown)[0],
            "unknown top-level key",
            "use only site, cameras, zones, schedule, thresholds, warehouse, stream, alerts and workers",
        )
    from ingestion.alerts.rules import parse_alerts  # the alerts package builds on this module

    alerts = parse_alerts(
        doc.get("alerts"),
        v,
        set(by_id),
        {z.id: z for z in zones},
        {
            "idle": thresholds.excessive_idle_seconds,
            "zone_overflow": thresholds.overflow_seconds,
            "zone_empty": thresholds.empty_seconds,
            "camera_down": 60.0,
        },
    )
    return Site(
        name,
        tz_name,
        cameras,
        zones,
        schedule,
        thresholds,
        warehouse,
        str(path),
        stream,
        alerts,
        schedule_changes=changes,
        schedule_overrides=overrides,
        workers=workers,
    )


class _Validator:
    def __init__(self, path: str | Path):
        self.path = path

    def error(self, key: str, problem: str, fix: str) -> SiteConfigError:
        return SiteConfigError(self.path, key, problem, fix)

    def required(self, doc: dict, key: str, parent: str = "") -> Any:
        if key not in doc or doc[key] is None:
            full = f"{parent}.{key}" if parent else key
            raise self.error(full, "missing", f"add `{key}` (see site.yaml in the repository for an example)")
        return doc[key]

    def mapping(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(
                key, f"expected a mapping, got {type(value).__name__}", "write it as `key: value` pairs"
            )
        return value

    def sequence(self, value: Any, key: str, min_len: int = 0) -> list:
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {type(value).__name__}", "write it as a YAML list")
        if len(value) < min_len:
            raise self.error(
                key, f"needs at least {min_len} entr{'y' if min_len == 1 else 'ies'}", "add entries"
            )
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {value!r}", "give a text value")
        return value

    def ident(self, value: Any, key: str) -> str:
        value = self.string(value, key)
        if not _ID_PATTERN.fullmatch(value):
            raise self.error(
                key,
                f"{value!r} is not a valid id",
                "use 1-64 letters, digits, '_' or '-' (ids end up in table rows and file names)",
            )
        return value

    def number(
        self,
        value: Any,
        key: str,
        *,
        low: float | None = None,
        high: float | None = None,
        integer: bool = False,
    ) -> float:
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            kind = "an integer" if integer else "a number"
            raise self.error(key, f"expected {kind}, got {value!r}", f"give {kind}")
        if not math.isfinite(value):  # YAML's .nan and .inf are floats
            raise self.error(key, f"{value} is not a finite number", "give a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.error(key, f"{value} is out of range", f"use a value {bounds}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}", "write true or false")
        return value

    def clock(self, value: Any, key: str) -> time:
        if not isinstance(value, str) or not _TIME_PATTERN.fullmatch(value):
            raise self.error(key, f"bad time {value!r}", 'write a 24-hour time in quotes, such as "08:00"')
        hh, mm = value.split(":")
        return time(int(hh), int(mm))

    def unique(self, ids: list[str], key: str, attr: str) -> None:
        seen = set()
        for i, x in enumerate(ids):
            if x in seen:
                raise self.error(f"{key}[{i}].{attr}", f"duplicate id {x!r}", "give every entry its own id")
            seen.add(x)

    def camera(self, doc: Any, key: str) -> Camera:
        doc = self.mapping(doc, key)
        return Camera(
            id=self.ident(self.required(doc, "id", key), f"{key}.id"),
            name=self.string(doc.get("name", doc.get("id")), f"{key}.name"),
            source=self.string(doc.get("source", f"sim://{doc.get('id')}"), f"{key}.source"),
            width=int(self.number(self.required(doc, "width", key), f"{key}.width", low=16, integer=True)),
            height=int(self.number(self.required(doc, "height", key), f"{key}.height", low=16, integer=True)),
            fps=float(self.number(doc.get("fps", 30), f"{key}.fps", low=0.1, high=240)),
            background_image=self.image_file(doc.get("background_image"), f"{key}.background_image"),
        )

    def site_relative(self, text: str) -> Path:
        """A path from the site file, relative to the file's folder (an absolute one stays as it is)."""
        return (Path(self.path).parent if str(self.path) != "<memory>" else Path.cwd()) / text

    def image_file(self, value: Any, key: str) -> Path | None:
        """An optional image path, relative to the site file's folder; it must exist."""
        if value is None:
            return None
        path = self.site_relative(self.string(value, key)).resolve()
        if not path.is_file():
            raise self.error(
                key,
                f"{path} does not exist",
                "save a still of the empty scene from this camera there (e.g. `ffmpeg -i recording.mp4 "
                "-frames:v 1 CAM01.png`), give its path relative to the site file, or remove the key",
            )
        return path

    def zone(self, doc: Any, key: str, cameras: dict[str, Camera]) -> Zone:
        doc = self.mapping(doc, key)
        zid = self.ident(self.required(doc, "id", key), f"{key}.id")
        cam_id = self.string(self.required(doc, "camera", key), f"{key}.camera")
        if cam_id not in cameras:
            raise self.error(
                f"{key}.camera",
                f"zone {zid} names unknown camera {cam_id!r}",
                f"use one of the cameras defined under `cameras`: {', '.join(cameras)}",
            )
        ztype = self.string(self.required(doc, "type", key), f"{key}.type")
        if ztype not in ZONE_TYPES:
            raise self.error(
                f"{key}.type", f"unknown zone type {ztype!r}", f"use one of {', '.join(ZONE_TYPES)}"
            )
        polygon = self.polygon(self.required(doc, "polygon", key), f"{key}.polygon", cameras[cam_id])
        min_w = int(self.number(doc.get("min_workers", 0), f"{key}.min_workers", low=0, integer=True))
        max_w = int(
            self.number(doc.get("max_workers", max(min_w, 1)), f"{key}.max_workers", low=0, integer=True)
        )
        if max_w < min_w:
            raise self.error(
                f"{key}.max_workers",
                f"max_workers {max_w} is below min_workers {min_w}",
                "make max_workers at least min_workers",
            )
        return Zone(
            id=zid,
            camera=cam_id,
            name=self.string(doc.get("name", zid), f"{key}.name"),
            type=ztype,
            polygon=polygon,
            min_workers=min_w,
            max_workers=max_w,
            alert_on_empty=self.boolean(doc.get("alert_on_empty", True), f"{key}.alert_on_empty"),
            alert_on_overflow=self.boolean(doc.get("alert_on_overflow", True), f"{key}.alert_on_overflow"),
        )

    def polygon(self, value: Any, key: str, camera: Camera) -> tuple[tuple[float, float], ...]:
        pts = self.sequence(value, key)
        if len(pts) < 3:
            raise self.error(
                key,
                f"a polygon needs at least 3 points, got {len(pts)}",
                "list the zone's corners as [[x, y], ...] with 3 or more points",
            )
        out = []
        for i, pt in enumerate(pts):
            if (
                not isinstance(pt, list | tuple)
                or len(pt) != 2
                or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in pt)
            ):
                raise self.error(
                    f"{key}[{i}]",
                    f"expected an [x, y] pair of numbers, got {pt!r}",
                    "write each corner as [x, y] in pixels",
                )
            x, y = float(pt[0]), float(pt[1])
            if not (0 <= x <= camera.width and 0 <= y <= camera.height):
                raise self.error(
                    f"{key}[{i}]",
                    f"point ({x:g}, {y:g}) lies outside camera {camera.id}'s "
                    f"{camera.width}x{camera.height} frame",
                    "use pixel coordinates inside the frame",
                )
            out.append((x, y))
        if _polygon_area(out) == 0:
            raise self.error(
                key, "the polygon has zero area (its points are collinear)", "use distinct corners"
            )
        crossing = _self_intersection(out)
        if crossing is not None:
            i, j = crossing
            raise self.error(
                key,
                f"the polygon intersects itself (edge {i} crosses edge {j})",
                "list the corners in order around the zone, clockwise or anticlockwise",
            )
        return tuple(out)

    def schedule(self, doc: dict, key: str = "schedule", base: Schedule | None = None) -> Schedule:
        """A schedule from `doc`; with `base` (a dated change or an override), missing keys keep base's."""

        def given(name: str) -> bool:
            return base is None or doc.get(name) is not None

        if given("workdays"):
            days = self.sequence(self.required(doc, "workdays", key), f"{key}.workdays", min_len=1)
            workdays = []
            for i, d in enumerate(days):
                if not isinstance(d, str) or d.lower()[:3] not in WEEKDAYS:
                    raise self.error(
                        f"{key}.workdays[{i}]", f"unknown weekday {d!r}", f"use {', '.join(WEEKDAYS)}"
                    )
                workdays.append(WEEKDAYS.index(d.lower()[:3]))
        else:
            workdays = list(base.workdays)
        start = (
            self.clock(self.required(doc, "work_start", key), f"{key}.work_start")
            if given("work_start")
            else base.work_start
        )
        end = (
            self.clock(self.required(doc, "work_end", key), f"{key}.work_end")
            if given("work_end")
            else base.work_end
        )
        if end <= start:
            raise self.error(
                f"{key}.work_end",
                f"work_end {end:%H:%M} is not after work_start {start:%H:%M}",
                "shifts that cross midnight are not supported; end the day after it starts",
            )
        breaks = []
        if given("breaks") or "breaks" in doc:
            for i, b in enumerate(self.sequence(doc.get("breaks", []) or [], f"{key}.breaks")):
                bkey = f"{key}.breaks[{i}]"
                b = self.mapping(b, bkey)
                b_start = self.clock(self.required(b, "start", bkey), f"{bkey}.start")
                minutes = int(
                    self.number(self.required(b, "minutes", bkey), f"{bkey}.minutes", low=1, integer=True)
                )
                breaks.append(Break(b_start, minutes))
        else:
            breaks = list(base.breaks)
        for i, b in enumerate(breaks):  # in file order: the error names the entry
            b_end_min = b.start.hour * 60 + b.start.minute + b.minutes
            if b.start <= start or b_end_min >= end.hour * 60 + end.minute:
                raise self.error(
                    f"{key}.breaks[{i}]",
                    f"the break {b.start:%H:%M}+{b.minutes}min is outside working hours "
                    f"{start:%H:%M}-{end:%H:%M}",
                    "move the break strictly inside working hours",
                )
        breaks.sort(key=lambda b: b.start)
        for prev, nxt in zip(breaks, breaks[1:], strict=False):
            if (
                prev.start.hour * 60 + prev.start.minute + prev.minutes
                >= nxt.start.hour * 60 + nxt.start.minute
            ):
                raise self.error(
                    f"{key}.breaks",
                    f"breaks at {prev.start:%H:%M} and {nxt.start:%H:%M} overlap or touch",
                    "merge them into one break or move one",
                )
        default_indices = base.indices if base is not None else 1
        indices = int(
            self.number(doc.get("indices", default_indices), f"{key}.indices", low=1, high=1000, integer=True)
        )
        return Schedule(tuple(sorted(set(workdays))), start, end, tuple(breaks), indices)

    def day(self, value: Any, key: str) -> date:
        """A calendar date: YAML's unquoted 2025-01-15 or the same text quoted."""
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(key, f"bad date {value!r}", "write a date as YYYY-MM-DD, such as 2025-01-15")

    def thresholds(self, doc: dict) -> Thresholds:
        defaults = Thresholds()
        values = {}
        for name in defaults.__dataclass_fields__:
            high = 1.0 if name == "idle_motion_score" else None
            values[name] = float(
                self.number(doc.get(name, getattr(defaults, name)), f"thresholds.{name}", low=0, high=high)
            )
        unknown = set(doc) - set(values)
        if unknown:
            raise self.error(
                f"thresholds.{sorted(unknown)[0]}", "unknown threshold", f"use only {', '.join(values)}"
            )
        if values["session_gap_seconds"] <= 0:
            raise self.error(
                "thresholds.session_gap_seconds", "must be above 0", "use a positive number of seconds"
            )
        if values["link_max_size_ratio"] < 1:
            raise self.error(
                "thresholds.link_max_size_ratio",
                "must be at least 1 (larger box height / smaller one)",
                "use e.g. 1.5; 1 links only boxes of exactly the same height",
            )
        return Thresholds(**values)

    def warehouse(self, doc: dict) -> WarehouseSettings:
        retention = doc.get("retention_days", 365)
        if retention is not None:
            retention = int(self.number(retention, "warehouse.retention_days", low=1, integer=True))
        compress = int(
            self.number(
                doc.get("compress_after_days", 7), "warehouse.compress_after_days", low=1, integer=True
            )
        )
        return WarehouseSettings(retention, compress)

    def stream(self, doc: dict) -> StreamSettings:
        defaults = StreamSettings()
        unknown = set(doc) - set(defaults.__dataclass_fields__)
        if unknown:
            raise self.error(
                f"stream.{sorted(unknown)[0]}",
                "unknown setting",
                f"use only {', '.join(defaults.__dataclass_fields__)}",
            )
        lateness = self.number(
            doc.get("max_lateness_days", defaults.max_lateness_days),
            "stream.max_lateness_days",
            low=0,
            high=36_500,
        )
        future = self.number(
            doc.get("max_future_seconds", defaults.max_future_seconds),
            "stream.max_future_seconds",
            low=0,
            high=366 * 86_400,
        )
        size = self.number(
            doc.get("max_message_bytes", defaults.max_message_bytes),
            "stream.max_message_bytes",
            low=1024,
            high=64 << 20,
            integer=True,
        )
        if lateness <= 0:
            raise self.error(
                "stream.max_lateness_days",
                "must be above 0",
                "use a positive number of days (frames older than that are refused)",
            )
        return StreamSettings(float(lateness), float(future), int(size))


def _polygon_area(pts: list[tuple[float, float]]) -> float:
    return 0.5 * abs(
        sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True))
    )


def _self_intersection(pts: list[tuple[float, float]]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges that touch or cross, or None for a simple polygon."""
    n = len(pts)
    edges = [(pts[i], pts[(i + 1) % n]) for i in range(n)]

    def orient(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    def on_segment(a, b, c) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    def touch(p1, p2, q1, q2) -> bool:
        d1, d2, d3, d4 = orient(q1, q2, p1), orient(q1, q2, p2), orient(p1, p2, q1), orient(p1, p2, q2)
        if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 and d2 and d3 and d4:
            return True
        return (
            (d1 == 0 and on_segment(q1, q2, p1))
            or (d2 == 0 and on_segment(q1, q2, p2))
            or (d3 == 0 and on_segment(p1, p2, q1))
            or (d4 == 0 and on_segment(p1, p2, q2))
        )

    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # adjacent edges share a corner by construction
            if touch(*edges[i], *edges[j]):
                return i, j
    return None


# ------------------------------------------------------------------------------ dated schedules, workers

_SCHEDULE_KEYS = ("workdays", "work_start", "work_end", "breaks", "indices")


def parse_schedule_calendar(
    v: _Validator, doc: dict, base: Schedule
) -> tuple[tuple[ScheduleChange, ...], tuple[ScheduleOverride, ...]]:
    """`schedule.changes` (a new regular schedule from an effective date on; keys not given keep the
    previous schedule's) and `schedule.overrides` (a date or date range with its own hours, breaks and
    indices, or `closed: true`). Dated entries are what keeps history: a past day's schedule is the one
    that was in force then, whatever the file says today."""
    unknown = set(doc) - {*_SCHEDULE_KEYS, "changes", "overrides"}
    if unknown:
        raise v.error(
            f"schedule.{sorted(unknown)[0]}",
            "unknown schedule key",
            f"use only {', '.join(_SCHEDULE_KEYS)}, changes and overrides",
        )
    changes: list[ScheduleChange] = []
    previous = base
    for i, c in enumerate(v.sequence(doc.get("changes", []) or [], "schedule.changes")):
        key = f"schedule.changes[{i}]"
        c = v.mapping(c, key)
        _reject_unknown(v, c, key, {*_SCHEDULE_KEYS, "effective", "note"})
        effective = v.day(v.required(c, "effective", key), f"{key}.effective")
        if changes and effective <= changes[-1].effective:
            raise v.error(
                f"{key}.effective",
                f"{effective} is not after the previous change ({changes[-1].effective})",
                "list changes in date order, one per date",
            )
        previous = v.schedule(c, key, previous)
        changes.append(ScheduleChange(effective, previous, _note(v, c, key)))

    overrides: list[ScheduleOverride] = []
    for i, o in enumerate(v.sequence(doc.get("overrides", []) or [], "schedule.overrides")):
        key = f"schedule.overrides[{i}]"
        o = v.mapping(o, key)
        _reject_unknown(v, o, key, {*_SCHEDULE_KEYS, "date", "from", "to", "closed", "note"} - {"workdays"})
        if "date" in o and ("from" in o or "to" in o):
            raise v.error(
                key,
                "both `date` and `from`/`to` given",
                "use `date` for one day, `from` and `to` (inclusive) for a range",
            )
        if "date" in o:
            first = last = v.day(o["date"], f"{key}.date")
        else:
            first = v.day(v.required(o, "from", key), f"{key}.from")
            last = v.day(v.required(o, "to", key), f"{key}.to")
            if last < first:
                raise v.error(f"{key}.to", f"{last} is before from {first}", "make `to` on or after `from`")
        closed = v.boolean(o.get("closed", False), f"{key}.closed")
        if closed and set(o) & set(_SCHEDULE_KEYS):
            raise v.error(
                key,
                "a closed day cannot have hours, breaks or indices",
                "remove `closed: true` or the schedule keys",
            )
        for prev in overrides:
            if first <= prev.end and prev.start <= last:
                raise v.error(
                    key,
                    f"{first}..{last} overlaps the override {prev.start}..{prev.end}",
                    "give each day at most one override",
                )
        # The override's own keys complete the regular schedule in force on its first day.
        in_force = base
        for change in changes:
            if change.effective <= first:
                in_force = change.schedule
        sched = None if closed else v.schedule(o, key, in_force)
        overrides.append(ScheduleOverride(first, last, sched, _note(v, o, key)))
    overrides.sort(key=lambda o: o.start)
    return tuple(changes), tuple(overrides)


def _reject_unknown(v: _Validator, doc: dict, key: str, allowed: set[str]) -> None:
    unknown = set(doc) - allowed
    if unknown:
        raise v.error(f"{key}.{sorted(unknown)[0]}", "unknown key", f"use only {', '.join(sorted(allowed))}")


def _note(v: _Validator, doc: dict, key: str) -> str:
    return v.string(doc["note"], f"{key}.note") if doc.get("note") is not None else ""


_WORKER_KEYS = ("worker_id", "name", "shift", "zones", "skill")


def parse_workers(v: _Validator, value: Any, zone_ids: set[str]) -> tuple[Worker, ...]:
    """`workers:` as a list of {worker_id (or badge), name, shift, zones, skill}, or the path of a CSV file
    with those columns (relative to the site file; zones separated by spaces or ';')."""
    if value is None:
        return ()
    if isinstance(value, str):
        csv_path = v.site_relative(value)
        if not csv_path.is_file():
            raise v.error(
                "workers",
                f"the workers file {str(csv_path)!r} does not exist",
                "give a CSV path relative to the site file, or list the workers inline",
            )
        rows, prefix, cv = _read_workers_csv(csv_path), "row", _Validator(csv_path)
    else:
        rows, prefix, cv = v.sequence(value, "workers"), "workers", v
    workers = []
    for i, row in enumerate(rows):
        key = f"{prefix}[{i}]" if prefix == "workers" else f"row {i + 2}"  # CSV: line number, header is 1
        row = cv.mapping(row, key)
        if "badge" in row and "worker_id" not in row:
            row = {**row, "worker_id": row["badge"]}
        _reject_unknown(cv, {k: x for k, x in row.items() if k != "badge"}, key, set(_WORKER_KEYS))
        wid = cv.ident(cv.required(row, "worker_id", key), f"{key}.worker_id")
        zones = row.get("zones") or []
        if isinstance(zones, str):
            zones = [z for z in re.split(r"[;,\s]+", zones) if z]
        zones = cv.sequence(zones, f"{key}.zones")
        for z in zones:
            if z not in zone_ids:
                raise cv.error(
                    f"{key}.zones",
                    f"worker {wid} is assigned to unknown zone {z!r}",
                    f"use zones defined under `zones`: {', '.join(sorted(zone_ids))}",
                )
        workers.append(
            Worker(
                id=wid,
                name=cv.string(row.get("name") or wid, f"{key}.name"),
                shift=str(row.get("shift") or ""),
                zones=tuple(zones),
                skill=str(row.get("skill") or ""),
            )
        )
    cv.unique([w.id for w in workers], prefix if prefix == "workers" else "row", "worker_id")
    return tuple(workers)


def _read_workers_csv(path: Path) -> list[dict]:
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        return [{k.strip(): (x or "").strip() for k, x in r.items() if k} for r in csv.DictReader(f)]
