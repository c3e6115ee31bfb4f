"""Ultralytics YOLO detector with ByteTrack tracking (`model.track(persist=True)`).

Weights are a local file the user provides: this code never downloads. On a machine with internet,
`YOLO("yolo11n.pt")` makes Ultralytics fetch the file once; copy it next to the site and pass its path.
A model `.yaml` (e.g. `yolo11n.yaml`) builds a randomly initialised network: useful for tests and speed
benchmarks, useless for detection.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from ingestion.detectors import Tracks
from ingestion.detectors.tracker import bytetrack_config


class YoloDetector:
    name = "yolo"

    def __init__(
        self,
        weights: str | Path,
        *,
        fps: float = 5.0,
        imgsz: int = 640,
        conf: float = 0.25,
        classes: Sequence[int] | None = (0,),
        device: str | None = None,
        half: bool = False,
        lost_seconds: float = 10.0,
        **tracker_options,
    ):
        weights = str(weights)
        if not weights.endswith((".yaml", ".yml")) and not Path(weights).is_file():
            raise FileNotFoundError(
                f"YOLO weights not found: {weights}. Copy the weights file here (on a machine with internet, "
                f"`YOLO('yolo11n.pt')` downloads it) and pass its path with --weights, "
                "or use --detector motion"
            )
        from ultralytics import YOLO

        self.model = YOLO(weights)
        self.weights = weights
        self.imgsz = imgsz
        self.conf = conf
        self.classes = list(classes) if classes is not None else None
        self.device = device
        self.half = half
        # model.track reads its tracker settings from a YAML file: write ours (buffer in seconds of video).
        cfg = bytetrack_config(fps, lost_seconds=lost_seconds, **tracker_options)
        self._tracker_dir = tempfile.TemporaryDirectory(prefix="sightline-bytetrack-")
        self.tracker_yaml = str(Path(self._tracker_dir.name) / "bytetrack.yaml")
        Path(self.tracker_yaml).write_text(yaml.safe_dump(cfg))

    def reset(self, empty_scene: bool = False) -> None:
        # `empty_scene` changes nothing here: YOLO finds people by their look, not against a background.
        # Ultralytics keeps trackers on its predictor; dropping them makes the next track() start afresh.
        predictor = getattr(self.model, "predictor", None)
        if predictor is not None and hasattr(predictor, "trackers"):
            del predictor.trackers

    def _options(self) -> dict:
        options = {
            "imgsz": self.imgsz,
            "conf": self.conf,
            "classes": self.classes,
            "device": self.device,
            "verbose": False,
        }
        if self.half:  # only when asked: Ultralytics warns about the argument otherwise
            options["half"] = True
        return options

    def predict_raw(self, frame: np.ndarray):
        """Untracked detections (Ultralytics Boxes), with the same settings as `update`."""
        return self.model.predict(frame, **self._options())[0].boxes

    def freeze_boxes(self, tracks: Tracks) -> np.ndarray:
        """Every tracked box: YOLO finds people by their look, so its boxes are people, moving or not."""
        return tracks.xywh

    def update(self, frame: np.ndarray, foreground: np.ndarray) -> Tracks:
        result = self.model.track(frame, persist=True, tracker=self.tracker_yaml, **self._options())[0]
        boxes = result.boxes
        if boxes is None or boxes.id is None or len(boxes) == 0:
            return Tracks.empty()
        # Ultralytics maps boxes back to the original frame's pixels (undoing the letterbox to imgsz).
        return Tracks.from_xyxy(
            boxes.xyxy.cpu().numpy(),
            boxes.id.cpu().numpy(),
            boxes.cls.cpu().numpy(),
            boxes.conf.cpu().numpy(),
        )
