"""Accuracy of the vision path on rendered video: the simulator renders its scenes (it knows every true
box and session), `sightline ingest segments` detects and tracks them, `build_marts` builds sessions, and
both are compared with the truth.

    .venv/bin/python bench/video_accuracy.py                      # motion detector, 4 cameras 09:00-09:10
    .venv/bin/python bench/video_accuracy.py --window 08:00-08:02 --segment-seconds 60
    .venv/bin/python bench/video_accuracy.py --yolo-seconds 60    # + YOLO plumbing on CAM01 (random weights)

Per detector:
- MOTA and IDF1 (py-motmetrics, IoU >= 0.5) of the landed boxes against the rendered ground-truth boxes,
  frame by frame, all cameras pooled; ID switches and fragmentations.
- Sessions (analytics.sessions vs the simulator's sessions, same camera and zone): true and detected
  counts and their ratio (fragmentation), the share of true sessions overlapped by a detected one
  ("matched", what the e2e test asserts), the share matched one-to-one with time IoU >= 0.5 (fragments do
  not count), total dwell error, total idle error.

YOLO runs from `yolo11n.yaml` (random weights: it detects nothing real): its row proves the plumbing
(render -> YOLO + ByteTrack -> landing -> sessions -> metrics), not accuracy.

`measure()` is importable (bench/accuracy.py may call it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.site import Site, load_site  # noqa: E402

DAY = date(2025, 1, 15)


def _motmetrics():
    # motmetrics 1.4 calls np.asfarray, removed in numpy 2.
    if not hasattr(np, "asfarray"):
        np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)
    import motmetrics

    return motmetrics


@dataclass(frozen=True)
class VideoAccuracy:
    detector: str
    frames: int
    mota: float
    idf1: float
    id_switches: int
    fragmentations: int
    misses: int  # true boxes not matched (IoU < 0.5)
    false_positives: int  # detected boxes not matched
    objects: int  # true boxes
    true_sessions: int
    detected_sessions: int
    matched_share: float  # true sessions overlapped by a detected one (same camera, zone)
    one_to_one_share: float  # true sessions matched one-to-one with time IoU >= 0.5
    dwell_error: float  # signed, relative
    idle_error: float  # signed, relative
    seconds: float

    @property
    def session_ratio(self) -> float:
        return self.detected_sessions / self.true_sessions if self.true_sessions else float("nan")


def frame_key(ts: pl.Expr, fps: float) -> pl.Expr:
    """Frame number of a capture time at `fps` (truth and detections are stamped on the same grid)."""
    return (ts.dt.epoch("us").cast(pl.Float64) * fps / 1e6).round().cast(pl.Int64)


def mot_scores(truth: pl.DataFrame, detected: pl.DataFrame, fps: float) -> dict[str, float]:
    """MOTA, IDF1, ID switches, fragmentations of detected boxes vs true boxes (camera pixels; columns
    camera_id, ts, track_id, x, y, w, h), IoU >= 0.5, over every frame that has a true or detected box."""
    mm = _motmetrics()
    accs, names = [], []
    for camera_id in sorted(set(truth["camera_id"]) | set(detected["camera_id"])):
        t = truth.filter(pl.col("camera_id") == camera_id).with_columns(f=frame_key(pl.col("ts"), fps))
        d = detected.filter(pl.col("camera_id") == camera_id).with_columns(f=frame_key(pl.col("ts"), fps))
        t_parts = t.sort("f").partition_by("f", as_dict=True, maintain_order=True)
        d_parts = d.sort("f").partition_by("f", as_dict=True, maintain_order=True)
        empty = t.clear()
        acc = mm.MOTAccumulator(auto_id=True)
        for f in sorted(set(t_parts) | set(d_parts)):  # motmetrics is frame by frame by design
            tf, df = t_parts.get(f, empty), d_parts.get(f, empty)
            tb = tf.select("x", "y", "w", "h").to_numpy()
            db = df.select("x", "y", "w", "h").to_numpy()
            acc.update(
                tf["track_id"].to_list(),
                df["track_id"].to_list(),
                mm.distances.iou_matrix(tb, db, max_iou=0.5),
            )
        accs.append(acc)
        names.append(camera_id)
    mh = mm.metrics.create()
    summary = mh.compute_many(
        accs,
        names=names,
        metrics=[
            "mota",
            "idf1",
            "num_switches",
            "num_fragmentations",
            "num_frames",
            "num_misses",
            "num_false_positives",
            "num_objects",
        ],
        generate_overall=True,
    )
    row = summary.loc["OVERALL"]
    return {
        "mota": float(row["mota"]),
        "idf1": float(row["idf1"]),
        "id_switches": int(row["num_switches"]),
        "fragmentations": int(row["num_fragmentations"]),
        "frames": int(row["num_frames"]),
        "misses": int(row["num_misses"]),
        "false_positives": int(row["num_false_positives"]),
        "objects": int(row["num_objects"]),
    }


def session_scores(truth: pl.DataFrame, detected: pl.DataFrame) -> dict[str, float]:
    """Session counts, overlap and one-to-one match shares, signed dwell and idle errors."""
    from scipy.optimize import linear_sum_assignment

    from ingestion.video.accuracy import compare_sessions

    overlap = compare_sessions(truth, detected)
    cols = ["camera_id", "zone_id", "entry_time", "exit_time"]
    t = truth.select(cols).with_row_index("ti")
    d = detected.select(cols).with_row_index("di")
    pairs = t.join(d, on=["camera_id", "zone_id"], suffix="_d").with_columns(
        inter=(
            pl.min_horizontal("exit_time", "exit_time_d") - pl.max_horizontal("entry_time", "entry_time_d")
        )
        .dt.total_microseconds()
        .clip(lower_bound=0),
        union=(
            pl.max_horizontal("exit_time", "exit_time_d") - pl.min_horizontal("entry_time", "entry_time_d")
        ).dt.total_microseconds(),
    )
    iou = np.zeros((truth.height, max(detected.height, 1)))
    if pairs.height:
        iou[pairs["ti"].to_numpy(), pairs["di"].to_numpy()] = pairs["inter"].to_numpy() / np.maximum(
            pairs["union"].to_numpy(), 1
        )
    rows, cols_ = linear_sum_assignment(-iou)
    one_to_one = int((iou[rows, cols_] >= 0.5).sum())

    def rel(a: float, b: float) -> float:
        return (a - b) / b if b else float("nan")

    return {
        "true_sessions": truth.height,
        "detected_sessions": detected.height,
        "matched_share": overlap.matched_share,
        "one_to_one_share": one_to_one / truth.height if truth.height else float("nan"),
        "dwell_error": rel(float(detected["duration_seconds"].sum()), float(truth["duration_seconds"].sum())),
        "idle_error": rel(
            float(detected["total_idle_seconds"].sum()), float(truth["total_idle_seconds"].sum())
        ),
    }


def ingest_and_build(rendered: Path, url: str, site: Site, detector_args: list[str]) -> None:
    """`sightline ingest segments` + the marts of the rendered day, as a user runs them (with `site`'s
    file: e.g. one whose cameras have a `background_image`)."""
    from ingestion.transform import build_marts
    from orchestration.cli import main

    rc = main(["ingest", "segments", str(rendered), "--warehouse", url, "--site", site.path, *detector_args])
    if rc != 0:
        raise RuntimeError(f"sightline ingest segments {rendered} failed (exit {rc})")
    build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)


def measure(
    site: Site,
    rendered: Path,
    workdir: Path,
    *,
    detector_args: list[str],
    label: str,
    fps: float = 5.0,
) -> VideoAccuracy:
    """Ingest `rendered` (a render_video output folder) with `detector_args` into a fresh DuckDB under
    `workdir`, build sessions, and score boxes and sessions against the rendered ground truth."""
    from ingestion.warehouse import connect

    url = f"duckdb:///{workdir / (label.replace(' ', '_') + '.duckdb')}"
    started = time.perf_counter()
    ingest_and_build(rendered, url, site, detector_args)
    seconds = time.perf_counter() - started
    with connect(url, site) as wh:
        boxes = wh.query("SELECT camera_id, ts, track_id, x, y, w, h FROM raw.detections")
        sessions = wh.query(
            "SELECT camera_id, zone_id, entry_time, exit_time, duration_seconds, total_idle_seconds "
            "FROM analytics.sessions"
        )
    truth_boxes = pl.read_parquet(rendered / "ground_truth" / "detections.parquet")
    truth_sessions = pl.read_parquet(rendered / "ground_truth" / "sessions.parquet")
    mot = mot_scores(truth_boxes, boxes, fps)
    return VideoAccuracy(detector=label, seconds=seconds, **mot, **session_scores(truth_sessions, sessions))


def table(results: list[VideoAccuracy]) -> str:
    lines = [
        "| detector | frames | MOTA | IDF1 | ID sw. | true sessions | detected | detected / true | "
        "overlap-matched | 1:1 matched | dwell error | idle error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.detector} | {r.frames} | {r.mota:.1%} | {r.idf1:.1%} | {r.id_switches} | "
            f"{r.true_sessions} | {r.detected_sessions} | {r.session_ratio:.2f}x | {r.matched_share:.0%} | "
            f"{r.one_to_one_share:.0%} | {r.dwell_error:+.1%} | {r.idle_error:+.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    from ingestion.simulate.render import parse_window, render_video, site_file_with_empty_scenes

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window", default="09:00-09:10", help="site-local window (default 09:00-09:10)")
    parser.add_argument("--cameras", default=None, help="comma-separated camera ids (default all)")
    parser.add_argument("--scale", type=float, default=0.5, help="render scale (default 0.5: 640x360)")
    parser.add_argument("--segment-seconds", type=int, default=600, help="segment length (default 600)")
    parser.add_argument(
        "--yolo-seconds",
        type=int,
        default=0,
        help="also run YOLO11n (random weights, imgsz 320) on this many seconds of CAM01 (default 0: skip)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON lines too")
    parser.add_argument("--keep", default=None, help="keep the video and warehouses in this folder")
    parser.add_argument(
        "--empty-scene",
        action="store_true",
        help="give each camera its rendered empty floor as site.yaml background_image (a cold start then "
        "sees the people already standing there)",
    )
    args = parser.parse_args()

    site = load_site()
    window = parse_window(args.window)
    cameras = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
    results = []
    with tempfile.TemporaryDirectory(prefix="sightline-bench-video-accuracy-") as tmp:
        tmp = Path(args.keep or tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        rendered = tmp / "video"
        render = render_video(
            site,
            rendered,
            day=DAY,
            window=window,
            cameras=cameras,
            scale=args.scale,
            segment_seconds=args.segment_seconds,
        )
        motion_site = site
        if args.empty_scene:
            motion_site = load_site(site_file_with_empty_scenes(site, render.empty_scenes, tmp / "site.yaml"))
        results.append(
            measure(motion_site, rendered, tmp, detector_args=["--detector", "motion"], label="motion")
        )
        print(table(results[-1:]), flush=True)
        if args.yolo_seconds:
            from datetime import datetime

            start = datetime.combine(DAY, window[0])
            end = (start + timedelta(seconds=args.yolo_seconds)).time()
            yolo_dir = tmp / "video-yolo"
            render_video(
                site,
                yolo_dir,
                day=DAY,
                window=(window[0], end),
                cameras=["CAM01"],
                scale=args.scale,
                segment_seconds=args.yolo_seconds,
            )
            results.append(
                measure(
                    site,
                    yolo_dir,
                    tmp,
                    detector_args=[
                        "--detector",
                        "yolo",
                        "--weights",
                        "yolo11n.yaml",
                        "--imgsz",
                        "320",
                        "--device",
                        "cpu",
                    ],
                    label="yolo11n random weights (plumbing)",
                )
            )
    print()
    print(f"rendered 2025-01-15 {args.window}, scale {args.scale}, {args.segment_seconds} s segments")
    print(table(results))
    if args.json:
        import json

        for r in results:
            print(json.dumps(asdict(r)))


if __name__ == "__main__":
    main()
