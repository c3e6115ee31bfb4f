"""Render the simulator's scenes to video, with the matching ground truth: the end-to-end test bed of the
vision path (render -> `sightline ingest segments` -> sessions -> compare).

Each camera gets a static floor (tiles, zone outlines and labels) and one figure per clean simulated
detection, drawn at its bbox. Figures show motion the way the simulator scores it: every frame a random
share of the figure's cells equal to its motion_score changes colour (working hands), and its 1 px outline
flickers (a person is never perfectly still), so a background subtractor sees active workers moving a
lot, idle ones barely (the motion score is measured on the box's core, without the outline), and every
figure as one blob. People the simulator places overlapping are drawn overlapping, as a camera sees them.

Output (segments named by their site-local start, as `ingestion.video.segments` reads them):
    DIR/CAM01/2025-01-15T08-00-00.mp4, ...
    DIR/ground_truth/sessions.parquet     the simulator's ground-truth sessions of the window
    DIR/ground_truth/detections.parquet   the clean detections the figures were drawn from
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from ingestion.schema import epoch_us
from ingestion.simulate import simulate
from ingestion.site import Camera, Site, Zone
from ingestion.video.segments import segment_file_name

FLOOR_BGR = (92, 96, 98)
ZONE_BGR = {
    "work_area": (60, 170, 60),
    "inspection": (200, 140, 40),
    "break_area": (170, 90, 170),
    "restricted": (40, 40, 200),
}
CELL_PX = 4  # motion texture cell at full camera resolution


@dataclass(frozen=True)
class RenderResult:
    segments: list[Path]
    sessions_path: Path
    detections_path: Path
    sessions: pl.DataFrame
    frames: int


def parse_window(text: str) -> tuple[time, time]:
    """'08:00-09:00' -> (time(8), time(9)); raises ValueError with the expected form."""
    try:
        a, b = text.split("-")
        start, end = time.fromisoformat(a.strip()), time.fromisoformat(b.strip())
    except ValueError as exc:
        raise ValueError(f"bad window {text!r}: write it as HH:MM-HH:MM, e.g. 08:00-09:00") from exc
    if not (start < end or end == time(0)):
        raise ValueError(f"bad window {text!r}: the end must be after the start (same day)")
    return start, end


def render_video(
    site: Site,
    out_dir: str | Path,
    *,
    day: date = date(2025, 1, 15),
    window: tuple[time, time] | None = None,
    cameras: Sequence[str] | None = None,
    fps: float = 5.0,
    scale: float = 1.0,
    segment_seconds: int = 600,
    seed: int = 0,
    suffix: str = ".mp4",
    progress: bool = False,
) -> RenderResult:
    """Render `window` (default: the working hours) of `day` for `cameras` (default all) into segments.

    `scale` < 1 renders smaller frames (e.g. 0.5: 640x360 for a 1280x720 camera) with every coordinate
    scaled; the vision pipeline maps boxes back to the camera's configured pixels."""
    window = window or (site.schedule.work_start, site.schedule.work_end)
    out_dir = Path(out_dir)
    sim = simulate(site, start=day, cameras=cameras, fps=fps, noise="none", seed=seed, window=window)
    detections = sim.detections
    truth_dir = out_dir / "ground_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    sessions_path, detections_path = truth_dir / "sessions.parquet", truth_dir / "detections.parquet"
    sim.sessions.write_parquet(sessions_path)
    detections.write_parquet(detections_path)

    w_start = site.local_datetime(day, window[0])
    w_end = site.local_datetime(day + timedelta(days=1) if window[1] == time(0) else day, window[1])
    segments, frames = [], 0
    bar = None
    if progress:
        from tqdm import tqdm

        total = int((w_end - w_start).total_seconds() * fps) * len(sim.cameras)
        bar = tqdm(total=total, desc="rendering", unit="frame")
    for camera_id in sim.cameras:
        camera = site.camera(camera_id)
        renderer = _SceneRenderer(camera, site.zones_for(camera_id), scale, seed)
        cam_rows = detections.filter(pl.col("camera_id") == camera_id)
        seg_start = w_start
        while seg_start < w_end:
            seg_end = min(seg_start + timedelta(seconds=segment_seconds), w_end)
            path = out_dir / camera_id / segment_file_name(seg_start, site, suffix)
            n = renderer.write_segment(path, cam_rows, seg_start, seg_end, fps)
            segments.append(path)
            frames += n
            if bar is not None:
                bar.update(n)
            seg_start = seg_end
    if bar is not None:
        bar.close()
    return RenderResult(segments, sessions_path, detections_path, sim.sessions, frames)


class _SceneRenderer:
    def __init__(self, camera: Camera, zones: Sequence[Zone], scale: float, seed: int):
        self.camera = camera
        self.scale = scale
        self.size = (max(16, round(camera.width * scale)), max(16, round(camera.height * scale)))
        self.cell = max(1, round(CELL_PX * scale))
        self.seed = seed
        self.background = self._floor(zones)

    def _floor(self, zones: Sequence[Zone]) -> np.ndarray:
        w, h = self.size
        img = np.empty((h, w, 3), np.uint8)
        img[:] = FLOOR_BGR
        tile = max(8, round(80 * self.scale))
        img[::tile, :] = (82, 86, 88)
        img[:, ::tile] = (82, 86, 88)
        thick = max(1, round(3 * self.scale))
        for zone in zones:
            pts = (np.asarray(zone.polygon) * self.scale).round().astype(np.int32)
            colour = ZONE_BGR.get(zone.type, (200, 200, 200))
            cv2.polylines(img, [pts], isClosed=True, color=colour, thickness=thick)
            cv2.putText(
                img,
                zone.id,
                (int(pts[:, 0].min()) + 2 * thick, int(pts[:, 1].min()) + 12 * thick),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5 * thick,
                colour,
                thick,
            )
        return img

    def write_segment(
        self, path: Path, rows: pl.DataFrame, start: datetime, end: datetime, fps: float
    ) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = "mp4v" if path.suffix in (".mp4", ".mkv", ".mov", ".m4v") else "MJPG"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, self.size)
        if not writer.isOpened():
            raise RuntimeError(
                f"{path}: OpenCV cannot write {fourcc} video here (is its FFmpeg build complete?)"
            )
        seg = rows.filter((pl.col("ts") >= start) & (pl.col("ts") < end)).sort("ts", "track_id")
        start_us = epoch_us(start)
        n_frames = int(np.ceil((end - start).total_seconds() * fps - 1e-9))
        # Frame j of the segment shows the simulated instant start + j / fps.
        offset_us = seg["ts"].dt.epoch("us").to_numpy() - start_us
        frame_of = np.rint(offset_us * fps / 1e6).astype(np.int64)
        bounds = np.searchsorted(frame_of, np.arange(n_frames + 1))
        s = self.scale
        boxes = seg.select("x", "y", "w", "h").to_numpy() * s
        track = seg["track_id"].to_numpy()
        motion = seg["motion_score"].to_numpy()
        cam_key = int.from_bytes(hashlib.blake2b(self.camera.id.encode(), digest_size=4).digest(), "little")
        try:
            for j in range(n_frames):
                img = self.background.copy()
                rng = np.random.default_rng((self.seed, cam_key, start_us // 1_000_000, j))
                for i in range(bounds[j], bounds[j + 1]):
                    self._figure(img, boxes[i], int(track[i]), float(motion[i]), rng)
                writer.write(img)
        finally:
            writer.release()
        return n_frames

    def _figure(
        self, img: np.ndarray, box: np.ndarray, track_id: int, motion: float, rng: np.random.Generator
    ) -> None:
        h_img, w_img = img.shape[:2]
        x0, y0 = int(round(box[0])), int(round(box[1]))
        x1, y1 = min(w_img, int(round(box[0] + box[2]))), min(h_img, int(round(box[1] + box[3])))
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        body = _track_colour(track_id)
        img[y0:y1, x0:x1] = body
        head_r = max(2, (x1 - x0) // 3)
        cv2.circle(img, ((x0 + x1) // 2, y0 + head_r + 1), head_r, (150, 180, 215), -1)
        # Working hands: a share `motion` of the figure's cells takes a new random colour this frame.
        c = self.cell
        ch, cw = -(-(y1 - y0) // c), -(-(x1 - x0) // c)
        moving = rng.random((ch, cw)) < motion
        if moving.any():
            # Random colours at least 64 levels from the body in every channel: clearly a change, and never
            # the same two colours (which a mixture background model would learn as "normal").
            shift = rng.integers(64, 193, size=(ch, cw, 3), dtype=np.int64)
            cells = ((np.asarray(body, dtype=np.int64) + shift) % 256).astype(np.uint8)
            full = np.repeat(np.repeat(cells, c, axis=0), c, axis=1)[: y1 - y0, : x1 - x0]
            mask = np.repeat(np.repeat(moving, c, axis=0), c, axis=1)[: y1 - y0, : x1 - x0]
            img[y0:y1, x0:x1][mask] = full[mask]
        # The outline flickers (a clearly different colour each frame): a person is never perfectly still,
        # and this keeps even an idle figure one visible blob for a motion detector.
        edge = (np.asarray(body, dtype=np.int64) + rng.integers(64, 193, size=3)) % 256
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), tuple(int(v) for v in edge), 1)


def _track_colour(track_id: int) -> tuple[int, int, int]:
    d = hashlib.blake2b(str(track_id).encode(), digest_size=3).digest()
    return (40 + d[0] % 150, 40 + d[1] % 150, 120 + d[2] % 120)
