"""Vision throughput: frames per second on one rendered 1280x720 segment, every variant in the same run.

    .venv/bin/python bench/vision.py                       # CPU, 20 s of video (100 frames at 5 fps)
    .venv/bin/python bench/vision.py --device 0 --half     # YOLO on the first GPU (if torch sees one)

Variants: decode only (the floor every variant pays), decode + motion pipeline (MOG2 presence and motion
models, blobs, BlobTracker, motion scores), decode + YOLO11n + ByteTrack at imgsz 640 and 320 (randomly
initialised from yolo11n.yaml: the same network and cost as the trained weights, without needing them).
Each is reported as a share of decode-only speed and as "x real time" for a camera processed at 5 fps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import time as clock
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.detectors import make_detector  # noqa: E402
from ingestion.detectors.foreground import ForegroundModel  # noqa: E402
from ingestion.simulate.render import render_video  # noqa: E402
from ingestion.site import load_site  # noqa: E402

PROCESS_FPS = 5.0


def decoded_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def measure(path: Path, work: Callable[[np.ndarray], None] | None, repeats: int) -> float:
    """Best-of-`repeats` frames per second of decoding the file and running `work` on every frame."""
    best = 0.0
    for _ in range(repeats):
        cap = cv2.VideoCapture(str(path))
        n = 0
        started = time.perf_counter()
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if work is not None:
                work(frame)
            n += 1
        best = max(best, n / (time.perf_counter() - started))
        cap.release()
    return best


def motion_work() -> Callable[[np.ndarray], None]:
    fg, det = ForegroundModel(PROCESS_FPS), make_detector("motion", fps=PROCESS_FPS)
    live = [np.empty((0, 4), np.float32)]

    def work(frame: np.ndarray) -> None:  # what VideoPipeline.run does per frame
        mask = fg.apply(frame, freeze=live[0])
        tracks = det.update(frame, mask)
        fg.motion_score(tracks.xywh, frame)
        live[0] = det.freeze_boxes(tracks)

    return work


def yolo_work(imgsz: int, device: str, half: bool) -> Callable[[np.ndarray], None]:
    fg = ForegroundModel(PROCESS_FPS)
    det = make_detector(
        "yolo", fps=PROCESS_FPS, weights="yolo11n.yaml", imgsz=imgsz, device=device, half=half
    )

    live = [np.empty((0, 4), np.float32)]

    def work(frame: np.ndarray) -> None:
        mask = fg.apply(frame, freeze=live[0])  # the background pass feeds motion_score whatever the detector
        tracks = det.update(frame, mask)
        fg.motion_score(tracks.xywh, frame)
        live[0] = det.freeze_boxes(tracks)

    det.update(np.zeros((720, 1280, 3), np.uint8), np.zeros((720, 1280), np.uint8))  # warm-up: model build
    det.reset()
    return work


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=int, default=20, help="seconds of 5 fps video to render (default 20)"
    )
    parser.add_argument("--device", default="cpu", help="YOLO device: cpu (default), 0, cuda:0")
    parser.add_argument("--half", action="store_true", help="YOLO half precision (GPU only)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant, best kept (default 2)")
    args = parser.parse_args()

    site = load_site()
    with tempfile.TemporaryDirectory(prefix="sightline-bench-vision-") as tmp:
        end_s = 8 * 3600 + args.seconds
        window = (clock(8), clock(end_s // 3600, end_s % 3600 // 60, end_s % 60))
        # render_video's window has minute resolution in the CLI but takes any time here.
        render_video(
            site, tmp, window=window, cameras=["CAM01"], fps=PROCESS_FPS, segment_seconds=args.seconds
        )
        path = next(Path(tmp, "CAM01").iterdir())
        n_frames = len(decoded_frames(path))
        print(
            f"segment: {path.name}, 1280x720, {n_frames} frames at {PROCESS_FPS:g} fps; "
            f"YOLO device {args.device}{' half' if args.half else ''}; best of {args.repeats}"
        )
        variants: list[tuple[str, Callable[[], Callable[[np.ndarray], None] | None]]] = [
            ("decode only (floor)", lambda: None),
            ("decode + motion pipeline", motion_work),
            ("decode + YOLO11n imgsz 640", lambda: yolo_work(640, args.device, args.half)),
            ("decode + YOLO11n imgsz 320", lambda: yolo_work(320, args.device, args.half)),
        ]
        rows = []
        for name, make in variants:
            fps = measure(path, make(), args.repeats)
            rows.append((name, fps))
            print(f"  measured {name}: {fps:.1f} fps", flush=True)
    floor = rows[0][1]
    print()
    print("| variant | frames/s | share of decode-only | x real time at 5 fps |")
    print("|---|---:|---:|---:|")
    for name, fps in rows:
        print(f"| {name} | {fps:.1f} | {fps / floor:.1%} | {fps / PROCESS_FPS:.1f}x |")


if __name__ == "__main__":
    main()
