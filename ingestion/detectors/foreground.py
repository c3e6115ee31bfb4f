"""The background subtraction of each frame, and the motion score of boxes from it.

Two OpenCV MOG2 models run on every frame:

- presence (`ForegroundModel.apply` returns its mask; detectors read it): shadow detection on and shadow
  pixels dropped (a shadow would widen or merge blobs); the background is frozen inside the boxes of the
  live tracks (`freeze=`), so a person who stops moving stays foreground until they leave, and the floor
  they uncover is not a ghost (the model never learnt them).
- motion (`ForegroundModel.motion_score`): the ordinary adaptive model (shadow detection off, as the
  idle threshold was calibrated; a box's core rarely holds a shadow). `motion_score` of a box = the
  share of the pixels in its core (`box_core`: the central 60% of width and height) that it marks as
  foreground, i.e. pixels that changed recently. It adapts within a few seconds, so a person standing
  still scores ~0 (idle) and a person working with their hands scores high (active), whatever the detector.
"""

from __future__ import annotations

import cv2
import numpy as np

SHADOW = 127  # MOG2's mask value for shadow pixels (255 = foreground)
# History of the presence model when it starts from an image of the empty scene: it need not adapt fast (no
# first frame full of people to unlearn), and slowly it learns no part of a person its frozen boxes miss,
# which would be a ghost once they leave. Cold-started CAM01 09:00-09:10 (bench/README.md): 20 s gives
# 1.50x the true sessions, 60 s 1.42x, 300 s 1.08x, 900 s 0.92x; 300 s adapts to lighting 3x faster.
EMPTY_SCENE_HISTORY_SECONDS = 300.0


class ForegroundModel:
    """OpenCV MOG2 presence and motion models with their history given in seconds of video.

    `var_threshold` (squared distance in learnt standard deviations) is well above OpenCV's 16: at 16,
    compression noise around moving details (mp4 blocks) counts as motion and inflates idle scores."""

    def __init__(
        self,
        fps: float,
        *,
        history_seconds: float = 20.0,
        var_threshold: float = 100.0,
        max_width: int | None = 640,
        freeze_margin: float = 0.15,
    ):
        """`max_width`: frames wider than this are downscaled first (the masks come back at that size):
        MOG2's cost is per pixel, and people stay tens of pixels tall at 640 px. `freeze_margin`: share of
        a frozen box's width and height added on each side (a still person still sways a little)."""
        self.fps = fps
        self.max_width = max_width
        self.history_seconds = history_seconds
        self.var_threshold = var_threshold
        self.freeze_margin = freeze_margin
        self.reset()

    def _mog2(self, shadows: bool, history_seconds: float | None = None) -> cv2.BackgroundSubtractorMOG2:
        return cv2.createBackgroundSubtractorMOG2(
            history=max(2, round((history_seconds or self.history_seconds) * self.fps)),
            varThreshold=self.var_threshold,
            detectShadows=shadows,
        )

    def reset(self, empty_scene: np.ndarray | None = None) -> None:
        """Forget the learnt backgrounds (a new source). `empty_scene`: a BGR image of the scene without
        people (site.yaml `background_image`), from which the presence model starts instead of learning
        the first frames as background: people already standing there when the video starts are
        foreground from the first frame (without it they are learnt into the background and only what
        moves of them is seen). The motion model still learns from the video: motion is recent change."""
        presence_history = EMPTY_SCENE_HISTORY_SECONDS if empty_scene is not None else None
        self._presence = self._mog2(shadows=True, history_seconds=presence_history)
        self._motion_model = self._mog2(shadows=False)
        self._empty_scene = empty_scene  # taught to the presence model on the first frame (its size)
        self._presence_rate = -1.0  # MOG2's own: 1 / min(2 x frames seen, history)
        self.motion: np.ndarray | None = None  # the motion model's mask of the last frame

    def apply(self, frame: np.ndarray, freeze: np.ndarray | None = None) -> np.ndarray:
        """Presence mask of this frame (uint8, 255 = foreground, 0 = background or shadow; at most
        max_width wide). `freeze`: boxes (top-left x, y, w, h in the frame's pixels) of the live tracks,
        inside which the presence background does not learn this frame. Also updates `self.motion`."""
        h, w = frame.shape[:2]
        if self.max_width and w > self.max_width:
            size = (self.max_width, max(1, round(h * self.max_width / w)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        if self._empty_scene is not None:
            self._learn_empty_scene(frame.shape[:2])
        self.motion = self._motion_model.apply(frame)
        frozen = freeze is not None and len(freeze) > 0
        # MOG2 has one learning rate per frame, not per pixel: with boxes to freeze, judge the frame
        # without learning, then learn from a copy whose frozen boxes show the model's own background
        # (which it thus keeps).
        raw = self._presence.apply(frame, learningRate=0 if frozen else self._presence_rate)
        mask = cv2.threshold(raw, SHADOW, 255, cv2.THRESH_BINARY)[1]  # shadows (127) -> 0
        shadow_y, shadow_x = np.nonzero(raw == SHADOW)
        background = self._presence.getBackgroundImage() if frozen or len(shadow_y) else None
        if len(shadow_y):
            # A shadow darkens the floor in every channel. MOG2's shadow test scales with varThreshold,
            # high here, and then also calls brighter or differently coloured pixels "shadow" (whole
            # textured figures, in tests): those stay foreground.
            brighter = (frame[shadow_y, shadow_x] > background[shadow_y, shadow_x]).any(axis=1)
            mask[shadow_y[brighter], shadow_x[brighter]] = 255
        if frozen:
            sx, sy = frame.shape[1] / w, frame.shape[0] / h
            scaled = np.asarray(freeze, dtype=np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])
            inside = boxes_mask(_grow(scaled, self.freeze_margin), frame.shape[:2])
            learn = frame.copy()
            np.copyto(learn, background, where=inside[..., None])
            self._presence.apply(learn, learningRate=self._presence_rate)
        return mask

    def _learn_empty_scene(self, shape: tuple[int, int]) -> None:
        """Start the presence model from the empty scene: one showing at learning rate 1 makes it the
        background, and from then on the model learns at 1 / history. (MOG2's own rate for a new model,
        1 / (2 x frames seen), would learn the first real frames, people included, within a few frames.)"""
        scene, self._empty_scene = self._empty_scene, None
        h, w = shape
        sh, sw = scene.shape[:2]
        if abs(sw / sh - w / h) > 0.02 * (w / h):
            raise ValueError(
                f"the empty-scene image is {sw}x{sh} but the video's frames are {w}x{h} (another aspect "
                "ratio): take background_image from this camera's own video"
            )
        if (sw, sh) != (w, h):
            scene = cv2.resize(scene, (w, h), interpolation=cv2.INTER_AREA)
        self._presence.apply(scene, learningRate=1.0)
        self._presence_rate = 1.0 / self._presence.getHistory()

    def motion_score(self, xywh: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Motion score (0..1) of each box (frame pixels) in the last applied frame."""
        if self.motion is None:
            raise RuntimeError("motion_score before apply: call apply(frame) first")
        return box_foreground_share(self.motion, box_core(xywh) * mask_scale(self.motion, frame))


def _grow(xywh: np.ndarray, margin: float) -> np.ndarray:
    pad = xywh[:, 2:] * margin
    return np.concatenate([xywh[:, :2] - pad, xywh[:, 2:] + 2 * pad], axis=1)


def boxes_mask(xywh: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (h, w) mask of the union of boxes (top-left x, y, w, h in pixels), without a loop over
    boxes: +1/-1 at each box's corners, then a 2-D cumulative sum."""
    h, w = shape
    xywh = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    x0 = np.clip(np.floor(xywh[:, 0]), 0, w).astype(np.int64)
    y0 = np.clip(np.floor(xywh[:, 1]), 0, h).astype(np.int64)
    x1 = np.clip(np.ceil(xywh[:, 0] + xywh[:, 2]), 0, w).astype(np.int64)
    y1 = np.clip(np.ceil(xywh[:, 1] + xywh[:, 3]), 0, h).astype(np.int64)
    diff = np.zeros((h + 1, w + 1), np.int32)
    np.add.at(diff, (y0, x0), 1)
    np.add.at(diff, (y0, x1), -1)
    np.add.at(diff, (y1, x0), -1)
    np.add.at(diff, (y1, x1), 1)
    return diff.cumsum(axis=0).cumsum(axis=1)[:h, :w] > 0


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
