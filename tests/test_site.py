"""Site config: every invalid input fails at load naming file, key and fix; the index timeline's properties
hold for random schedules (hypothesis)."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ingestion.site import SiteConfigError, load_site, parse_site

REPO_SITE = Path(__file__).resolve().parent.parent / "site.yaml"
BASE = yaml.safe_load(REPO_SITE.read_text())


def test_repository_site_loads(site):
    assert len(site.cameras) == 4 and len(site.zones) >= 12
    assert {z.type for z in site.zones} == {"work_area", "inspection", "break_area", "restricted"}


def _zone(doc: dict) -> dict:
    return doc["zones"][0]


# (what is wrong, mutation of a copy of site.yaml, key named in the error, words of the fix)
INVALID = [
    (
        "unknown camera on a zone",
        lambda d: _zone(d).update(camera="CAM99"),
        "zones[0].camera",
        "use one of the cameras",
    ),
    (
        "polygon with 2 points",
        lambda d: _zone(d).update(polygon=[[0, 0], [10, 10]]),
        "zones[0].polygon",
        "3 or more points",
    ),
    (
        "self-intersecting polygon (bow tie)",
        lambda d: _zone(d).update(polygon=[[0, 0], [200, 100], [200, 0], [0, 150]]),
        "zones[0].polygon",
        "in order around the zone",
    ),
    (
        "collinear polygon",
        lambda d: _zone(d).update(polygon=[[0, 0], [50, 50], [100, 100]]),
        "zones[0].polygon",
        "distinct corners",
    ),
    (
        "polygon point outside the frame",
        lambda d: _zone(d).update(polygon=[[0, 0], [5000, 0], [0, 100]]),
        "zones[0].polygon[1]",
        "inside the frame",
    ),
    (
        "polygon point not a pair",
        lambda d: _zone(d).update(polygon=[[0, 0], [5], [0, 100]]),
        "zones[0].polygon[1]",
        "[x, y]",
    ),
    ("bad time", lambda d: d["schedule"].update(work_start="8am"), "schedule.work_start", "24-hour time"),
    ("hour 25", lambda d: d["schedule"].update(work_end="25:00"), "schedule.work_end", "24-hour time"),
    (
        "work ends before it starts",
        lambda d: d["schedule"].update(work_start="18:00"),
        "schedule.work_end",
        "after it starts",
    ),
    (
        "break before working hours",
        lambda d: d["schedule"].update(breaks=[{"start": "07:00", "minutes": 15}]),
        "schedule.breaks[0]",
        "inside working hours",
    ),
    (
        "break running past work end",
        lambda d: d["schedule"].update(breaks=[{"start": "16:50", "minutes": 15}]),
        "schedule.breaks[0]",
        "inside working hours",
    ),
    (
        "overlapping breaks",
        lambda d: d["schedule"].update(
            breaks=[{"start": "10:00", "minutes": 30}, {"start": "10:15", "minutes": 15}]
        ),
        "schedule.breaks",
        "merge them",
    ),
    (
        "unknown weekday",
        lambda d: d["schedule"].update(workdays=["mon", "funday"]),
        "schedule.workdays[1]",
        "mon",
    ),
    ("zero indices", lambda d: d["schedule"].update(indices=0), "schedule.indices", "use a value"),
    ("unknown timezone", lambda d: d["site"].update(timezone="Mars/Olympus"), "site.timezone", "IANA"),
    (
        "duplicate camera id",
        lambda d: d["cameras"].append(dict(d["cameras"][0])),
        "cameras[4].id",
        "its own id",
    ),
    (
        "duplicate zone id",
        lambda d: d["zones"].append(dict(d["zones"][0])),
        f"zones[{len(BASE['zones'])}].id",
        "its own id",
    ),
    ("unknown zone type", lambda d: _zone(d).update(type="kitchen"), "zones[0].type", "work_area"),
    (
        "max below min workers",
        lambda d: _zone(d).update(min_workers=3, max_workers=1),
        "zones[0].max_workers",
        "at least min_workers",
    ),
    (
        "idle threshold above 1",
        lambda d: d["thresholds"].update(idle_motion_score=1.5),
        "thresholds.idle_motion_score",
        "between 0",
    ),
    (
        "unknown threshold",
        lambda d: d["thresholds"].update(idle_seconds=3),
        "thresholds.idle_seconds",
        "use only",
    ),
    ("missing schedule", lambda d: d.pop("schedule"), "schedule", "add `schedule`"),
    ("missing camera width", lambda d: d["cameras"][0].pop("width"), "cameras[0].width", "add `width`"),
    ("no cameras", lambda d: d.update(cameras=[]), "cameras", "add entries"),
    ("unknown top-level key", lambda d: d.update(camras=[]), "camras", "use only"),
    ("bad camera id", lambda d: d["cameras"][0].update(id="CAM 01"), "cameras[0].id", "letters, digits"),
    (
        "NaN threshold (YAML .nan)",
        lambda d: d["thresholds"].update(idle_motion_score=float("nan")),
        "thresholds.idle_motion_score",
        "finite number",
    ),
    (
        "infinite threshold (YAML .inf)",
        lambda d: d["thresholds"].update(excessive_idle_seconds=float("inf")),
        "thresholds.excessive_idle_seconds",
        "finite number",
    ),
    (
        "negative infinite fps",
        lambda d: d["cameras"][0].update(fps=float("-inf")),
        "cameras[0].fps",
        "finite number",
    ),
    (
        "camera id with a trailing newline",
        lambda d: d["cameras"][0].update(id="CAM09\n"),
        "cameras[0].id",
        "letters, digits",
    ),
    (
        "zone id with a trailing newline",
        lambda d: _zone(d).update(id="Z01\n"),
        "zones[0].id",
        "letters, digits",
    ),
    (
        "work start with a trailing newline",
        lambda d: d["schedule"].update(work_start="08:00\n"),
        "schedule.work_start",
        "24-hour time",
    ),
    (
        "missing empty-scene image",
        lambda d: d["cameras"][0].update(background_image="backgrounds/CAM01.png"),
        "cameras[0].background_image",
        "still of the empty scene",
    ),
    (
        "negative retention",
        lambda d: d["warehouse"].update(retention_days=0),
        "warehouse.retention_days",
        "at least",
    ),
]


@pytest.mark.parametrize(("problem", "mutate", "key", "fix"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_site_config_names_file_key_and_fix(tmp_path: Path, problem, mutate, key, fix):
    doc = copy.deepcopy(BASE)
    mutate(doc)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    assert err.value.path == str(path)
    assert err.value.key == key
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: ") and "Fix: " in message and fix in err.value.fix


def test_background_image_is_found_beside_the_site_file(tmp_path: Path, monkeypatch):
    doc = copy.deepcopy(BASE)
    doc["cameras"][0]["background_image"] = "backgrounds/CAM01.png"
    (tmp_path / "backgrounds").mkdir()
    (tmp_path / "backgrounds" / "CAM01.png").write_bytes(b"")
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.chdir("/")  # relative to the site file, not to where the command runs
    site = load_site(tmp_path / "site.yaml")
    assert site.cameras[0].background_image == (tmp_path / "backgrounds" / "CAM01.png").resolve()
    assert site.cameras[1].background_image is None


def test_unreadable_and_missing_files(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("site: {name: [unclosed")
    with pytest.raises(SiteConfigError, match="(?s)not valid YAML.*Fix: correct the YAML syntax"):
        load_site(broken)
    with pytest.raises(SiteConfigError, match="does not exist.*SIGHTLINE_SITE"):
        load_site(tmp_path / "absent.yaml")


DUPLICATES = [
    # (where the duplicate is, YAML text appended to / replacing part of site.yaml, key named)
    ("top level", lambda text: text + "\nthresholds: {idle_motion_score: 0.9}\n", "thresholds"),
    (
        "nested block mapping",
        lambda text: text.replace("  idle_motion_score:", "  idle_motion_score: 0.5\n  idle_motion_score:"),
        "thresholds.idle_motion_score",
    ),
    (
        "flow mapping inside a list",
        lambda text: text.replace("{id: CAM02,", "{id: CAM02, id: CAM05,", 1),
        "cameras[1].id",
    ),
]


@pytest.mark.parametrize(("where", "edit", "key"), DUPLICATES, ids=[c[0] for c in DUPLICATES])
def test_duplicate_keys_are_rejected_not_silently_overridden(tmp_path: Path, where, edit, key):
    text = REPO_SITE.read_text()
    edited = edit(text)
    assert edited != text, "the edit must change the file"
    path = tmp_path / "site.yaml"
    path.write_text(edited)
    assert yaml.safe_load(edited) is not None  # plain PyYAML accepts it, keeping the last value
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    assert err.value.key == key
    assert str(err.value).startswith(f"{path}: {key}: duplicate key (on lines ")
    assert "Fix: keep one of them" in str(err.value)


def test_site_file_from_environment(tmp_path: Path, monkeypatch):
    doc = copy.deepcopy(BASE)
    doc["site"]["name"] = "Other Plant"
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("SIGHTLINE_SITE", str(path))
    assert load_site().name == "Other Plant"


# ----------------------------------------------------------------------------------------- index timeline

US = timedelta(microseconds=1)


@st.composite
def schedules(draw):
    """A random valid schedule: working hours, 0-4 non-touching breaks strictly inside, 1-60 indices."""
    start = draw(st.integers(0, 20 * 60))
    end = draw(st.integers(start + 30, 23 * 60 + 59))
    n_breaks = draw(st.integers(0, 4))
    points = sorted(
        draw(
            st.lists(
                st.integers(start + 1, end - 1), min_size=2 * n_breaks, max_size=2 * n_breaks, unique=True
            )
        )
    )
    breaks = []
    for i in range(n_breaks):
        b_start, b_end = points[2 * i], points[2 * i + 1]
        if breaks and b_start <= breaks[-1][0] + breaks[-1][1]:
            continue  # touching the previous break: not a valid config
        breaks.append((b_start, b_end - b_start))
    return {
        "workdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "work_start": f"{start // 60:02d}:{start % 60:02d}",
        "work_end": f"{end // 60:02d}:{end % 60:02d}",
        "breaks": [{"start": f"{b // 60:02d}:{b % 60:02d}", "minutes": m} for b, m in breaks],
        "indices": draw(st.integers(1, 60)),
    }


def _overlap(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> timedelta:
    return max(timedelta(0), min(a1, b1) - max(a0, b0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schedule=schedules(),
    timezone=st.sampled_from(["Asia/Bangkok", "Europe/Berlin", "America/New_York", "UTC"]),
    day=st.sampled_from(
        [
            date(2025, 1, 15),
            date(2025, 3, 30),
            date(2025, 3, 9),
            date(2025, 11, 2),
            date(2025, 10, 26),
            date(2024, 2, 29),
        ]
    ),
)
def test_index_timeline_properties(schedule, timezone, day):
    doc = copy.deepcopy(BASE)
    doc["schedule"] = schedule
    doc["site"]["timezone"] = timezone
    site = parse_site(doc, "<hypothesis>")
    blocks = site.index_timeline(day)
    working = site.working_intervals(day)
    # A schedule lying wholly inside a DST gap has no working time; the sum must still allow n blocks.
    assume(sum((b - a for a, b in working), timedelta(0)) >= site.schedule.indices * US)
    breaks = [(a_end, b_start) for (_, a_end), (b_start, _) in zip(working, working[1:], strict=False)]
    n = site.schedule.indices
    assert [b.index_number for b in blocks] == list(range(1, n + 1))
    # Contiguous: each block ends where the next starts, or only a break separates them.
    for prev, nxt in zip(blocks, blocks[1:], strict=False):
        assert (
            prev.scheduled_end == nxt.scheduled_start or (prev.scheduled_end, nxt.scheduled_start) in breaks
        )
        assert prev.scheduled_start < prev.scheduled_end
    # Never starting or ending inside a break.
    for b in blocks:
        for b0, b1 in breaks:
            assert not (b0 <= b.scheduled_start < b1)
            assert not (b0 < b.scheduled_end <= b1)
    # Covering exactly the working time: from its first to its last instant, each working second once.
    assert blocks[0].scheduled_start == working[0][0] and blocks[-1].scheduled_end == working[-1][1]
    per_block = [
        sum((_overlap(b.scheduled_start, b.scheduled_end, w0, w1) for w0, w1 in working), timedelta(0))
        for b in blocks
    ]
    total = sum((w1 - w0 for w0, w1 in working), timedelta(0))
    assert sum(per_block, timedelta(0)) == total
    # Equal working time (within 1 microsecond), and the stored working_seconds says so.
    assert max(per_block) - min(per_block) <= US
    for b, actual in zip(blocks, per_block, strict=True):
        assert abs(b.working_seconds - actual.total_seconds()) <= 1e-6


def test_index_timeline_is_empty_on_days_off(site):
    saturday = date(2025, 1, 18)
    assert not site.is_workday(saturday) and site.index_timeline(saturday) == []


def test_working_time_on_a_dst_day_stays_in_order():
    # Europe/Berlin skips 02:00-03:00 on 2025-03-30; a break at 02:30 (a wall time that never happens)
    # must not put the intervals out of order.
    doc = copy.deepcopy(BASE)
    doc["site"]["timezone"] = "Europe/Berlin"
    doc["schedule"] = {
        "workdays": ["sun"],
        "work_start": "01:00",
        "work_end": "06:00",
        "breaks": [{"start": "02:30", "minutes": 15}],
        "indices": 3,
    }
    site = parse_site(doc, "<dst>")
    working = site.working_intervals(date(2025, 3, 30))
    flat = [t for interval in working for t in interval]
    assert flat == sorted(flat)
    # 01:00 CET .. 06:00 CEST is 4 hours of clock time, less the 15-minute break.
    assert sum((b - a for a, b in working), timedelta(0)) == timedelta(hours=3, minutes=45)
    blocks = site.index_timeline(date(2025, 3, 30))
    assert [b.working_seconds for b in blocks] == [4500.0] * 3
