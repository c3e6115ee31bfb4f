"""Motion detector: blobs of the shared presence mask, cleaned by morphology, boxed from contours and
tracked with `BlobTracker` (IoU + centre distance, one-to-one).

It sees what differs from the learnt background. The pipeline freezes that background inside the live
tracks' boxes (`ForegroundModel.apply(freeze=...)`), so a person who stops moving stays a blob, and stays
tracked, until they leave.

Each whole blob (not a part of a cut one) also gets its dominant colours (`looks`: a coarse colour
histogram of its foreground pixels, minus a floor that removes the thinly spread colours of moving
details), which the tracker uses to re-identify a person whose track it lost (`BlobTracker`).
Vectorised: one colour-bin image per frame and one `np.bincount` over all boxes' pixels (`box_pixels`).
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from ingestion.detectors import Tracks
from ingestion.detectors.blob_tracker import BlobTracker, iou_xyxy
from ingestion.detectors.foreground import box_foreground_share, mask_scale

# After a start from an empty-scene image, tracks begun within this many seconds are people who were there
# already (a cold start among people standing at their stations).
EMPTY_SCENE_TRUST_SECONDS = 2.0
COLOUR_LEVELS = 8  # levels per BGR channel of the colour histograms (8^3 = 512 bins)


def colour_bins(image: np.ndarray, levels: int = COLOUR_LEVELS) -> np.ndarray:
    """Colour bin (0 .. levels^3 - 1) of every pixel of a BGR image: each channel cut into `levels` equal
    steps. Coarse on purpose: a shirt's colour stays in its bin through compression noise and shading."""
    q = (image.astype(np.uint16) * levels) >> 8
    return ((q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]).astype(np.int32)


def box_pixels(xyxy: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pixel of each box (xyxy, clipped to an image of `shape`), without a loop over boxes: (box
    index, row, column) of each, concatenated box after box."""
    h, w = shape
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    x0 = np.clip(np.floor(xyxy[:, 0]), 0, w).astype(np.int64)
    y0 = np.clip(np.floor(xyxy[:, 1]), 0, h).astype(np.int64)
    bw = np.clip(np.ceil(xyxy[:, 2]), 0, w).astype(np.int64) - x0
    bh = np.clip(np.ceil(xyxy[:, 3]), 0, h).astype(np.int64) - y0
    bw, bh = np.maximum(bw, 0), np.maximum(bh, 0)
    area = bw * bh
    box = np.repeat(np.arange(len(xyxy)), area)
    k = np.arange(int(area.sum())) - np.repeat(np.cumsum(area) - area, area)
    return box, y0[box] + k // np.maximum(bw[box], 1), x0[box] + k % np.maximum(bw[box], 1)


def colour_histograms(bins: np.ndarray, mask: np.ndarray, xyxy: np.ndarray, n_bins: int) -> np.ndarray:
    """Normalised colour histogram (len(xyxy), n_bins) of the foreground pixels (mask > 0) inside each
    box (xyxy, the mask's pixels; `bins` from `colour_bins` of the frame at the mask's size). A box with
    no foreground gets an all-zero row."""
    box, row, col = box_pixels(xyxy, mask.shape[:2])
    fg = mask[row, col] > 0
    counts = np.bincount(box[fg] * n_bins + bins[row[fg], col[fg]], minlength=len(xyxy) * n_bins)
    counts = counts.reshape(len(xyxy), n_bins).astype(np.float32)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def colour_peaks(histograms: np.ndarray, floor: float = 0.04, min_mass: float = 0.02) -> np.ndarray:
    """The dominant colours of each histogram row: the share above `floor` of each bin, normalised to sum
    1; an all-zero row where less than `min_mass` stands above the floor (no colour dominates: a box of
    scattered moving details, or too few pixels). Clothes are a few dominant colours; what moves over
    them (hands, tools, noise) spreads thinly over many bins, which the floor removes."""
    peaks = np.maximum(histograms - floor, 0.0)
    mass = peaks.sum(axis=1, keepdims=True)
    return np.where(mass >= min_mass, peaks / np.maximum(mass, 1e-9), 0.0).astype(np.float32)


class MotionDetector:
    name = "motion"

    def __init__(
        self,
        *,
        fps: float = 5.0,
        min_area_share: float = 0.0015,
        open_px: int = 3,
        close_px: int = 15,
        class_id: int = 0,
        split_merged: bool = True,
        split_by_tracks: bool = True,
        split_at: float = 1.3,
        lost_seconds: float = 15.0,
        appearance: bool = True,
        **tracker_options,
    ):
        """`min_area_share`: smallest blob kept, as a share of the frame area (drops speckle and leaves);
        `open_px` / `close_px`: morphology kernel sizes at 1280 px frame width (scaled with the frame) that
        remove single-pixel noise and merge a person's scattered moving pixels into one blob;
        `class_id`: label for every blob (0 = person: on an overhead line camera the movers are people);
        `split_merged`: cut blobs much larger than a typical person into person-sized parts (people standing
        close together touch in the mask; the typical size is learnt from the blobs seen so far);
        `split_by_tracks`: a blob holding several recently tracked people is cut along their boxes first
        (`_split_by_tracks`; on rendered video it cuts ID switches 10x and keeps total dwell right, while
        the remembered boxes drift from the people and MOTA falls below 0: see bench/README.md);
        `split_at`: a blob this many typical sizes wide (or tall) or more is cut along that axis (1.6
        instead of 1.3 keeps people nearer the camera whole: MOTA 1% -> 53% on the 4-camera bench scene,
        but 1.70x instead of 1.52x the true sessions, so the default stays);
        `appearance`: give the tracker each whole blob's dominant colours (`looks`), with which it
        re-identifies people it lost (`BlobTracker._reidentify`);
        `lost_seconds` and `tracker_options`: see `BlobTracker`."""
        self.fps = fps
        self.min_area_share = min_area_share
        self.open_px = open_px
        self.close_px = close_px
        self.class_id = class_id
        self.split_merged = split_merged
        self.split_by_tracks = split_by_tracks
        self.split_at = split_at
        self.appearance = appearance
        self._tracker = BlobTracker(fps, lost_seconds=lost_seconds, **tracker_options)
        self._kernels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.reset()

    def reset(self, empty_scene: bool = False) -> None:
        """Forget every track (a new source). `empty_scene`: the presence background starts from an image
        of the empty scene (`ForegroundModel.reset`), so the people found in the first seconds are really
        there, not ghosts: their tracks count as having moved (`freeze_boxes` keeps them when still)."""
        self._tracker.reset(trusted_frames=round(EMPTY_SCENE_TRUST_SECONDS * self.fps) if empty_scene else 0)
        self._still = np.empty(0, bool)
        self._sizes: deque[tuple[float, float]] = deque(maxlen=self.SIZE_HISTORY)
        self._typical: tuple[float, float] | None = None
        self._frames = 0
        self._whole = np.empty(0, bool)  # which boxes of the last `blobs` are whole blobs

    MIN_PART_FILL = 0.4  # foreground share a track's box needs to be kept inside a merged blob
    SIZE_HISTORY = 2000  # blobs remembered for the typical person size
    SIZE_WARMUP = 50  # blobs seen before any splitting
    SIZE_QUANTILE = 40  # percentile of blob widths/heights taken as one person (merged blobs are larger)

    def typical_size(self) -> tuple[float, float] | None:
        """Width and height of one person, learnt from recent blobs (re-estimated every 25 frames)."""
        if len(self._sizes) < self.SIZE_WARMUP:
            return None
        if self._typical is None or self._frames % 25 == 0:
            self._typical = tuple(np.percentile(np.asarray(self._sizes), self.SIZE_QUANTILE, axis=0))
        return self._typical

    def _split_by_tracks(
        self, xyxy: np.ndarray, fill: np.ndarray, mask: np.ndarray, tracked: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A blob that holds two or more recently seen tracks (at least half of each one's last box inside
        it) is those people touching: it becomes their last boxes, clipped to the blob, so each keeps its
        identity while merged (a box extrapolated from its own velocity would feed that velocity back).
        Returns the boxes, their fills and which rows came from tracks (the others still go through the
        size-based `_split`)."""
        none = np.zeros(len(xyxy), bool)
        if len(tracked) == 0 or len(xyxy) == 0:
            return xyxy, fill, none
        iw = np.minimum(tracked[:, None, 2], xyxy[None, :, 2]) - np.maximum(
            tracked[:, None, 0], xyxy[None, :, 0]
        )
        ih = np.minimum(tracked[:, None, 3], xyxy[None, :, 3]) - np.maximum(
            tracked[:, None, 1], xyxy[None, :, 1]
        )
        inside = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        area = np.maximum((tracked[:, 2] - tracked[:, 0]) * (tracked[:, 3] - tracked[:, 1]), 1e-9)
        share = inside / area[:, None]
        blob_of = np.where(share.max(axis=1) >= 0.5, share.argmax(axis=1), -1)
        # Two tracks on one person (boxes overlapping by IoU >= 0.3) are not two people: the older one
        # (tracks are kept in order of creation) stands for both, so the duplicate is not kept alive.
        dup = np.triu(iou_xyxy(tracked, tracked) >= 0.3, k=1) & (blob_of[:, None] == blob_of[None, :])
        blob_of[dup.any(axis=0)] = -1
        held = np.bincount(blob_of[blob_of >= 0], minlength=len(xyxy))
        merged = held >= 2
        if not merged.any():
            return xyxy, fill, none
        t = np.flatnonzero((blob_of >= 0) & merged[np.maximum(blob_of, 0)])
        b = blob_of[t]
        parts = np.concatenate(
            [np.maximum(tracked[t, :2], xyxy[b, :2]), np.minimum(tracked[t, 2:], xyxy[b, 2:])], axis=1
        )
        part_fill = box_foreground_share(mask, np.concatenate([parts[:, :2], parts[:, 2:] - parts[:, :2]], 1))
        # A remembered box must still hold a person's worth of foreground, else it is not kept alive.
        solid = part_fill >= self.MIN_PART_FILL
        parts, part_fill = parts[solid], part_fill[solid]
        boxes = np.concatenate([xyxy[~merged], parts]).astype(np.float32)
        fills = np.concatenate([fill[~merged], part_fill]).astype(np.float32)
        return boxes, fills, np.concatenate([none[~merged], np.ones(len(parts), bool)])

    def _split(self, xyxy: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cut each blob into about size / typical size parts per axis; keep the parts holding foreground."""
        self._frames += 1
        self._sizes.extend(map(tuple, xyxy[:, 2:] - xyxy[:, :2]))
        typical = self.typical_size()
        if typical is None or len(xyxy) == 0:
            return xyxy, fill
        wh = xyxy[:, 2:] - xyxy[:, :2]
        # split_at (1.3) typical sizes or more along an axis: two people (people behind each other overlap).
        parts = np.maximum(1, np.floor(wh / np.asarray(typical) + 2 - self.split_at)).astype(np.int64)
        single = parts.prod(axis=1) == 1
        if single.all():
            return xyxy, fill
        boxes, fills = [xyxy[single]], [fill[single]]
        for i in np.flatnonzero(~single):  # few merged blobs per frame
            kx, ky = parts[i]
            x0, y0 = xyxy[i, :2]
            step = wh[i] / (kx, ky)
            gx, gy = np.meshgrid(np.arange(kx), np.arange(ky))
            tl = np.stack([x0 + gx.ravel() * step[0], y0 + gy.ravel() * step[1]], axis=1)
            cand = np.concatenate([tl, tl + step], axis=1)
            share = box_foreground_share(mask, np.concatenate([tl, np.broadcast_to(step, tl.shape)], axis=1))
            keep = share >= 0.5 * fill[i]
            boxes.append(cand[keep])
            fills.append(share[keep])
        return np.concatenate(boxes).astype(np.float32), np.concatenate(fills).astype(np.float32)

    def _morphology(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        if width not in self._kernels:
            scale = width / 1280
            o = max(1, round(self.open_px * scale))
            c = max(3, round(self.close_px * scale))
            self._kernels[width] = (
                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (o, o)),
                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (c, c)),
            )
        return self._kernels[width]

    def blobs(
        self, foreground: np.ndarray, tracked: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (xyxy) of the foreground's blobs and each blob's fill ratio (blob pixels / box area).
        `tracked`: last xyxy boxes of recently seen tracks, in the mask's pixels (see
        `_split_by_tracks`)."""
        h, w = foreground.shape[:2]
        open_k, close_k = self._morphology(w)
        mask = cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, close_k)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, open_k)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        stats = stats[1:]  # label 0 is the background
        keep = stats[:, cv2.CC_STAT_AREA] >= self.min_area_share * h * w
        stats = stats[keep].astype(np.float32)
        x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
        xyxy = np.stack([x, y, x + bw, y + bh], axis=1)
        fill = stats[:, cv2.CC_STAT_AREA] / np.maximum(bw * bh, 1)
        blobs = xyxy
        if self.split_merged:
            if tracked is not None and self.split_by_tracks:
                xyxy, fill, by_tracks = self._split_by_tracks(xyxy, fill, mask, tracked)
                rest, rest_fill = self._split(xyxy[~by_tracks], fill[~by_tracks], mask)
                xyxy = np.concatenate([xyxy[by_tracks], rest])
                fill = np.concatenate([fill[by_tracks], rest_fill])
            else:
                xyxy, fill = self._split(xyxy, fill, mask)
        # Boxes that are a whole blob (not a part of a cut one): one person as far as the mask tells.
        self._whole = (xyxy[:, None, :] == blobs[None, :, :]).all(axis=2).any(axis=1)
        return xyxy, fill

    @staticmethod
    def looks(frame: np.ndarray, foreground: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """Dominant colours (`colour_peaks`, one row per box) of the foreground pixels inside each box
        (xyxy in the mask's pixels; the frame is taken to the mask's size). The mask before morphology:
        closing fills the floor between people, which would make the floor everyone's colour."""
        if frame.shape[:2] != foreground.shape[:2]:
            size = (foreground.shape[1], foreground.shape[0])
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        return colour_peaks(colour_histograms(colour_bins(frame), foreground, xyxy, COLOUR_LEVELS**3))

    def freeze_boxes(self, tracks: Tracks) -> np.ndarray:
        """Boxes of the tracks of the last update (`tracks`) whose background should stop learning: those
        that have stopped after moving. A blob that never moved is not frozen: it may be a ghost (the
        spot where someone stood when the background was learnt, uncovered), which must fade; a moving
        person needs no freeze (and the background keeps learning the floor around them)."""
        return tracks.xywh[self._still] if len(tracks) else tracks.xywh

    def update(self, frame: np.ndarray, foreground: np.ndarray) -> Tracks:
        scale = mask_scale(foreground, frame)  # the mask may be smaller than the frame
        xyxy, fill = self.blobs(foreground, self._tracker.recent_boxes() * scale)
        look = None
        if self.appearance:
            # Only a whole blob shows a person's colours: a part of a cut one holds the neighbour's too.
            look = np.where(self._whole[:, None], self.looks(frame, foreground, xyxy), 0.0)
        xyxy = xyxy / scale
        # A solid blob is a confident detection; a thin sliver (a shadow edge, a swinging cable) is not.
        conf = np.clip(fill, 0.0, 1.0)
        ids, idx = self._tracker.update(xyxy, conf, look)
        self._still = self._tracker.reported_still
        if len(ids) == 0:
            return Tracks.empty()
        # The measured blob box of each matched detection, not a prediction: zones are decided on where
        # the person was seen.
        return Tracks.from_xyxy(xyxy[idx], ids, np.full(len(idx), self.class_id), conf[idx])
