"""Session accuracy on imperfect detections (bench/README.md, "Session accuracy"; issue 10).

One run prints one table: session count error and total dwell error, per zone and summed ('all'), of
sessions built by our pipeline (`ingest detections` + `transform` on a throwaway DuckDB) against the
sessions of the ground truth built the same way:

1. MOT17-09 (../shared/data/mot17/MOT17-09: a real tracker's output, Lif_T, against its annotated ground
   truth; 1920x1080, 30 fps, 525 frames). Zones: three vertical bands (x thirds) of the lower 70% of the
   frame (y >= 324 px), where the people walk; the upper 30% is background. Rows:
   - `naive timer`: per (track, zone) first-seen to last-seen, no gap rule, no minimum length;
   - `before linking`: the pipeline with link_max_gap_seconds 0 (every track its own visitor);
   - `after linking`: the pipeline with the site's linking thresholds;
   - `oracle`: the tracker's boxes relabelled with the ground-truth identity each matches (IoU >= 0.5,
     one-to-one per frame): the best any linking can do with these detections.
   The fragmentation statistics of the tracker (quality.accuracy.fragmentation_stats) are printed too:
   they are the MOT17_FRAGMENTATION constants of the simulator's `realistic` preset.
2. The simulator, `realistic` noise (those statistics), 4 cameras, a few hours, against the simulator's
   own ground truth sessions: before and after linking. The links are printed too, checked against the
   simulator's worker ids (`link_quality`: wrong links, chain breaks, visitors carrying a person).
3. Rendered video: `video_rows()` (the vision pipeline's rows; see there).

Usage: .venv/bin/python bench/accuracy.py [--hours 3] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.detection_logs import ingest_detection_log, parse_mot  # noqa: E402
from ingestion.simulate import simulate  # noqa: E402
from ingestion.site import Site, load_site  # noqa: E402
from ingestion.transform import build_marts  # noqa: E402
from ingestion.warehouse import connect  # noqa: E402
from quality.accuracy import compare, fragmentation_stats, naive_totals, oracle_relabel, zone_totals  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MOT17 = (REPO / "../shared/data/mot17/MOT17-09").resolve()
MOT_START = datetime.fromisoformat("2025-01-15T09:00:00+07:00")  # a Wednesday morning on the demo site
MOT_FPS = 30.0
MOT_SIZE = (1920, 1080)
SIM_DAY = date(2025, 1, 15)


@dataclass(frozen=True)
class Row:
    source: str  # MOT17-09, simulator realistic, video ...
    method: str  # naive timer, before linking, after linking, oracle, ...
    errors: pl.DataFrame  # quality.accuracy.compare: zone_id, count_error_pct, dwell_error_pct, ...


# ------------------------------------------------------------------ pipeline helpers


def band_zones(camera: str, width: int, height: int) -> list[dict]:
    """Three vertical bands of the lower 70% of the frame."""
    top = round(0.3 * height)
    cuts = [0, width // 3, 2 * width // 3, width]
    return [
        {
            "id": f"{camera}_Z{i + 1}",
            "camera": camera,
            "name": f"{camera} band {i + 1}",
            "type": "work_area",
            "polygon": [[cuts[i], top], [cuts[i + 1], top], [cuts[i + 1], height], [cuts[i], height]],
        }
        for i in range(3)
    ]


def write_site(path: Path, cameras: list[dict], zones: list[dict], **thresholds: float) -> Site:
    """A site file like site.yaml (its schedule and thresholds) with these cameras and zones."""
    doc = yaml.safe_load((REPO / "site.yaml").read_text())
    doc["cameras"], doc["zones"] = cameras, zones
    doc["thresholds"] = {**doc.get("thresholds", {}), **thresholds}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_site(path)


def build(site: Site, url: str, days: tuple[date, date]) -> pl.DataFrame:
    """Transform the landed rows and return the sessions (camera_id, zone_id, duration_seconds, ...)."""
    build_marts(url, days[0], days[1], site=site, report_audits=False)
    with connect(url, site) as wh:
        return wh.query(
            "SELECT camera_id, zone_id, track_id, visitor_id, duration_seconds FROM analytics.sessions"
        )


def per_camera(sessions: pl.DataFrame, camera: str, rename_from: str | None = None) -> pl.DataFrame:
    """zone_totals of one camera's sessions, zone ids renamed to a common prefix so cameras compare."""
    s = sessions.filter(pl.col("camera_id") == camera)
    if rename_from:
        s = s.with_columns(pl.col("zone_id").str.replace(f"^{rename_from}_", "Z_"))
    return zone_totals(s)


# ------------------------------------------------------------------ 1. MOT17-09


def mot17_rows(tmp: Path, **link: float) -> tuple[list[Row], dict[str, float]]:
    """The MOT17-09 rows; `link` overrides the site's link_* thresholds for the `after linking` run."""
    if not (MOT17 / "gt.txt").is_file():
        print(f"MOT17 data not found at {MOT17}: skipped", file=sys.stderr)
        return [], {}
    w, h = MOT_SIZE
    cams = ["GT", "TRK", "ORC"]
    cameras = [
        {"id": c, "name": c, "source": f"mot://{c}", "width": w, "height": h, "fps": MOT_FPS} for c in cams
    ]
    zones = [z for c in cams for z in band_zones(c, w, h)]
    day = MOT_START.date()
    days = (day, day + timedelta(days=1))
    # Both under one camera id: boxes are matched frame by frame within a camera.
    gt = parse_mot(
        (MOT17 / "gt.txt").read_bytes(), camera_id="TRK", start_time=MOT_START, fps=MOT_FPS
    ).detections
    trk = parse_mot(
        (MOT17 / "tracker_LifT.txt").read_bytes(), camera_id="TRK", start_time=MOT_START, fps=MOT_FPS
    ).detections
    stats = fragmentation_stats(trk, gt, MOT_FPS).as_dict()
    # The oracle: the tracker's boxes under the identity they match, written as a MOT file like the others.
    oracle = oracle_relabel(trk, gt).sort("frame_idx", "track_id")
    oracle_file = tmp / "oracle.txt"
    oracle_file.write_text(
        "".join(
            f"{f},{t},{x + 1},{y + 1},{bw},{bh},-1,-1,-1,-1\n"
            for f, t, x, y, bw, bh in oracle.select("frame_idx", "track_id", "x", "y", "w", "h").iter_rows()
        )
    )
    sessions = {}
    for mode, extra in (("off", {"link_max_gap_seconds": 0.0}), ("on", link)):
        site = write_site(tmp / f"mot_{mode}.yaml", cameras, zones, **extra)
        url = f"duckdb:///{tmp / f'mot_{mode}.duckdb'}"
        with connect(url, site) as wh:
            wh.setup()
            for cam, path in (
                ("GT", MOT17 / "gt.txt"),
                ("TRK", MOT17 / "tracker_LifT.txt"),
                ("ORC", oracle_file),
            ):
                ingest_detection_log(wh, path, "mot", camera_id=cam, start_time=MOT_START, fps=MOT_FPS)
            landed = wh.query("SELECT camera_id, track_id, ts, zone_id FROM raw.detections")
        sessions[mode] = build(site, url, days)
    truth = per_camera(sessions["off"], "GT", "GT")  # ground-truth ids are identities: nothing to link
    naive = naive_totals(landed.filter(pl.col("camera_id") == "TRK")).with_columns(
        pl.col("zone_id").str.replace("^TRK_", "Z_")
    )
    rows = [
        Row("MOT17-09", "naive timer", compare(naive, truth)),
        Row("MOT17-09", "before linking", compare(per_camera(sessions["off"], "TRK", "TRK"), truth)),
        Row("MOT17-09", "after linking", compare(per_camera(sessions["on"], "TRK", "TRK"), truth)),
        Row("MOT17-09", "oracle", compare(per_camera(sessions["off"], "ORC", "ORC"), truth)),
    ]
    return rows, stats


# ------------------------------------------------------------------ 2. simulator


def link_quality(detections: pl.DataFrame, links: pl.DataFrame, max_gap_seconds: float) -> dict[str, int]:
    """How the links of analytics.track_links (camera_id, track_id, visitor_id, previous_track_id) join the
    simulator's people (each track is the worker_id most of its boxes carry; false positives carry none):
    links made, links joining two different people, consecutive fragments of one person at most
    `max_gap_seconds` apart left in different visitors (breaks), and visitors carrying a person."""
    key = ["camera_id", "track_id"]
    tracks = (
        detections.group_by(key)
        .agg(
            pl.col("worker_id").drop_nulls().mode().first().alias("person"),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
        )
        .join(links.select(*key, "visitor_id", "previous_track_id"), on=key, how="left")
        .with_columns(pl.col("visitor_id").fill_null(pl.col("track_id")))
    )
    joined = tracks.filter(pl.col("previous_track_id").is_not_null()).join(
        tracks.select(
            "camera_id", pl.col("track_id").alias("previous_track_id"), pl.col("person").alias("p0")
        ),
        on=["camera_id", "previous_track_id"],
    )
    people = tracks.filter(pl.col("person").is_not_null()).sort("camera_id", "person", "first")
    after = people.with_columns(
        (pl.col("first").shift(-1).over("camera_id", "person") - pl.col("last"))
        .dt.total_microseconds()
        .alias("gap"),
        pl.col("visitor_id").shift(-1).over("camera_id", "person").alias("next_visitor"),
    ).filter(pl.col("gap").is_between(1, max_gap_seconds * 1e6))
    return {
        "links": joined.height,
        "wrong links": joined.filter(pl.col("person") != pl.col("p0")).height,
        "breaks": after.filter(pl.col("visitor_id") != pl.col("next_visitor")).height,
        "visitors with a person": people.select("camera_id", "visitor_id").unique().height,
        "people (workers)": people.select("camera_id", "person").unique().height,
    }


def simulator_rows(tmp: Path, hours: float) -> list[Row]:
    base = load_site(REPO / "site.yaml")
    window = (time(8), (datetime.combine(SIM_DAY, time(8)) + timedelta(hours=hours)).time())
    sim = simulate(base, start=SIM_DAY, window=window, fps=5.0, noise="realistic", seed=3)
    truth = zone_totals(sim.sessions)
    rows = []
    for mode, site in (
        ("before linking", replace(base, thresholds=replace(base.thresholds, link_max_gap_seconds=0))),
        ("after linking", base),
    ):
        url = f"duckdb:///{tmp / f'sim_{mode.split()[0]}.duckdb'}"
        with connect(url, site) as wh:
            wh.setup()
            wh.append_batch("sim", sim.detections, source="simulator")
        sessions = build(site, url, (SIM_DAY, SIM_DAY + timedelta(days=1)))
        rows.append(Row("simulator realistic", mode, compare(zone_totals(sessions), truth)))
        if mode == "after linking":
            with connect(url, site) as wh:
                links = wh.query(
                    "SELECT camera_id, track_id, visitor_id, previous_track_id FROM analytics.track_links"
                )
            quality = link_quality(sim.detections, links, site.thresholds.link_max_gap_seconds)
            print("Simulator links (analytics.track_links against the simulator's worker ids):")
            for k, v in quality.items():
                print(f"  {k:26s} {v:10d}")
    return rows


# ------------------------------------------------------------------ 3. rendered video (hook)


def video_rows(tmp: Path) -> list[Row]:
    """Rendered video through the vision pipeline (motion detector; YOLO with random weights for plumbing):
    session count and dwell against the rendered ground truth, as Rows like the sections above (MOTA and
    IDF1 print separately). Filled by the vision work of issue 10 (part 3 / part 5 video rows)."""
    return []


SECTIONS: list[Callable[[Path], list[Row]]] = [video_rows]


# ------------------------------------------------------------------ table


def print_table(rows: list[Row]) -> None:
    print(
        f"{'source':22s} {'method':16s} {'zone':6s} {'true':>6s} {'got':>6s} {'count err':>10s} "
        f"{'true dwell s':>13s} {'dwell s':>10s} {'dwell err':>10s}"
    )
    for row in rows:
        for r in row.errors.iter_rows(named=True):
            print(
                f"{row.source:22s} {row.method:16s} {r['zone_id']:6s} {r['true_sessions']:6.0f} "
                f"{r['sessions']:6.0f} {r['count_error_pct']:+9.1f}% {r['true_dwell_seconds']:13.1f} "
                f"{r['dwell_seconds']:10.1f} {r['dwell_error_pct']:+9.1f}%"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0, help="simulated hours (4 cameras)")
    parser.add_argument("--quick", action="store_true", help="1 simulated hour")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows, stats = mot17_rows(tmp)
        if stats:
            print("MOT17-09 tracker fragmentation (quality.accuracy.fragmentation_stats):")
            for k, v in stats.items():
                print(f"  {k:26s} {v:10.4f}")
        rows += simulator_rows(tmp, 1.0 if args.quick else args.hours)
        for section in SECTIONS:
            rows += section(tmp)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
