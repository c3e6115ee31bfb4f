"""One valid frame of our stream JSON (one person in CAM01's Z01), and variants of it, shared by the payload
parser tests (test_stream_payloads, test_hostile_input)."""

from __future__ import annotations

import json

GOOD = {
    "camera_id": "CAM01",
    "ts": "2025-01-15T01:00:00.2Z",
    "frame_idx": 7,
    "detections": [
        {
            "track_id": 1,
            "class_id": 0,
            "confidence": 0.9,
            "x": 100,
            "y": 300,
            "w": 50,
            "h": 100,
            "motion_score": 0.1,
        }
    ],
}


def frame(det: dict | None = None, **changes) -> dict:
    """GOOD with its one detection's fields replaced by `det` and the frame's fields by `changes`."""
    return GOOD | {"detections": [GOOD["detections"][0] | (det or {})]} | changes


def frame_payload(det: dict | None = None, **changes) -> bytes:
    """`frame(det, **changes)` as the bytes of a message."""
    return json.dumps(frame(det, **changes)).encode()
