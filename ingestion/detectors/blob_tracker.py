"""Tracking of motion blobs: IoU + centre-distance association, one-to-one (Hungarian), confirmation
after a few hits and a lost-track buffer in seconds of video.

Why not ByteTrack here: its Kalman filter and IoU-only association are tuned for a detector's steady boxes.
Blobs are noisier (they shrink, grow, merge when people touch and split again): a box that jumps by half
its size has IoU ~0 with the prediction and ByteTrack starts a new track, which downstream is a new
session. Here a detection may also match a track whose box it barely overlaps if its centre is close
relative to the person's height, and a track lost while merged with a neighbour is picked up again when
they separate, with a gate that widens the longer it was lost.

Appearance (issue 10): given the detections' dominant colours (`MotionDetector.looks`), each track keeps
a moving average of them, and a track about to be confirmed that shows a lost track's colours, within
`max_gate` of it, takes that track's id (`_reidentify`) instead of a new one. Colour is used for nothing
else: as a term or a gate in the association cost, to cut merged blobs by colour, or to drop a second
track of the same colours beside a live one, it was measured and made the session count worse on the
rendered bench scenes (bench/README.md, "Appearance").
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

_INFEASIBLE = 1e6


def iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of x0, y0, x1, y1 boxes."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def appearance_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity matrix (len(a), len(b)), 0..1, of colour-peak rows (`MotionDetector.looks`): the
    intersection of the rows normalised to sum 1 (0 where a row is all zero)."""
    a = a / np.maximum(a.sum(axis=1, keepdims=True), 1e-9)
    b = b / np.maximum(b.sum(axis=1, keepdims=True), 1e-9)
    return np.minimum(a[:, None, :], b[None, :, :]).sum(axis=2)


class BlobTracker:
    """Tracks of detection boxes (xyxy) frame by frame. `update` returns the confirmed tracks seen in this
    frame as (track ids, index of their detection); ids are handed out 1, 2, ... at confirmation."""

    def __init__(
        self,
        fps: float,
        *,
        lost_seconds: float = 15.0,
        min_hits: int = 3,
        new_track_conf: float = 0.3,
        gate: float = 0.6,
        gate_growth_per_second: float = 0.25,
        max_gate: float = 2.5,
        max_extrapolate_seconds: float = 2.0,
        moved_share: float = 0.5,
        still_speed: float = 0.04,
        appearance_rate: float = 0.2,
        reid_similarity: float = 0.6,
    ):
        """`lost_seconds`: how long an unseen track waits to be picked up again (occlusion, merged with a
        neighbour); `min_hits`: detections (in consecutive frames) before a track is reported, so one-frame
        noise blobs never become tracks; `new_track_conf`: weakest detection that may start a track;
        `gate`: largest centre distance for a match, in person heights, growing by
        `gate_growth_per_second` per second lost up to `max_gate`; a lost track's position is
        extrapolated from its velocity for at most `max_extrapolate_seconds`; `moved_share`: distance
        from where a track started, in its heights, after which it counts as having moved (see `moved`);
        `still_speed`: speed (its heights per frame) under which a track counts as still;
        `appearance_rate`: weight of each new sighting in a track's colours (exponential moving average of
        the detections' colour peaks, when `update` is given them); `reid_similarity`: colour similarity
        (`appearance_similarity`) at which a track about to be confirmed takes the id of a lost one (see
        `_reidentify`; 1 or more: never)."""
        self.fps = fps
        self.lost_frames = max(1, round(lost_seconds * fps))
        self.min_hits = min_hits
        self.new_track_conf = new_track_conf
        self.gate = gate
        self.gate_growth = gate_growth_per_second / fps
        self.max_gate = max_gate
        self.max_extrapolate = max(1, round(max_extrapolate_seconds * fps))
        self.moved_share = moved_share
        self.still_speed = still_speed
        self.appearance_rate = appearance_rate
        self.reid_similarity = reid_similarity
        self.reset()

    def reset(self, trusted_frames: int = 0) -> None:
        """Forget every track. `trusted_frames`: tracks started in this many first frames count as having
        moved (`moved`), i.e. as real: the background they were seen against is an image of the empty
        scene, not a learnt one that could hold a ghost."""
        self.trusted_frames = trusted_frames
        self._frame = 0
        self.box = np.empty((0, 4), np.float64)  # last measured xyxy
        self.vel = np.empty((0, 2), np.float64)  # centre velocity, px per frame
        self.step = np.empty((0, 2), np.float64)  # last measured centre step, px per frame
        self.hits = np.empty(0, np.int64)
        self.misses = np.empty(0, np.int64)  # frames since last seen
        self.ids = np.empty(0, np.int64)  # 0 = tentative (not yet confirmed)
        self.origin = np.empty((0, 2), np.float64)  # centre where the track started
        self.moved = np.empty(0, bool)  # has been at least `moved_share` of its height from its origin
        self.reported_moved = np.empty(0, bool)  # `moved` of the tracks the last update returned
        self.reported_still = np.empty(0, bool)  # of those: moved before, and (almost) still now
        self.look: np.ndarray | None = None  # (n, bins) colour peaks, moving average (None: no looks yet)
        self._next_id = 1

    def __len__(self) -> int:
        return len(self.ids)

    def _learn_look(self, tracks: np.ndarray, look: np.ndarray) -> None:
        """Moving average of the tracks' colour peaks; a sighting without a clear colour teaches nothing,
        and a track without a colour yet takes the first one it is seen with."""
        shown = look.sum(axis=1) > 0
        known = self.look[tracks].sum(axis=1) > 0
        rate = np.where(known, self.appearance_rate, 1.0)[:, None]
        t = tracks[shown]
        self.look[t] = (1 - rate[shown]) * self.look[t] + rate[shown] * look[shown]

    def _reidentify(self, promote: np.ndarray) -> np.ndarray:
        """Tracks about to be confirmed that show the colours of a lost confirmed track (similarity >=
        `reid_similarity`, within `max_gate` of its heights) take its id: the person it lost while merged
        with a neighbour, not a new one. Returns the lost tracks whose id was handed on (to be dropped)."""
        revived = np.zeros(len(self), bool)
        if self.look is None or not promote.any():
            return revived
        lost = np.flatnonzero((self.ids > 0) & (self.misses > 0) & (self.look.sum(axis=1) > 0))
        new = np.flatnonzero(promote & (self.look.sum(axis=1) > 0))
        if len(lost) == 0 or len(new) == 0:
            return revived
        similar = appearance_similarity(self.look[new], self.look[lost])
        c_new = (self.box[new, :2] + self.box[new, 2:]) / 2
        c_lost = (self.box[lost, :2] + self.box[lost, 2:]) / 2
        height = np.maximum(self.box[lost, 3] - self.box[lost, 1], 1.0)[None, :]
        dist = np.hypot(*(c_new[:, None, :] - c_lost[None, :, :]).transpose(2, 0, 1)) / height
        cost = np.where((similar >= self.reid_similarity) & (dist <= self.max_gate), 1 - similar, _INFEASIBLE)
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] < _INFEASIBLE
        self.ids[new[rows[ok]]] = self.ids[lost[cols[ok]]]
        self.origin[new[rows[ok]]] = self.origin[lost[cols[ok]]]
        self.moved[new[rows[ok]]] |= self.moved[lost[cols[ok]]]
        revived[lost[cols[ok]]] = True
        return revived

    def _predicted(self) -> np.ndarray:
        steps = np.minimum(self.misses + 1, self.max_extrapolate)[:, None]
        shift = self.vel * steps
        return self.box + np.concatenate([shift, shift], axis=1)

    def recent_boxes(self, max_misses: int = 2) -> np.ndarray:
        """Last seen xyxy boxes of the confirmed tracks seen in the last `max_misses` frames."""
        recent = (self.ids > 0) & (self.misses <= max_misses)
        return self.box[recent]

    def _cost(self, det: np.ndarray) -> np.ndarray:
        pred = self._predicted()
        iou = iou_xyxy(pred, det)
        c_pred = (pred[:, :2] + pred[:, 2:]) / 2
        c_det = (det[:, :2] + det[:, 2:]) / 2
        height = np.maximum(pred[:, 3] - pred[:, 1], 1.0)[:, None]
        dist = np.hypot(*(c_pred[:, None, :] - c_det[None, :, :]).transpose(2, 0, 1)) / height
        # Size change (log ratio of heights): a blob twice as tall is probably two people, not this one.
        size = np.abs(np.log(np.maximum(det[None, :, 3] - det[None, :, 1], 1.0) / height))
        gate = np.minimum(self.gate + self.gate_growth * self.misses, self.max_gate)[:, None]
        # Recently seen and confirmed tracks first: the fresher track wins a contested detection.
        cost = (1 - iou) + dist + 0.5 * size + 0.01 * self.misses[:, None] + 0.2 * (self.ids == 0)[:, None]
        return np.where((iou > 0.1) | (dist < gate), cost, _INFEASIBLE)

    def update(
        self, xyxy: np.ndarray, conf: np.ndarray, look: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`look`: optional (len(xyxy), bins) colour peaks of the detections (`MotionDetector.looks`; an
        all-zero row where a detection shows no clear colour)."""
        det = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        conf = np.asarray(conf, dtype=np.float64)
        n_tracks = len(self)
        if look is not None:
            look = np.asarray(look, dtype=np.float32)
            look = look.reshape(len(det), look.shape[-1] if look.ndim == 2 else 0)
            if self.look is None:
                self.look = np.zeros((n_tracks, look.shape[1]), np.float32)
        matched_t = np.empty(0, np.int64)
        matched_d = np.empty(0, np.int64)
        if n_tracks and len(det):
            cost = self._cost(det)
            rows, cols = linear_sum_assignment(cost)
            ok = cost[rows, cols] < _INFEASIBLE
            matched_t, matched_d = rows[ok], cols[ok]

        # Matched tracks: measured box, smoothed velocity over the frames since last seen.
        if len(matched_t):
            old_c = (self.box[matched_t, :2] + self.box[matched_t, 2:]) / 2
            new_c = (det[matched_d, :2] + det[matched_d, 2:]) / 2
            step = (new_c - old_c) / (self.misses[matched_t] + 1)[:, None]
            self.vel[matched_t] = 0.6 * self.vel[matched_t] + 0.4 * step
            self.step[matched_t] = step
            self.box[matched_t] = det[matched_d]
            self.hits[matched_t] += 1
            height = np.maximum(det[matched_d, 3] - det[matched_d, 1], 1.0)
            away = np.hypot(*(new_c - self.origin[matched_t]).T) / height
            self.moved[matched_t] |= away >= self.moved_share
            if look is not None:
                self._learn_look(matched_t, look[matched_d])
        seen = np.zeros(n_tracks, bool)
        seen[matched_t] = True
        self.misses[seen] = 0
        self.misses[~seen] += 1
        # Tentative tracks: confirmed after min_hits, dropped at their first miss.
        promote = seen & (self.ids == 0) & (self.hits >= self.min_hits)
        revived = self._reidentify(promote) if self.reid_similarity < 1 else np.zeros(n_tracks, bool)
        promote &= self.ids == 0
        self.ids[promote] = self._next_id + np.arange(promote.sum())
        self._next_id += int(promote.sum())
        keep = np.where(self.ids == 0, seen, self.misses <= self.lost_frames) & ~revived

        # Unmatched confident detections start tentative tracks.
        new = np.ones(len(det), bool)
        new[matched_d] = False
        new &= conf >= self.new_track_conf
        det_of_track = np.full(n_tracks, -1, np.int64)
        det_of_track[matched_t] = matched_d
        self.box = np.concatenate([self.box[keep], det[new]])
        self.vel = np.concatenate([self.vel[keep], np.zeros((int(new.sum()), 2))])
        self.step = np.concatenate([self.step[keep], np.zeros((int(new.sum()), 2))])
        self.hits = np.concatenate([self.hits[keep], np.ones(int(new.sum()), np.int64)])
        self.misses = np.concatenate([self.misses[keep], np.zeros(int(new.sum()), np.int64)])
        self.ids = np.concatenate([self.ids[keep], np.zeros(int(new.sum()), np.int64)])
        self.origin = np.concatenate([self.origin[keep], (det[new, :2] + det[new, 2:]) / 2])
        trusted = self._frame < self.trusted_frames
        self.moved = np.concatenate([self.moved[keep], np.full(int(new.sum()), trusted)])
        if self.look is not None:
            fresh_look = look[new] if look is not None else np.zeros((int(new.sum()), self.look.shape[1]))
            self.look = np.concatenate([self.look[keep], fresh_look]).astype(np.float32)
        if self.min_hits <= 1 and new.any():  # confirmed at once
            fresh = np.flatnonzero(self.ids == 0)[-int(new.sum()) :]
            self.ids[fresh] = self._next_id + np.arange(len(fresh))
            self._next_id += len(fresh)
        det_of_track = np.concatenate([det_of_track[keep], np.flatnonzero(new)])

        self._frame += 1
        report = (self.ids > 0) & (self.misses == 0)
        # Still = the last step was short (not the smoothed velocity: that lags by seconds, and a person who
        # stops must be frozen before the background absorbs them).
        height = np.maximum(self.box[:, 3] - self.box[:, 1], 1.0)
        still = np.hypot(*self.step.T) < self.still_speed * height
        self.reported_moved = self.moved[report]
        self.reported_still = (self.moved & still)[report]
        return self.ids[report].copy(), det_of_track[report]
