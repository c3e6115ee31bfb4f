"""`sightline ingest detections FILE`: land a detection log (MOT Challenge text, JSON lines, Parquet)."""

from __future__ import annotations

import argparse
from datetime import datetime

from orchestration.cli.options import add_warehouse_option


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "detections",
        help="land a detection log (MOT Challenge text, JSON lines or Parquet)",
        description="Parse a detection log, assign zones from the site config and land it exactly once: "
        "batch ids come from the file's content hash, so ingesting the same file again is a no-op. "
        "Malformed lines go to raw.rejected_detections with their line number. motion_score is "
        "taken from the file when it has that field (JSON lines, Parquet), else 0: a log carries "
        "no pixels to measure motion from.",
    )
    p.add_argument("file", help="the log file")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["mot", "jsonl", "parquet"],
        required=True,
        help="mot: frame,id,left,top,width,height,conf,... (MOT Challenge results or gt.txt); "
        "jsonl/parquet: the columns of raw.detections (ts with a UTC offset required)",
    )
    p.add_argument("--camera", required=True, help="camera id from the site config (e.g. CAM01)")
    p.add_argument(
        "--start-time",
        type=_aware_datetime,
        help="time of frame 1, ISO-8601 with offset (e.g. 2025-01-15T08:00:00+07:00); required for mot",
    )
    p.add_argument("--fps", type=float, help="frames per second of the source; required for mot")
    p.add_argument(
        "--mot-variant",
        choices=["auto", "results", "gt"],
        default="auto",
        help="MOT flavour: tracker results (conf in field 7) or MOT16/17 gt.txt (default: detect)",
    )
    p.add_argument("--batch-rows", type=int, default=100_000, help="rows per landed batch (default 100000)")
    add_warehouse_option(p)
    p.set_defaults(func=run)


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ISO-8601 (e.g. 2025-01-15T08:00:00+07:00)"
        ) from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add one, e.g. +07:00 or Z")
    return value


def run(args: argparse.Namespace) -> int:
    import sys

    from ingestion.detection_logs import ingest_detection_log
    from ingestion.warehouse import connect

    with connect(args.warehouse) as wh:
        wh.require_setup()
        wh.load_reference()
        s = ingest_detection_log(
            wh,
            args.file,
            args.fmt,
            camera_id=args.camera,
            start_time=args.start_time,
            fps=args.fps,
            batch_rows=args.batch_rows,
            mot_variant=args.mot_variant,
            progress=sys.stderr.isatty(),
        )
    print(
        f"{s.path}: {s.rows_parsed} rows parsed in {s.batches} batch(es), {s.batches_skipped} already landed "
        f"(skipped); landed {s.landed} rows, rejected {s.rejected} to raw.rejected_detections "
        f"({s.malformed_lines} malformed lines)"
        + (f", ignored {s.ignored} non-pedestrian gt rows" if s.ignored else "")
        + (f", {s.unscored} rows without a calibrated score (confidence NULL)" if s.unscored else "")
    )
    return 0
