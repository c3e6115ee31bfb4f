"""`sightline ingest video PATH` / `sightline ingest segments DIR`: detections from video, landed once.

Frames are sampled to --fps, run through the detector (YOLO with ByteTrack, or the OpenCV motion detector
where no weights exist) and landed per minute of video with deterministic batch ids, so an interrupted run
can simply be repeated: committed batches are skipped, nothing is duplicated.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from orchestration.cli.options import add_site_option, add_warehouse_option


def register(subparsers) -> None:
    video = subparsers.add_parser(
        "video",
        help="land detections from one video file or a live stream URL",
        description="Detect, track and land the people in one video file (capture times = --start-time + the "
        "frame's position) or a live RTSP/HTTP/device URL (capture times = wall clock).",
    )
    video.add_argument("path", help="video file, or rtsp://... / http://... / a device index such as 0")
    video.add_argument("--camera", required=True, help="camera id from the site config (e.g. CAM01)")
    video.add_argument(
        "--start-time",
        type=_aware_datetime,
        help="capture time of the first frame, ISO 8601 (no offset = site-local time); "
        "default: from the file name (2025-01-15T08-00-00.mp4) or its .json sidecar",
    )
    video.add_argument(
        "--duration",
        type=float,
        default=None,
        help="live streams: stop after this many seconds (default: run until interrupted)",
    )
    _common(video)
    video.set_defaults(func=run_video)

    segments = subparsers.add_parser(
        "segments",
        help="land detections from a folder of recorded segments (DIR/CAM01/<start>.mp4)",
        description="Ingest every segment under DIR/<camera id>/, named by its site-local start time "
        '(2025-01-15T08-00-00.mp4) or with a .json sidecar {"start_time": ...}. A failing segment '
        "is recorded (dead letter, health decode_errors) and the others still land; the command "
        "exits non-zero naming the failed files.",
    )
    segments.add_argument("dir", help="folder with one sub-folder per camera")
    segments.add_argument("--cameras", default=None, help="comma-separated camera ids (default: all found)")
    _common(segments)
    segments.set_defaults(func=run_segments)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detector",
        choices=["motion", "yolo"],
        default="motion",
        help="motion: OpenCV background subtraction + ByteTrack (no weights needed); "
        "yolo: Ultralytics YOLO + ByteTrack (needs --weights)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="YOLO weights file (e.g. yolo11n.pt; nothing is downloaded here: on a machine with "
        "internet, Ultralytics fetches yolo11n.pt on first use - copy it over)",
    )
    p.add_argument("--imgsz", type=int, default=640, help="YOLO input size (default 640)")
    p.add_argument("--conf", type=float, default=0.25, help="YOLO confidence threshold (default 0.25)")
    p.add_argument(
        "--device", default=None, help="YOLO device: cpu, 0, cuda:0, mps (default: Ultralytics' choice)"
    )
    p.add_argument("--half", action="store_true", help="YOLO half precision (GPU)")
    p.add_argument("--fps", type=float, default=5.0, help="frames processed per second of video (default 5)")
    p.add_argument(
        "--batch-seconds",
        type=int,
        default=60,
        help="seconds of video per landed batch, a multiple of 10 (default 60)",
    )
    add_warehouse_option(p)
    add_site_option(p)


def _aware_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ISO 8601 (e.g. 2025-01-15T08:00:00+07:00)"
        ) from exc


def _detector_options(args: argparse.Namespace) -> dict:
    if args.detector == "yolo":
        return {
            "weights": args.weights,
            "imgsz": args.imgsz,
            "conf": args.conf,
            "device": args.device,
            "half": args.half,
        }
    return {}


class _Progress:
    """tqdm bar over frames with processing fps and detections in the postfix."""

    def __init__(self, desc: str, total: int | None):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="frame", disable=None, dynamic_ncols=True)
        self.detections = 0

    def on_frame(self, report, n: int) -> None:
        self.detections += n
        self.bar.update(1)
        if report.frames_processed % 25 == 0:
            rate = self.bar.format_dict.get("rate") or 0.0
            self.bar.set_postfix(fps=f"{rate:.1f}", detections=self.detections, refresh=False)

    def close(self) -> None:
        self.bar.set_postfix(detections=self.detections)
        self.bar.close()


def _expected_frames(path, fps: float) -> int | None:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        native, count = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    if native <= 0 or count <= 0:
        return None
    return int(count / native * min(fps, native)) + 1


def _summary(report) -> str:
    text = (
        f"{report.source}: {report.frames_processed} frames processed, {report.landed} detections landed "
        f"in {report.batches_landed} batch(es), {report.batches_skipped} batch(es) already landed (skipped), "
        f"{report.rejected} rejected, {report.health_rows} health rows"
    )
    if report.decode_errors:
        text += f", {report.decode_errors} decode errors"
    return text


def run_video(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ingestion.detectors import make_detector
    from ingestion.site import load_site
    from ingestion.video import LiveStreamSource, VideoFileSource, VideoPipeline
    from ingestion.video.segments import SegmentError, segment_start_time
    from ingestion.warehouse import connect

    site = load_site(args.site)
    site.camera(args.camera)  # unknown camera: a clear error before any work
    live = args.path.isdigit() or "://" in args.path
    if live:
        source = LiveStreamSource(args.path, target_fps=args.fps, duration_s=args.duration)
        total = int(args.duration * args.fps) if args.duration else None
    else:
        path = Path(args.path)
        start = args.start_time
        if start is None:
            try:
                start = segment_start_time(path, site)
            except SegmentError as exc:
                raise SegmentError(f"{exc}, or pass --start-time") from exc
        elif start.tzinfo is None:
            start = start.replace(tzinfo=site.tz)
        source = VideoFileSource(path, start, target_fps=args.fps)
        total = _expected_frames(path, args.fps) if path.is_file() else None
    detector = make_detector(args.detector, fps=args.fps, **_detector_options(args))
    progress = _Progress(args.camera, total)
    try:
        with connect(args.warehouse, site) as wh:
            wh.require_setup()
            wh.load_reference()
            pipeline = VideoPipeline(
                wh,
                site,
                args.camera,
                detector,
                fps=args.fps,
                batch_seconds=args.batch_seconds,
                source_name="live" if live else "video",
                on_frame=progress.on_frame,
            )
            report = pipeline.run(source)
    finally:
        progress.close()
    print(_summary(report))
    return 0


def run_segments(args: argparse.Namespace) -> int:
    from ingestion.detectors import make_detector
    from ingestion.site import load_site
    from ingestion.video import VideoFileSource, VideoPipeline, VideoSourceError, discover_segments
    from ingestion.warehouse import connect

    site = load_site(args.site)
    cameras = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
    segments = discover_segments(args.dir, site, cameras)
    if not segments:
        print(
            f"{args.dir}: no video segments found (expected {args.dir}/CAM01/2025-01-15T08-00-00.mp4 and "
            "the like)",
            file=sys.stderr,
        )
        return 1
    detector = make_detector(args.detector, fps=args.fps, **_detector_options(args))
    failed = []
    total = sum((_expected_frames(s.path, args.fps) or 0) for s in segments) or None
    progress = _Progress(f"{len(segments)} segments", total)
    try:
        with connect(args.warehouse, site) as wh:
            wh.require_setup()
            wh.load_reference()
            pipeline = None
            for seg in segments:  # sorted by camera and start time
                if pipeline is None or pipeline.camera.id != seg.camera_id:
                    # One pipeline per camera: a segment that starts where the previous one ended continues
                    # its background model and tracks (VideoPipeline.continues).
                    pipeline = VideoPipeline(
                        wh,
                        site,
                        seg.camera_id,
                        detector,
                        fps=args.fps,
                        batch_seconds=args.batch_seconds,
                        on_frame=progress.on_frame,
                    )
                try:
                    report = pipeline.run(VideoFileSource(seg.path, seg.start_time, target_fps=args.fps))
                except VideoSourceError as exc:
                    failed.append(str(exc))
                    progress.bar.write(f"FAILED {exc}")
                    continue
                progress.bar.write(_summary(report))
    finally:
        progress.close()
    if failed:
        print(
            f"{len(failed)} of {len(segments)} segment(s) failed (their decoded frames were landed, the "
            "failure recorded in raw.rejected_detections):",
            file=sys.stderr,
        )
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{len(segments)} segment(s) ingested from {args.dir}")
    return 0
