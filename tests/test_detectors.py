"""Detectors: the motion detector on drawn scenes, and the YOLO glue with a randomly initialised YOLO11n.

Random weights detect nothing meaningful, so the YOLO tests prove the plumbing only: the model runs through
`model.track(persist=True)` with ByteTrack, boxes come back as (N, 4) top-left/size arrays in the original
frame's pixels (not the letterboxed imgsz space), identical boxes keep their track ids, and rows land.
They do not prove detection quality (that needs real weights: see bench/vision.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ingestion.detectors import Tracks, make_detector
from ingestion.detectors.foreground import ForegroundModel, box_foreground_share
from ingestion.detectors.motion import MotionDetector


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of top-left/size boxes."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1) - np.maximum(a[:, None, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1) - np.maximum(a[:, None, 1], b[:, 1]), 0, None)
    inter = iw * ih
    return inter / (a[:, None, 2] * a[:, None, 3] + b[:, 2] * b[:, 3] - inter)


def _scene(t: int, rects: list[tuple[int, int, int, int]], rng: np.random.Generator) -> np.ndarray:
    """A grey floor with textured rectangles (x, y, w, h) whose texture changes every frame."""
    img = np.full((360, 640, 3), 90, np.uint8)
    for x, y, w, h in rects:
        img[y : y + h, x : x + w] = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return img


def test_box_foreground_share_equals_a_direct_count():
    rng = np.random.default_rng(1)
    mask = (rng.random((90, 160)) < 0.3).astype(np.uint8) * 255
    boxes = np.column_stack(
        [rng.uniform(-10, 150, 50), rng.uniform(-10, 80, 50), rng.uniform(1, 60, 50), rng.uniform(1, 40, 50)]
    ).astype(np.float32)
    got = box_foreground_share(mask, boxes)
    for (x, y, w, h), share in zip(boxes, got, strict=True):
        x0, y0 = int(np.clip(np.floor(x), 0, 160)), int(np.clip(np.floor(y), 0, 90))
        x1, y1 = int(np.clip(np.ceil(x + w), 0, 160)), int(np.clip(np.ceil(y + h), 0, 90))
        region = mask[y0:y1, x0:x1]
        expected = (region > 0).mean() if region.size else 0.0
        assert share == pytest.approx(expected, abs=1e-6)


def test_motion_detector_tracks_a_moving_object_with_one_id():
    rng = np.random.default_rng(2)
    fg, det = ForegroundModel(5.0), MotionDetector(fps=5.0)
    ids, ious = [], []
    for t in range(40):
        rect = (100 + 6 * t, 120, 40, 100)
        frame = _scene(t, [rect] if t >= 5 else [], rng)
        tracks = det.update(frame, fg.apply(frame))
        if t >= 8:
            assert len(tracks) == 1, f"frame {t}: {len(tracks)} tracks"
            ids.append(int(tracks.track_id[0]))
            ious.append(_iou(tracks.xywh, np.array([rect], np.float32))[0, 0])
    assert len(set(ids)) == 1
    assert min(ious) > 0.8  # the box is the object's, in frame pixels


def test_motion_detector_keeps_two_separate_people_apart_and_scores_motion():
    rng = np.random.default_rng(3)
    fg, det = ForegroundModel(5.0), MotionDetector(fps=5.0)
    rects = [(100, 100, 40, 100), (400, 150, 40, 100)]
    for t in range(30):
        frame = _scene(t, rects, rng)
        mask = fg.apply(frame)
        tracks = det.update(frame, mask)
    assert len(tracks) == 2
    assert _iou(tracks.xywh, np.array(rects, np.float32)).max(axis=1).min() > 0.8
    # Texture that changes every frame is motion: nearly every pixel of both boxes is foreground.
    assert box_foreground_share(mask, tracks.xywh).min() > 0.8


def test_yolo_needs_weights_and_never_downloads(tmp_path):
    with pytest.raises(ValueError, match="--weights"):
        make_detector("yolo")
    missing = tmp_path / "yolo11n.pt"
    with pytest.raises(FileNotFoundError, match=r"yolo11n\.pt.*--weights"):
        make_detector("yolo", weights=str(missing))
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("sam")


@pytest.fixture(scope="module")
def random_yolo():
    # Random weights score every box near zero: accept everything so the tracker glue has boxes to carry, and
    # match on IoU alone (fusing IoU with ~0 scores would make every match cost ~1).
    return make_detector(
        "yolo",
        weights="yolo11n.yaml",
        imgsz=320,
        conf=1e-6,
        classes=None,
        device="cpu",
        track_high_thresh=0.0,
        track_low_thresh=0.0,
        new_track_thresh=0.0,
        fuse_score=False,
    )


def test_yolo_track_boxes_are_in_original_frame_pixels_and_ids_persist(random_yolo):
    frame = np.random.default_rng(4).integers(0, 256, size=(360, 640, 3), dtype=np.uint8)
    raw = random_yolo.predict_raw(frame)
    raw_xyxy = raw.xyxy.cpu().numpy()
    assert len(raw_xyxy) > 0, "the random model produced no boxes even at conf 1e-6"
    random_yolo.reset()
    first = random_yolo.update(frame, np.zeros(frame.shape[:2], np.uint8))
    assert isinstance(first, Tracks) and len(first) > 0
    assert first.xywh.shape == (len(first), 4) and first.track_id.dtype == np.int64
    # Same frame again: identical detections must keep their ids.
    second = random_yolo.update(frame, np.zeros(frame.shape[:2], np.uint8))
    common = set(first.track_id.tolist()) & set(second.track_id.tolist())
    assert len(common) >= 0.9 * len(first)
    # Coordinates: every tracked box is one of the model's raw boxes in the 640x360 frame (imgsz was 320).
    raw_xywh = np.column_stack([raw_xyxy[:, :2], raw_xyxy[:, 2:] - raw_xyxy[:, :2]])
    assert _iou(second.xywh, raw_xywh).max(axis=1).min() > 0.9
    assert (second.xywh[:, 0] >= -1).all() and (second.xywh[:, 0] + second.xywh[:, 2] <= 641).all()
    assert (second.xywh[:, 1] + second.xywh[:, 3] <= 361).all()
    assert raw_xyxy[:, 2].max() > 320 or raw_xyxy[:, 3].max() > 320  # not the 320 px letterbox space
    random_yolo.reset()
    third = random_yolo.update(frame, np.zeros(frame.shape[:2], np.uint8))
    assert third.track_id.min() == 1  # reset starts a fresh tracker


def test_yolo_rows_land_through_the_video_pipeline(random_yolo, tmp_path, site):
    from datetime import UTC, datetime

    import cv2

    from ingestion.video import VideoFileSource, VideoPipeline
    from ingestion.warehouse import connect

    frame = np.random.default_rng(5).integers(0, 256, size=(360, 640, 3), dtype=np.uint8)
    path = tmp_path / "still.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (640, 360))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    with connect(f"duckdb:///{tmp_path / 'wh.duckdb'}", site) as wh:
        wh.setup()
        report = VideoPipeline(wh, site, "CAM01", random_yolo, fps=5.0).run(
            VideoFileSource(path, datetime(2025, 1, 15, 1, tzinfo=UTC))
        )
        rows = wh.query("SELECT * FROM raw.detections")
    assert report.frames_processed == 5 and rows.height == report.landed == report.detections > 0
    # The 640x360 video is mapped onto CAM01's configured 1280x720 pixels.
    assert (rows["x"] + rows["w"]).max() > 640 and (rows["x"] + rows["w"]).max() <= 1281
    per_track = rows.group_by("track_id").len()
    assert per_track["len"].max() == 5  # ids persist over the (identical) frames
    assert rows["class_id"].is_between(0, 79).all()


def test_detectors_import_nothing_from_the_video_pipeline():
    """ingestion.detectors is below ingestion.video (the pipeline uses detectors, not the other way round):
    no module of the package imports ingestion.video (issue 15)."""
    import ast
    from pathlib import Path

    import ingestion.detectors

    package = Path(ingestion.detectors.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("ingestion.video")]
    assert len(list(package.glob("*.py"))) >= 5
    assert offenders == []


def _look(bin_: int, n_bins: int = 512) -> np.ndarray:
    """Colour peaks of a detection showing one dominant colour."""
    look = np.zeros(n_bins, np.float32)
    look[bin_] = 1.0
    return look


@pytest.mark.parametrize("reid", [True, False])
def test_blob_tracker_gives_a_lost_person_their_id_back_by_colour(reid):
    """Two people in different colours (A red at x=100, B blue at x=400, 100 px tall) are lost for 2 s (merged
    with a neighbour, occluded) and reappear 1.8 and 1.2 heights from where they were, beyond the distance
    gate: by colour each takes back their own id (no new track, no swap). Without colours (the tracker before
    issue 10's re-identification, `reid_similarity=1`) both come back as new ids, each a new session."""
    from ingestion.detectors.blob_tracker import BlobTracker

    tracker = BlobTracker(5.0, reid_similarity=0.6 if reid else 1.0)
    red, blue = _look(10), _look(300)
    a, b = np.array([80.0, 100, 120, 200]), np.array([380.0, 100, 420, 200])
    for _ in range(10):
        ids, _ = tracker.update(np.stack([a, b]), np.ones(2), np.stack([red, blue]))
    assert ids.tolist() == [1, 2]
    for _ in range(10):  # 2 s unseen
        tracker.update(np.empty((0, 4)), np.empty(0), np.empty((0, 512)))
    # Blue reappears where red was heading (x=280), red further right (x=220); both past the 1.1-height gate.
    blue_back, red_back = b + [-120, 0, -120, 0], a + [180, 0, 180, 0]
    seen = []
    for _ in range(6):
        ids, idx = tracker.update(np.stack([blue_back, red_back]), np.ones(2), np.stack([blue, red]))
        seen.append(dict(zip(idx.tolist(), ids.tolist(), strict=True)))
    assert seen[-1] and len(seen[-1]) == 2
    if reid:
        assert seen[-1] == {0: 2, 1: 1}  # blue is B again, red is A again
        assert all(s == {0: 2, 1: 1} for s in seen if s)
    else:
        assert set(seen[-1].values()) == {3, 4}  # two new tracks: what re-identification removes


def test_blob_tracker_does_not_hand_a_lost_id_to_someone_in_other_colours():
    from ingestion.detectors.blob_tracker import BlobTracker

    tracker = BlobTracker(5.0)
    a = np.array([80.0, 100, 120, 200])
    for _ in range(10):
        tracker.update(a[None], np.ones(1), _look(10)[None])
    for _ in range(10):
        tracker.update(np.empty((0, 4)), np.empty(0), np.empty((0, 512)))
    for _ in range(6):
        ids, _ = tracker.update((a + [180, 0, 180, 0])[None], np.ones(1), _look(300)[None])
    assert ids.tolist() == [2]  # a different person: a new id, A stays lost


def test_motion_detector_looks_find_a_figures_colour_under_moving_details():
    """`MotionDetector.looks`: a figure in one colour with a third of its pixels flickering in random colours
    (working hands) shows its body colour as the dominant one; the floor around it (not foreground) and
    the scattered details do not count."""
    from ingestion.detectors.motion import COLOUR_LEVELS, colour_bins

    rng = np.random.default_rng(7)
    frame = np.full((120, 160, 3), 90, np.uint8)
    body = np.array([40, 60, 200], np.uint8)
    frame[20:100, 50:80] = body
    hands = rng.random((80, 30)) < 0.35
    frame[20:100, 50:80][hands] = rng.integers(0, 256, size=(int(hands.sum()), 3), dtype=np.uint8)
    foreground = np.zeros((120, 160), np.uint8)
    foreground[20:100, 50:80] = 255
    # The box is wider than the figure: floor pixels inside it are background in the mask.
    look = MotionDetector.looks(frame, foreground, np.array([[40.0, 10, 90, 110], [0, 0, 30, 30]]))
    body_bin = int(colour_bins(body[None, None])[0, 0])
    assert look.shape == (2, COLOUR_LEVELS**3)
    assert look[0].argmax() == body_bin and look[0, body_bin] > 0.9
    assert not look[1].any()  # no foreground: no colour
