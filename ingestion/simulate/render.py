"""Render the simulator's scenes to video, with the matching ground truth: the end-to-end test bed of the
vision path (render -> `sightline ingest segments` -> sessions -> compare).

Each camera gets a static floor (tiles, zone outlines and labels) and one figure per clean simulated
detection, drawn at its bbox: a person in clothes of one colour of their own (stable: it is what they
wear, whatever they do) with a head on top. Figures show motion the way the simulator scores it, where a
person's motion is: their hands and forearms, which sweep a band from chest to hip height across their
reach (`WORK_BAND`, the box's width) - every frame a random share of that band's cells equal to the
motion_score shows hands, tools or parts (a new colour) - and a 1 px outline that flickers (a person is
never perfectly still). A background subtractor thus sees active workers moving a lot, idle ones barely
(the motion score is measured on the box's core, two thirds of which is the band, without the outline),
and every figure as one blob; their clothing stays visible around their working hands. People the
simulator places overlapping are drawn overlapping, as a camera sees them.

`render_stationary_worker` renders a scene of its own: one worker walks in, stands perfectly still (no sway,
no working hands, no outline flicker: motion_score exactly 0 draws a frozen figure) for minutes, and leaves
(the stationary-people check of the motion detector).

Output (segments named by their site-local start, as `ingestion.video.segments` reads them):
    DIR/CAM01/2025-01-15T08-00-00.mp4, ...
    DIR/ground_truth/sessions.parquet     the simulator's ground-truth sessions of the window
    DIR/ground_truth/detections.parquet   the clean detections the figures were drawn from
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import yaml

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
EMPTY_SCENE_CLIP_FRAMES = 5  # frames of the clip the empty-scene still is taken from (its last)
CELL_PX = 4  # motion texture cell at full camera resolution
# Rows of a figure (shares of its height from the top) where working hands and forearms move: chest to
# hip, where people hold and handle what they work on. Torso above and legs below keep their clothing.
WORK_BAND = (0.30, 0.70)


@dataclass(frozen=True)
class RenderResult:
    segments: list[Path]
    sessions_path: Path
    detections_path: Path
    sessions: pl.DataFrame
    frames: int
    # camera id -> PNG of its empty scene (the floor without people) at the render's size: what an
    # operator would save as the camera's site.yaml `background_image` (see `site_file_with_empty_scenes`)
    empty_scenes: dict[str, Path] = field(default_factory=dict)


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
    segments, frames, empty_scenes = [], 0, {}
    bar = None
    if progress:
        from tqdm import tqdm

        total = int((w_end - w_start).total_seconds() * fps) * len(sim.cameras)
        bar = tqdm(total=total, desc="rendering", unit="frame")
    for camera_id in sim.cameras:
        camera = site.camera(camera_id)
        renderer = _SceneRenderer(camera, site.zones_for(camera_id), scale, seed)
        cam_rows = detections.filter(pl.col("camera_id") == camera_id)
        cam_segments, n = renderer.write_window(
            out_dir,
            site,
            cam_rows,
            w_start,
            w_end,
            fps,
            segment_seconds,
            suffix,
            on_segment=None if bar is None else bar.update,
        )
        segments += cam_segments
        frames += n
        empty_scenes[camera_id] = renderer.write_empty_scene(out_dir)
    if bar is not None:
        bar.close()
    return RenderResult(segments, sessions_path, detections_path, sim.sessions, frames, empty_scenes)


def site_file_with_empty_scenes(site: Site, empty_scenes: dict[str, Path], out: str | Path) -> Path:
    """A copy of the site file at `out` whose cameras point `background_image` at the rendered empty
    scenes (absolute paths): the site an operator would have after saving a still of each empty floor."""
    doc = yaml.safe_load(Path(site.path).read_text())
    for camera in doc["cameras"]:
        if camera["id"] in empty_scenes:
            camera["background_image"] = str(Path(empty_scenes[camera["id"]]).resolve())
    out = Path(out)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def render_stationary_worker(
    site: Site,
    out_dir: str | Path,
    *,
    camera_id: str = "CAM01",
    zone_id: str | None = None,
    day: date = date(2025, 1, 15),
    start: time = time(8),
    still_seconds: float = 600.0,
    fps: float = 5.0,
    scale: float = 1.0,
    segment_seconds: int | None = None,
    seed: int = 0,
    suffix: str = ".mp4",
) -> RenderResult:
    """One worker, alone in `camera_id`'s view: enters through the door 5 s after `start`, walks to a spot
    in `zone_id` (default: the camera's first work area), stands perfectly still for `still_seconds`
    (motion_score 0: the figure is drawn identically in every frame), walks back out; the window ends 10 s
    after they left. Ground truth as in `render_video`; one segment unless `segment_seconds` is given."""
    from ingestion.simulate.detections import detection_frame, stored_boxes, zone_codes
    from ingestion.simulate.geometry import camera_geometry
    from ingestion.simulate.ground_truth import sessionize
    from ingestion.simulate.plan import IDLE, WALK, Plan
    from ingestion.simulate.randomness import stable_rng
    from ingestion.simulate.trajectories import frame_range, motion_scores, sample_plan

    out_dir = Path(out_dir)
    camera, zones = site.camera(camera_id), site.zones_for(camera_id)
    zone = next((z for z in zones if z.id == zone_id or (zone_id is None and z.type == "work_area")), None)
    if zone is None:
        raise ValueError(
            f"camera {camera_id} has no zone {zone_id or '(work area)'}: pick one of "
            f"{', '.join(z.id for z in zones)}"
        )
    geo = camera_geometry(camera, zones)
    rng = stable_rng("stationary", seed, camera_id, day.isoformat())
    spot = geo.point_in_zone(zone, rng)
    midnight = site.day_window(day)[0]
    t_in = (site.local_datetime(day, start) - midnight).total_seconds() + 5.0
    speed = 80.0  # px/s
    walk = max(np.hypot(spot[0] - geo.door[0], spot[1] - geo.door[1]) / speed, 0.5)
    t = np.array([t_in, t_in + walk, t_in + walk + still_seconds, t_in + 2 * walk + still_seconds])
    plan = Plan(
        t0=t[:3],
        t1=t[1:],
        x0=np.array([geo.door[0], spot[0], spot[0]]),
        y0=np.array([geo.door[1], spot[1], spot[1]]),
        x1=np.array([spot[0], spot[0], geo.door[0]]),
        y1=np.array([spot[1], spot[1], geo.door[1]]),
        sway=np.zeros(3),
        kind=np.array([WALK, IDLE, WALK], dtype=np.int8),
        track=np.zeros(3, np.int64),
        track_worker=np.zeros(1, np.int64),
        track_w=np.array([60.0]),
        track_h=np.array([160.0]),
        track_start=t[:1],
        track_end=t[-1:],
        worker_ids=(f"{camera_id}-W01",),
    )
    w_lo, w_hi = t_in - 5.0, float(np.ceil(t[-1] + 10.0))
    k_lo, k_hi = (int(k) for k in frame_range(w_lo, w_hi, fps))
    smp = sample_plan(plan, fps, k_lo, k_hi)
    x, y, w, h = stored_boxes(
        smp.px - 30.0, smp.py - 160.0, np.full(len(smp), 60.0), np.full(len(smp), 160.0), camera
    )
    motion = np.where(
        smp.kind == IDLE,
        0.0,
        motion_scores(smp.kind, rng.random(len(smp)), site.thresholds.idle_motion_score),
    )
    midnight_us = epoch_us(midnight)
    tid = np.full(len(smp), day.toordinal() * 1_000_000 + 1, np.int64)
    ts_us = midnight_us + np.rint(smp.frame * (1e6 / fps)).astype(np.int64)
    zone_code = zone_codes(zones, x, y, w, h)
    worker = np.zeros(len(smp), np.int64)
    zone_ids, worker_ids = [z.id for z in zones], list(plan.worker_ids)
    sessions = sessionize(site, camera_id, day, tid, ts_us, zone_code, motion, worker, zone_ids, worker_ids)
    rows = {
        "frame": smp.frame,
        "tid": tid,
        "conf": np.full(len(smp), 0.9),
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "zone": zone_code,
        "motion": motion,
        "worker": worker,
    }
    detections = detection_frame(camera_id, rows, midnight_us, fps, zone_ids, worker_ids)

    truth_dir = out_dir / "ground_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    sessions_path, detections_path = truth_dir / "sessions.parquet", truth_dir / "detections.parquet"
    sessions.write_parquet(sessions_path)
    detections.write_parquet(detections_path)
    w_start, w_end = midnight + timedelta(seconds=w_lo), midnight + timedelta(seconds=w_hi)
    renderer = _SceneRenderer(camera, zones, scale, seed)
    segments, frames = renderer.write_window(
        out_dir, site, detections, w_start, w_end, fps, segment_seconds or int(w_hi - w_lo), suffix
    )
    empty_scene = renderer.write_empty_scene(out_dir)
    return RenderResult(segments, sessions_path, detections_path, sessions, frames, {camera_id: empty_scene})


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

    def write_empty_scene(self, out_dir: Path, fps: float = 5.0) -> Path:
        """out_dir/empty_scene/<camera>.png: a still of the empty floor as the camera delivers it, a frame
        of a short mp4v clip of it, decoded (what `ffmpeg -frames:v 1` gives from a recording), not the
        clean drawing, whose thin zone outlines and labels differ from every compressed frame."""
        path = out_dir / "empty_scene" / f"{self.camera.id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        clip = path.with_suffix(".mp4")
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
        try:
            for _ in range(EMPTY_SCENE_CLIP_FRAMES):
                writer.write(self.background)
        finally:
            writer.release()
        capture = cv2.VideoCapture(str(clip))
        try:
            frames = [capture.read()[1] for _ in range(EMPTY_SCENE_CLIP_FRAMES)]
        finally:
            capture.release()
            clip.unlink(missing_ok=True)
        if frames[-1] is None or not cv2.imwrite(str(path), frames[-1]):
            raise RuntimeError(f"{path}: OpenCV cannot write the empty scene here (mp4v and PNG)")
        return path

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

    def write_window(
        self,
        out_dir: Path,
        site: Site,
        rows: pl.DataFrame,
        start: datetime,
        end: datetime,
        fps: float,
        segment_seconds: int,
        suffix: str,
        on_segment: Callable[[int], object] | None = None,
    ) -> tuple[list[Path], int]:
        """Segments of [start, end) under out_dir/<camera>/, named by their site-local start; `on_segment`
        gets each segment's frame count."""
        segments, frames = [], 0
        seg_start = start
        while seg_start < end:
            seg_end = min(seg_start + timedelta(seconds=segment_seconds), end)
            path = out_dir / self.camera.id / segment_file_name(seg_start, site, suffix)
            n = self.write_segment(path, rows, seg_start, seg_end, fps)
            segments.append(path)
            frames += n
            if on_segment is not None:
                on_segment(n)
            seg_start = seg_end
        return segments, frames

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
        # Working hands: a share `motion` of the work band's cells takes a new random colour this frame;
        # the clothing above and below the band stays as it is.
        b0 = y0 + int(round(WORK_BAND[0] * (y1 - y0)))
        b1 = max(b0 + 1, y0 + int(round(WORK_BAND[1] * (y1 - y0))))
        c = self.cell
        ch, cw = -(-(b1 - b0) // c), -(-(x1 - x0) // c)
        moving = rng.random((ch, cw)) < motion
        if moving.any():
            # Random colours at least 64 levels from the body in every channel: clearly a change, and never
            # the same two colours (which a mixture background model would learn as "normal").
            shift = rng.integers(64, 193, size=(ch, cw, 3), dtype=np.int64)
            cells = ((np.asarray(body, dtype=np.int64) + shift) % 256).astype(np.uint8)
            full = np.repeat(np.repeat(cells, c, axis=0), c, axis=1)[: b1 - b0, : x1 - x0]
            mask = np.repeat(np.repeat(moving, c, axis=0), c, axis=1)[: b1 - b0, : x1 - x0]
            img[b0:b1, x0:x1][mask] = full[mask]
        if motion == 0.0:  # perfectly still (render_stationary_worker): nothing changes, not even the outline
            return
        # The outline flickers (a clearly different colour each frame): a person is never perfectly still,
        # and this keeps even an idle figure one visible blob for a motion detector.
        edge = (np.asarray(body, dtype=np.int64) + rng.integers(64, 193, size=3)) % 256
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), tuple(int(v) for v in edge), 1)


def _track_colour(track_id: int) -> tuple[int, int, int]:
    d = hashlib.blake2b(str(track_id).encode(), digest_size=3).digest()
    return (40 + d[0] % 150, 40 + d[1] % 150, 120 + d[2] % 120)
