"""Detectors turn frames into tracked detections, all in one shape, so the video pipeline does not care
which one runs.

- `YoloDetector`: Ultralytics YOLO with ByteTrack (`model.track(persist=True)`), for cameras with weights.
- `MotionDetector`: OpenCV background subtraction blobs tracked with `BlobTracker` (IoU + centre distance,
  one-to-one), for sites without weights (and for the simulator's rendered video).

Both receive the frame *and* the pipeline's foreground mask: the background subtraction runs once per frame
(`ingestion.detectors.foreground.ForegroundModel`, here so that detectors need nothing from
`ingestion.video`) and feeds both the motion detector and every box's motion score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np

VISION_EXTRA = "pip install -e '.[vision]'"


class VisionExtraMissing(ImportError):
    """A detector needs Ultralytics / PyTorch, which only the `vision` extra installs."""


def require_ultralytics(detector: str) -> None:
    """Import Ultralytics offline, or raise VisionExtraMissing naming the extra to install.

    Set before its first import: Ultralytics then never probes the network (YOLO_OFFLINE), never pip-installs
    a missing requirement at runtime (YOLO_AUTOINSTALL), and never syncs settings or reports errors (sync off,
    for this process only: the user's settings file is not rewritten)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    try:
        import ultralytics  # noqa: F401
        from ultralytics.utils import SETTINGS
    except ImportError as exc:
        raise VisionExtraMissing(
            f"the {detector} detector needs the vision extra (Ultralytics, PyTorch), which is not installed "
            f"({exc}); install it with: {VISION_EXTRA}"
        ) from exc
    dict.__setitem__(SETTINGS, "sync", False)  # in memory: JSONDict.__setitem__ would write the file


@dataclass(frozen=True)
class Tracks:
    """Tracked detections of one frame, one row per object; boxes are top-left x, y, width, height in the
    pixels of the frame that was passed in (not the detector's input size)."""

    track_id: np.ndarray  # int64 (N,)
    class_id: np.ndarray  # int16 (N,)
    conf: np.ndarray  # float32 (N,)
    xywh: np.ndarray  # float32 (N, 4)

    def __len__(self) -> int:
        return len(self.track_id)

    @staticmethod
    def empty() -> Tracks:
        return Tracks(
            np.empty(0, np.int64),
            np.empty(0, np.int16),
            np.empty(0, np.float32),
            np.empty((0, 4), np.float32),
        )

    @staticmethod
    def from_xyxy(xyxy: np.ndarray, track_id: np.ndarray, class_id: np.ndarray, conf: np.ndarray) -> Tracks:
        xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return Tracks(
            np.asarray(track_id, dtype=np.int64),
            np.asarray(class_id, dtype=np.int16),
            np.asarray(conf, dtype=np.float32),
            xywh,
        )


class Detector(Protocol):
    """Anything that turns a BGR frame (plus the shared foreground mask) into tracked detections.

    `update` is called once per processed frame, in order; `reset` forgets all tracks (a new source);
    `freeze_boxes(tracks)` picks, from what the last `update` returned, the boxes inside which the
    background model stops learning on the next frame (people who stop moving stay foreground)."""

    name: str

    def update(self, frame: np.ndarray, foreground: np.ndarray) -> Tracks: ...

    def freeze_boxes(self, tracks: Tracks) -> np.ndarray: ...

    def reset(self) -> None: ...


def make_detector(kind: str, *, fps: float = 5.0, weights: str | None = None, **options) -> Detector:
    """Build a detector by name: "motion" or "yolo" (YOLO needs `weights`: a .pt file or a model .yaml)."""
    if kind == "yolo":
        require_ultralytics(kind)  # YOLO and its ByteTrack; the motion detector needs OpenCV and SciPy only
    if kind == "motion":
        from ingestion.detectors.motion import MotionDetector

        return MotionDetector(fps=fps, **options)
    if kind == "yolo":
        from ingestion.detectors.yolo import YoloDetector

        if not weights:
            raise ValueError(
                "the yolo detector needs weights: pass --weights PATH/TO/yolo11n.pt "
                "(or use --detector motion where no weights exist)"
            )
        return YoloDetector(weights, fps=fps, **options)
    raise ValueError(f"unknown detector {kind!r}: use 'motion' or 'yolo'")


__all__ = ["VISION_EXTRA", "Detector", "Tracks", "VisionExtraMissing", "make_detector", "require_ultralytics"]
