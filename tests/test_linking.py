"""Visitors (issue 10 part 2): track fragments joined before sessionizing, on constructed fragments whose
truth is known by construction, through the SQLMesh stage on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_transforms import read

from ingestion.detection_logs import with_zones
from ingestion.linking import LinkParams, link_tracks, track_ends
from ingestion.schema import DETECTION_SCHEMA
from ingestion.site import Site
from ingestion.transform import build_marts
from ingestion.warehouse import connect

DAY = date(2025, 1, 15)
FPS = 5


def walk(
    site: Site,
    track: int,
    t0: float,
    t1: float,
    start: tuple[float, float],
    velocity: tuple[float, float],
    h: float = 120.0,
    camera: str = "CAM01",
) -> pl.DataFrame:
    """Samples of one track at FPS from t0 to t1 seconds after 09:00 local, the foot point moving from
    `start` (at t = 0, so fragments of one straight walk share `start`) at `velocity` px/s."""
    t = np.arange(round(t0 * FPS), round(t1 * FPS) + 1) / FPS
    base = datetime.combine(DAY, datetime.min.time().replace(hour=9), tzinfo=site.tz)
    fx = start[0] + velocity[0] * t
    fy = start[1] + velocity[1] * t
    n = t.size
    frame = (
        pl.DataFrame(
            {
                "ts": [base + timedelta(seconds=float(s)) for s in t],
                "camera_id": camera,
                "frame_idx": (t * FPS).round().astype(np.int64),
                "track_id": track,
                "class_id": 0,
                "confidence": 0.9,
                "x": fx - h / 6,
                "y": fy - h,
                "w": np.full(n, h / 3),
                "h": np.full(n, h),
                "zone_id": None,
                "motion_score": 0.5,
                "worker_id": None,
                "batch_id": None,
            }
        )
        .cast(dict(DETECTION_SCHEMA))
        .with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    )
    return with_zones(frame, site)


def visitors(frame: pl.DataFrame, params: LinkParams | None = None) -> dict[int, int]:
    links = link_tracks(track_ends(frame), params)
    return dict(links.select("track_id", "visitor_id").iter_rows())


def test_straight_walk_with_a_gap_is_one_visitor(site):
    # One person walking right at 60 px/s; the tracker loses them for 2 s and gives a new id.
    a = walk(site, 1, 0, 10, (100, 500), (60, 0))
    b = walk(site, 2, 12, 20, (100, 500), (60, 0))
    assert visitors(pl.concat([a, b])) == {1: 1, 2: 1}


def test_two_people_crossing_are_not_swapped(site):
    # A walks right, B walks left; both are lost at the crossing and come back with new ids 3 (A's
    # continuation, now right of the crossing) and 4 (B's, now left). Nearest-neighbour would swap them.
    a = walk(site, 1, 0, 10, (100, 500), (40, 0))
    b = walk(site, 2, 0, 10, (900, 510), (-40, 0))
    a2 = walk(site, 3, 13, 20, (100, 500), (40, 0))
    b2 = walk(site, 4, 13, 20, (900, 510), (-40, 0))
    assert visitors(pl.concat([a, b, a2, b2])) == {1: 1, 2: 2, 3: 1, 4: 2}


def test_a_fragment_far_away_or_of_another_size_or_too_late_is_not_linked(site):
    a = walk(site, 1, 0, 10, (100, 500), (0, 0))
    far = walk(site, 2, 11, 20, (700, 500), (0, 0))  # 600 px = 5 box heights away
    bigger = walk(site, 3, 11, 20, (110, 500), (0, 0), h=240)  # twice the height
    late = walk(site, 4, 17, 25, (100, 500), (0, 0))  # 7 s after A ended
    got = visitors(pl.concat([a, far, bigger, late]))
    assert got == {1: 1, 2: 2, 3: 3, 4: 4}
    # ...and the thresholds are what decides: relaxed, the late one continues A.
    assert visitors(pl.concat([a, late]), LinkParams(max_gap_seconds=8)) == {1: 1, 4: 1}


def test_chains_are_one_visitor_and_one_to_one(site):
    a = walk(site, 5, 0, 5, (100, 500), (50, 0))
    b = walk(site, 9, 6, 10, (100, 500), (50, 0))
    c = walk(site, 7, 11, 15, (100, 500), (50, 0))
    # Two candidates to continue c: the closer one wins, the other stays its own visitor.
    d_good = walk(site, 3, 16, 20, (100, 500), (50, 0))
    d_off = walk(site, 4, 16, 20, (100, 560), (50, 0))
    links = link_tracks(track_ends(pl.concat([a, b, c, d_good, d_off])))
    got = {
        r["track_id"]: (r["visitor_id"], r["previous_track_id"], r["track_index"])
        for r in links.iter_rows(named=True)
    }
    assert got == {5: (5, None, 0), 9: (5, 5, 1), 7: (5, 9, 2), 3: (5, 7, 3), 4: (4, None, 0)}


def test_a_person_who_stops_is_looked_for_where_they_stopped(site):
    # A stands at x=300, takes a step (40 px/s = 0.33 box heights/s for the last second) and stops; the
    # tracker loses them for 3 s and they reappear 6 px (0.05 box heights) from where last seen. Their last
    # second's velocity taken at face value puts them 1.1 box heights further on; shrunk by its standard
    # error (0.25 box heights / sqrt(0.7 s²) = 0.36 box heights/s) it puts them 0.5 away: linked.
    a = pl.concat(
        [walk(site, 1, 0, 9, (300, 500), (0, 0)), walk(site, 1, 9.2, 10, (300 - 40 * 9, 500), (40, 0))]
    )
    b = walk(site, 2, 13, 20, (346, 500), (0, 0))
    ends = track_ends(pl.concat([a, b])).sort("track_id")
    tail, head = ends.row(0, named=True), ends.row(1, named=True)
    at_face_value = tail["tail_x"] + tail["tail_vx"] * (head["head_t"] - tail["tail_t"])
    assert (at_face_value - head["head_x"]) / tail["tail_h"] > 0.7 + 0.1 * 3**0.5  # beyond the reach
    assert visitors(pl.concat([a, b])) == {1: 1, 2: 1}


def test_the_jitter_of_a_two_sample_track_is_not_a_velocity(site):
    # A false start: the tracker holds a standing person for two frames (0.2 s) whose boxes jitter 12 px
    # (60 px/s at face value, 1.5 box heights over the 3 s gap); the person reappears where they stand.
    a = walk(site, 1, 10, 10.2, (100, 500), (60, 0))
    b = walk(site, 2, 13.4, 20, (706, 500), (0, 0))
    assert visitors(pl.concat([a, b])) == {1: 1, 2: 1}


def test_a_walk_keeps_its_heading_over_a_long_gap(site):
    # Walking at 1 box height/s, lost for 4 s: the shrunk velocity (92% of it) lands 0.4 box heights short
    # of where they reappear, inside the reach at a 4 s gap (0.7 + 0.1 x 2 box heights).
    a = walk(site, 1, 0, 10, (100, 500), (120, 0))
    b = walk(site, 2, 14, 20, (100, 500), (120, 0))
    assert visitors(pl.concat([a, b])) == {1: 1, 2: 1}


def test_someone_taking_over_a_spot_is_linked_only_within_the_reach(site):
    # A stands still and leaves unseen; 3 s later someone appears nearby. The rule cannot tell a newcomer
    # from A having stepped aside: within the reach at a 3 s gap (0.7 + 0.1 x sqrt(3) = 0.87 box heights)
    # they continue A, beyond it they are someone else.
    a = walk(site, 1, 0, 10, (300, 500), (0, 0))
    far = walk(site, 2, 13, 20, (300 + 1.2 * 120, 500), (0, 0))
    near = walk(site, 3, 13, 20, (300 + 0.8 * 120, 500), (0, 0))
    assert visitors(pl.concat([a, far])) == {1: 1, 2: 2}
    assert visitors(pl.concat([a, near])) == {1: 1, 3: 1}
    # The reach is what decides: without the growth the near one is someone else too.
    assert visitors(pl.concat([a, near]), LinkParams(distance_growth=0)) == {1: 1, 3: 3}


def test_tracks_of_other_cameras_are_never_linked(site):
    a = walk(site, 1, 0, 10, (100, 500), (0, 0))
    b = walk(site, 2, 11, 20, (100, 500), (0, 0), camera="CAM02")
    assert visitors(pl.concat([a, b])) == {1: 1, 2: 2}


# ------------------------------------------------------------------ through the warehouse


def _scene(site: Site) -> pl.DataFrame:
    """Z01 (x 80..480, y 200..620 on CAM01): a worker stands at (300, 500) for 60 s, the tracker breaking
    the track twice (gaps 2 s and 4 s, new ids each time, the last fragment 2 px off); a second person
    walks through Z02 untouched."""
    return pl.concat(
        [
            walk(site, 11, 0, 20, (300, 500), (0, 0)),
            walk(site, 12, 22, 40, (300, 500), (0, 0)),
            walk(site, 13, 44, 60, (302, 500), (0, 0)),
            walk(site, 20, 0, 30, (600, 400), (8, 0)),
        ]
    )


def _land(url: str, site: Site, frame: pl.DataFrame, batch: str = "scene") -> None:
    with connect(url, site) as wh:
        wh.setup()
        wh.append_batch(batch, frame, source="test", camera_id="CAM01")


def test_sessions_are_visits_of_visitors(warehouse_url: str, site: Site):
    _land(warehouse_url, site, _scene(site))
    build_marts(warehouse_url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
    links = read(
        warehouse_url,
        "SELECT track_id, visitor_id, previous_track_id, track_index, "
        "link_gap_seconds FROM analytics.track_links ORDER BY track_id",
    )
    assert links.select("track_id", "visitor_id").rows() == [(11, 11), (12, 11), (13, 11), (20, 20)]
    assert links["link_gap_seconds"].to_list()[:3] == [None, pytest.approx(2.0), pytest.approx(4.0)]
    sessions = read(
        warehouse_url,
        "SELECT zone_id, track_id, visitor_id, track_count, duration_seconds "
        "FROM analytics.sessions ORDER BY zone_id",
    )
    # One visit of 60 s in Z01 (the gaps are under session_gap_seconds, so they count as dwell).
    assert sessions.rows() == [("Z01", 11, 11, 3, 60.0), ("Z02", 20, 20, 1, 30.0)]


def test_linking_off_gives_one_session_per_fragment(duckdb_url: str, site: Site):
    off = replace(site, thresholds=replace(site.thresholds, link_max_gap_seconds=0))
    _land(duckdb_url, off, _scene(off))
    build_marts(duckdb_url, DAY, DAY + timedelta(days=1), site=off, report_audits=False)
    sessions = read(
        duckdb_url,
        "SELECT zone_id, track_id, duration_seconds FROM analytics.sessions ORDER BY entry_time, zone_id",
    )
    assert sessions.rows() == [("Z01", 11, 20.0), ("Z02", 20, 30.0), ("Z01", 12, 18.0), ("Z01", 13, 16.0)]


def test_track_links_are_equal_on_both_backends(pg_url: str, duckdb_url: str, site: Site):
    # A busier scene: several people with broken tracks, crossing and standing.
    rng = np.random.default_rng(7)
    parts, track = [], 1
    for _person in range(12):
        start = (float(rng.uniform(100, 1100)), float(rng.uniform(250, 650)))
        v = (float(rng.uniform(-30, 30)), float(rng.uniform(-10, 10)))
        t = float(rng.uniform(0, 60))
        for _ in range(int(rng.integers(1, 4))):
            length = float(rng.uniform(3, 20))
            parts.append(walk(site, track, t, t + length, start, v))
            track += 1
            t += length + float(rng.uniform(0.5, 5))
    frame = pl.concat(parts)
    from conftest import owner_setup

    owner_setup(pg_url)
    got = {}
    for url in (duckdb_url, pg_url):
        _land(url, site, frame)
        build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
        got[url] = {
            "links": read(
                url,
                "SELECT camera_id, track_id, visitor_id, previous_track_id, track_index, "
                "first_seen, last_seen, link_gap_seconds, link_cost, local_date "
                "FROM analytics.track_links ORDER BY camera_id, track_id",
            ),
            "sessions": read(
                url,
                "SELECT session_id, zone_id, track_id, visitor_id, track_count, "
                "entry_time, exit_time FROM analytics.sessions ORDER BY session_id",
            ),
        }
    duck, pg = got[duckdb_url], got[pg_url]
    assert duck["links"].height == track - 1 and (duck["links"]["previous_track_id"].is_not_null().sum() > 0)
    assert_frame_equal(duck["links"], pg["links"])
    assert_frame_equal(duck["sessions"], pg["sessions"])
    # The warehouse's SQL summary links exactly like the polars one.
    expected = link_tracks(track_ends(frame)).sort("camera_id", "track_id")
    assert duck["links"].select("track_id", "visitor_id").equals(expected.select("track_id", "visitor_id"))


def test_restating_a_day_without_tracks_clears_its_links(duckdb_url: str, site: Site):
    _land(duckdb_url, site, _scene(site))
    build_marts(duckdb_url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
    assert read(duckdb_url, "SELECT count(*) AS n FROM analytics.track_links")["n"][0] == 4
    with connect(duckdb_url, site) as wh:
        wh.query("DELETE FROM raw.detections")
    build_marts(duckdb_url, DAY, DAY + timedelta(days=1), restate=True, site=site, report_audits=False)
    assert read(duckdb_url, "SELECT count(*) AS n FROM analytics.track_links")["n"][0] == 0
    assert read(duckdb_url, "SELECT count(*) AS n FROM analytics.sessions")["n"][0] == 0


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("link_max_size_ratio", 0.5, "use e.g. 1.5"),
        ("link_max_gap_seconds", -1, "at least 0"),
        ("link_max_distance", "far", "number"),
    ],
)
def test_link_thresholds_are_validated(tmp_path, key, value, fix):
    import yaml
    from conftest import REPO_ROOT

    from ingestion.site import SiteConfigError, load_site

    doc = yaml.safe_load((REPO_ROOT / "site.yaml").read_text())
    doc["thresholds"][key] = value
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    assert err.value.key == f"thresholds.{key}"
    assert str(err.value).startswith(f"{path}: thresholds.{key}: ") and fix in str(err.value)


def test_a_tracker_reset_at_a_segment_boundary_is_joined(site):
    # Each recorded segment gets a fresh tracker: at 60 s every person present reappears under a new id
    # one frame later. Three people (one standing, two walking) -> three visitors, not six.
    before = [
        walk(site, 1, 0, 60, (200, 400), (0, 0)),
        walk(site, 2, 30, 60, (300, 600), (10, -2)),
        walk(site, 3, 40, 60, (1000, 500), (-12, 0), h=90),
    ]
    after = [
        walk(site, 101, 60.2, 90, (200, 400), (0, 0)),
        walk(site, 102, 60.2, 90, (300, 600), (10, -2)),
        walk(site, 103, 60.2, 90, (1000, 500), (-12, 0), h=90),
    ]
    assert visitors(pl.concat(before + after)) == {1: 1, 2: 2, 3: 3, 101: 1, 102: 2, 103: 3}
