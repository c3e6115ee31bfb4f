"""The one background-subtraction pass per frame, and the motion score of boxes from it.

`motion_score` of a box = the share of the pixels in its core (`box_core`: the central 60% of width and
height) that the background model marks as foreground, i.e. pixels that changed recently. The background
adapts within a few seconds, so a person standing still scores low (idle) and a person working with their
hands scores high (active), whatever the detector.
"""

from __future__ import annotations

import cv2
import numpy as np


class ForegroundModel:
    """OpenCV MOG2 with its history given in seconds of video (shadows off: a shadow is not motion).

    `var_threshold` (squared distance in learnt standard deviations) is well above OpenCV's 16: at 16,
    compression noise around moving details (mp4 blocks) counts as motion and inflates idle scores."""

    def __init__(
        self,
        fps: float,
        *,
        history_seconds: float = 20.0,
        var_threshold: float = 100.0,
        max_width: int | None = 640,
    ):
        """`max_width`: frames wider than this are downscaled first (the mask comes back at that size):
        MOG2's cost is per pixel, and people stay tens of pixels tall at 640 px."""
        self.fps = fps
        self.max_width = max_width
        self.history_seconds = history_seconds
        self.var_threshold = var_threshold
        self.reset()

    def reset(self) -> None:
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=max(2, round(self.history_seconds * self.fps)),
            varThreshold=self.var_threshold,
            detectShadows=False,
        )

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Foreground mask of this frame: uint8, 255 = moving, 0 = background; at most max_width wide."""
        h, w = frame.shape[:2]
        if self.max_width and w > self.max_width:
            size = (self.max_width, max(1, round(h * self.max_width / w)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        return self._mog.apply(frame)


def mask_scale(mask: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Factors (x, y, x, y) that take frame-pixel boxes to mask pixels."""
    (mh, mw), (fh, fw) = mask.shape[:2], frame.shape[:2]
    return np.array([mw / fw, mh / fh, mw / fw, mh / fh], dtype=np.float32)


def box_core(xywh: np.ndarray, share: float = 0.6) -> np.ndarray:
    """The central `share` of each box's width and height, where the motion score is measured: a box's
    rim holds floor and outline pixels that flicker with every jitter of the box, not the person's work."""
    xywh = np.asarray(xywh, dtype=np.float32)
    margin = xywh[:, 2:] * (1 - share) / 2
    return np.concatenate([xywh[:, :2] + margin, xywh[:, 2:] * share], axis=1)


def box_foreground_share(foreground: np.ndarray, xywh: np.ndarray) -> np.ndarray:
    """Share (0..1) of foreground pixels inside each box (top-left x, y, w, h in the mask's pixels).

    One integral image per frame, then four lookups per box: O(pixels + boxes), no per-box pixel loops.
    """
    n = len(xywh)
    if n == 0:
        return np.empty(0, np.float32)
    h, w = foreground.shape[:2]
    integral = cv2.integral((foreground > 0).astype(np.uint8), sdepth=cv2.CV_32S)  # (h+1, w+1)
    xywh = np.asarray(xywh, dtype=np.float64)
    x0 = np.clip(np.floor(xywh[:, 0]), 0, w).astype(np.int64)
    y0 = np.clip(np.floor(xywh[:, 1]), 0, h).astype(np.int64)
    x1 = np.clip(np.ceil(xywh[:, 0] + xywh[:, 2]), 0, w).astype(np.int64)
    y1 = np.clip(np.ceil(xywh[:, 1] + xywh[:, 3]), 0, h).astype(np.int64)
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = (x1 - x0) * (y1 - y0)
    return np.where(area > 0, inside / np.maximum(area, 1), 0.0).astype(np.float32)
