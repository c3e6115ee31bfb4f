"""Workers and dated schedules in the site config: validation errors name file, key and fix; an override
day builds its own blocks; ref.index_timeline is history (a schedule edit never rewrites a stored day,
rebuilding it uses the schedule in force that day) on DuckDB and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import date, time, timedelta
from pathlib import Path

import pytest
import yaml

from ingestion.site import SiteConfigError, load_site, parse_site
from ingestion.warehouse import connect

REPO_SITE = Path(__file__).resolve().parent.parent / "site.yaml"
BASE = yaml.safe_load(REPO_SITE.read_text())
WED = date(2025, 1, 15)


def _doc(**top) -> dict:
    doc = copy.deepcopy(BASE)
    for key, value in top.items():
        if key == "schedule":
            doc["schedule"].update(value)
        else:
            doc[key] = value
    return doc


INVALID = [
    ("worker without id", dict(workers=[{"name": "Ann"}]), "workers[0].worker_id", "add `worker_id`"),
    ("bad worker id", dict(workers=[{"worker_id": "a b"}]), "workers[0].worker_id", "letters, digits"),
    (
        "duplicate worker",
        dict(workers=[{"worker_id": "W1"}, {"badge": "W1"}]),
        "workers[1].worker_id",
        "its own id",
    ),
    (
        "unknown assigned zone",
        dict(workers=[{"worker_id": "W1", "zones": ["Z01", "Z99"]}]),
        "workers[0].zones",
        "zones defined under `zones`",
    ),
    ("unknown worker key", dict(workers=[{"worker_id": "W1", "role": "x"}]), "workers[0].role", "use only"),
    ("missing workers file", dict(workers="nowhere.csv"), "workers", "CSV path relative to the site file"),
    (
        "override with a bad date",
        dict(schedule={"overrides": [{"date": "2025-13-01", "closed": True}]}),
        "schedule.overrides[0].date",
        "YYYY-MM-DD",
    ),
    (
        "override range backwards",
        dict(schedule={"overrides": [{"from": date(2025, 1, 20), "to": date(2025, 1, 19), "closed": True}]}),
        "schedule.overrides[0].to",
        "on or after `from`",
    ),
    (
        "overlapping overrides",
        dict(
            schedule={
                "overrides": [
                    {"date": WED, "closed": True},
                    {"from": date(2025, 1, 14), "to": WED, "work_start": "09:00"},
                ]
            }
        ),
        "schedule.overrides[1]",
        "at most one override",
    ),
    (
        "closed day with hours",
        dict(schedule={"overrides": [{"date": WED, "closed": True, "indices": 3}]}),
        "schedule.overrides[0]",
        "remove `closed: true`",
    ),
    (
        "override break outside its hours",
        dict(schedule={"overrides": [{"date": WED, "work_end": "12:00"}]}),
        "schedule.overrides[0].breaks[1]",
        "strictly inside working hours",
    ),
    (
        "changes out of order",
        dict(
            schedule={
                "changes": [
                    {"effective": date(2025, 3, 1), "indices": 4},
                    {"effective": date(2025, 2, 1), "indices": 5},
                ]
            }
        ),
        "schedule.changes[1].effective",
        "date order",
    ),
    (
        "change without a date",
        dict(schedule={"changes": [{"indices": 4}]}),
        "schedule.changes[0].effective",
        "add `effective`",
    ),
    ("unknown schedule key", dict(schedule={"holidays": []}), "schedule.holidays", "overrides"),
]


@pytest.mark.parametrize(("what", "edit", "key", "fix"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_workers_and_schedules_name_key_and_fix(what, edit, key, fix, tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(_doc(**edit)))
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    assert err.value.key == key, (what, str(err.value))
    assert fix in err.value.fix, (what, str(err.value))
    assert str(path) in str(err.value)


def test_workers_csv_is_read_relative_to_the_site_and_errors_name_its_row(tmp_path):
    (tmp_path / "workers.csv").write_text(
        "badge,name,shift,zones,skill\nB-001,Ann,day,Z01;Z02,welder\nB-002,Bo,,Z05,\n"
    )
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(_doc(workers="workers.csv")))
    site = load_site(path)
    assert [(w.id, w.name, w.shift, w.zones, w.skill) for w in site.workers] == [
        ("B-001", "Ann", "day", ("Z01", "Z02"), "welder"),
        ("B-002", "Bo", "", ("Z05",), ""),
    ]

    (tmp_path / "workers.csv").write_text("worker_id,name,zones\nW1,Ann,Z01\nW2,Bo,Z77\n")
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    assert err.value.path == str(tmp_path / "workers.csv") and err.value.key == "row 3.zones"
    assert "Z77" in err.value.problem


def test_override_day_builds_its_own_blocks():
    holiday, short = date(2025, 1, 16), date(2025, 1, 17)
    site = parse_site(
        _doc(
            schedule={
                "overrides": [
                    {"date": holiday, "closed": True, "note": "holiday"},
                    {
                        "date": short,
                        "work_start": "09:00",
                        "work_end": "13:00",
                        "breaks": [{"start": "11:00", "minutes": 30}],
                        "indices": 4,
                        "note": "stock-take",
                    },
                    {"date": date(2025, 1, 18), "indices": 2},  # a Saturday worked with the regular hours
                ]
            }
        )
    )
    assert site.index_timeline(holiday) == [] and not site.is_workday(holiday)
    blocks = site.index_timeline(short)
    assert [b.index_number for b in blocks] == [1, 2, 3, 4]
    assert blocks[0].scheduled_start == site.local_datetime(short, time(9))
    assert blocks[-1].scheduled_end == site.local_datetime(short, time(13))
    assert all(b.working_seconds == pytest.approx(3.5 * 3600 / 4) for b in blocks)
    # The block that meets the break includes it; no block starts inside it.
    brk = (site.local_datetime(short, time(11)), site.local_datetime(short, time(11, 30)))
    assert not any(brk[0] < b.scheduled_start < brk[1] for b in blocks)
    sat = date(2025, 1, 18)
    saturday = site.index_timeline(sat)
    assert len(saturday) == 2 and saturday[0].scheduled_start == site.local_datetime(sat, time(8))
    assert site.override_on(short).note == "stock-take"
    # Other days keep the regular schedule.
    assert len(site.index_timeline(WED)) == BASE["schedule"]["indices"]


def test_schedule_changes_apply_from_their_effective_date():
    site = parse_site(
        _doc(
            schedule={
                "changes": [
                    {"effective": date(2025, 2, 3), "work_start": "07:00", "note": "early shift"},
                    {
                        "effective": date(2025, 3, 3),
                        "indices": 5,
                        "workdays": ["mon", "tue", "wed", "thu", "fri", "sat"],
                    },
                ]
            }
        )
    )
    assert site.index_timeline(WED)[0].scheduled_start == site.local_datetime(WED, time(8))
    feb = date(2025, 2, 5)
    assert site.index_timeline(feb)[0].scheduled_start == site.local_datetime(feb, time(7))
    assert len(site.index_timeline(feb)) == BASE["schedule"]["indices"]
    march_sat = date(2025, 3, 8)
    # The second change keeps the first one's 07:00 start and adds Saturday.
    assert len(site.index_timeline(march_sat)) == 5
    assert site.index_timeline(march_sat)[0].scheduled_start == site.local_datetime(march_sat, time(7))
    assert site.index_timeline(date(2025, 2, 8)) == []


def _timeline(wh) -> list[tuple]:
    frame = wh.query(
        "SELECT date, index_number, scheduled_start, scheduled_end, working_seconds "
        "FROM ref.index_timeline ORDER BY date, index_number"
    )
    return [tuple(r) for r in frame.iter_rows()]


def test_schedule_edit_keeps_past_timelines_and_rebuild_uses_schedule_in_force(warehouse_url, tmp_path):
    before = load_site(REPO_SITE)
    days = (WED, WED + timedelta(days=1))
    with connect(warehouse_url, before) as wh:
        wh.setup()
        wh.ensure_index_timeline(*days)
        stored = _timeline(wh)
    assert len(stored) == 2 * before.schedule.indices

    # Edit the site: new hours from the 16th on (a dated change) and different regular indices.
    edited_path = tmp_path / "edited.yaml"
    edited_path.write_text(
        yaml.safe_dump(
            _doc(
                schedule={"indices": 6, "changes": [{"effective": days[1], "work_start": "07:00"}]},
                workers=[{"worker_id": "W1", "name": "Ann", "zones": ["Z01"]}],
            )
        )
    )
    edited = load_site(edited_path)
    with connect(warehouse_url, edited) as wh:
        wh.setup()  # reloads the reference tables from the edited file
        assert _timeline(wh) == stored  # byte-identical: history is not rewritten
        assert wh.query("SELECT worker_id, name, zones FROM ref.workers").rows() == [("W1", "Ann", '["Z01"]')]
        # Rebuilding the days is asked for explicitly, and each gets the schedule in force on it.
        assert wh.rebuild_index_timeline(*days) == 12
        rebuilt = _timeline(wh)
    expected = [
        (b.date, b.index_number, b.scheduled_start, b.scheduled_end, b.working_seconds)
        for d in days
        for b in edited.index_timeline(d)
    ]
    assert [r[:2] + (r[4],) for r in rebuilt] == [e[:2] + (e[4],) for e in expected]
    assert [(r[2].timestamp(), r[3].timestamp()) for r in rebuilt] == [
        (e[2].timestamp(), e[3].timestamp()) for e in expected
    ]
    assert rebuilt[6][2].timestamp() == edited.local_datetime(days[1], time(7)).timestamp()
