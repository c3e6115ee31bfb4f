"""Ultralytics ByteTrack configuration shared by both detectors, so their tracks behave the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml


def bytetrack_config(fps: float, *, lost_seconds: float = 10.0, **overrides: Any) -> dict[str, Any]:
    """Ultralytics' bytetrack.yaml defaults, with the lost-track buffer given in seconds of video (the
    tracker counts processed frames, so 30 frames would be 6 s at 5 fps but 1 s at 30 fps)."""
    from ultralytics.utils.checks import check_yaml

    cfg = yaml.safe_load(Path(check_yaml("bytetrack.yaml")).read_text())
    cfg["track_buffer"] = max(1, round(lost_seconds * fps))
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown ByteTrack option(s) {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    return cfg


class BoxBatch:
    """The minimal Results-like object `BYTETracker.update` reads: conf, cls, xywh (centre) and boolean
    indexing, backed by numpy arrays."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray):
        self.xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, dtype=np.float32)
        self.cls = np.asarray(cls, dtype=np.float32)

    @property
    def xywh(self) -> np.ndarray:
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> BoxBatch:
        return BoxBatch(self.xyxy[index], self.conf[index], self.cls[index])
