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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ingestion.zones import bottom_center

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


@dataclass(frozen=True, eq=False)
class Tracks:
    """Tracked detections, one row per object, in the manner of supervision's `Detections`: boxes are top-left
    x, y, width, height in the pixels of the frame that was passed in (not the detector's input size).

    `data` holds further per-row arrays (the video pipeline's ts, frame_idx, motion_score); indexing
    (`tracks[mask]`, `tracks[[0, 2]]`, `tracks[1:]`) and `Tracks.merge` carry them with the rows. Shapes are
    checked on construction: every array has one row per track."""

    track_id: np.ndarray  # int64 (N,)
    class_id: np.ndarray  # int16 (N,)
    conf: np.ndarray  # float32 (N,)
    xywh: np.ndarray  # float32 (N, 4); float64 once scaled to a camera's pixels
    data: dict[str, np.ndarray] = field(default_factory=dict)  # each (N, ...)

    def __post_init__(self) -> None:
        for name in ("track_id", "class_id", "conf", "xywh"):
            object.__setattr__(self, name, np.asarray(getattr(self, name)))
        object.__setattr__(self, "data", {key: np.asarray(v) for key, v in self.data.items()})
        if self.track_id.ndim != 1:
            raise ValueError(f"Tracks.track_id must have shape (N,), got {self.track_id.shape}")
        n = len(self.track_id)
        for name, shape in (("class_id", (n,)), ("conf", (n,)), ("xywh", (n, 4))):
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(f"Tracks.{name} has shape {got}, expected {shape} (track_id has {n} rows)")
        for key, values in self.data.items():
            if values.shape[:1] != (n,):
                raise ValueError(
                    f"Tracks.data[{key!r}] has shape {values.shape}, expected ({n}, ...) "
                    f"(track_id has {n} rows)"
                )

    def __len__(self) -> int:
        return len(self.track_id)

    def __getitem__(self, index: np.ndarray | Sequence[int] | slice | int) -> Tracks:
        """The rows picked by a boolean mask (one entry per row), integer positions or a slice; one
        integer gives Tracks of that one row."""
        if not isinstance(index, slice):
            index = np.atleast_1d(np.asarray(index))
            if index.dtype == bool and index.shape != (len(self),):
                raise IndexError(f"a boolean mask over {len(self)} tracks has shape {index.shape}")
            if index.size == 0:
                index = index.astype(np.intp)  # [] reads as float64, which numpy refuses as an index
        return Tracks(
            self.track_id[index],
            self.class_id[index],
            self.conf[index],
            self.xywh[index],
            {key: values[index] for key, values in self.data.items()},
        )

    @property
    def anchor(self) -> np.ndarray:
        """(N, 2) bottom-centre of each box (`bottom_center`): where the person stands, the point zones are
        assigned by."""
        return bottom_center(self.xywh)

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

    @staticmethod
    def merge(parts: Sequence[Tracks]) -> Tracks:
        """The rows of every part, in order, as one Tracks (empty for no parts). The parts must carry the
        same `data` keys: a column missing from some rows is a mistake, not something to fill in."""
        if not parts:
            return Tracks.empty()
        keys = list(parts[0].data)
        for i, part in enumerate(parts):
            if sorted(part.data) != sorted(keys):
                raise ValueError(
                    f"Tracks.merge: part {i} carries data {sorted(part.data)}, part 0 carries {sorted(keys)}"
                )
        return Tracks(
            np.concatenate([p.track_id for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.conf for p in parts]),
            np.concatenate([p.xywh for p in parts]),
            {key: np.concatenate([p.data[key] for p in parts]) for key in keys},
        )


class Detector(Protocol):
    """Anything that turns a BGR frame (plus the shared foreground mask) into tracked detections.

    `update` is called once per processed frame, in order; `reset` forgets all tracks (a new source;
    `empty_scene`: the foreground model starts from an image of the empty scene, so whatever is foreground
    at first is really there);
    `freeze_boxes(tracks)` picks, from what the last `update` returned, the boxes inside which the
    background model stops learning on the next frame (people who stop moving stay foreground)."""

    name: str

    def update(self, frame: np.ndarray, foreground: np.ndarray) -> Tracks: ...

    def freeze_boxes(self, tracks: Tracks) -> np.ndarray: ...

    def reset(self, empty_scene: bool = False) -> None: ...


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


__all__ = [
    "VISION_EXTRA",
    "Detector",
    "Tracks",
    "VisionExtraMissing",
    "make_detector",
    "require_ultralytics",
]
