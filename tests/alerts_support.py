"""Shared pieces of the alert tests: a real local HTTP receiver, a site file with test channels and rules,
and detections of people placed in known zones (so the expected alerts follow from the rows)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import yaml

from ingestion.schema import DETECTION_SCHEMA
from ingestion.site import Site, load_site

REPO_ROOT = Path(__file__).resolve().parent.parent
# bbox (x, y, w, h) whose bottom-centre lies inside the zone (site.yaml polygons)
IN_ZONE = {
    "Z01": (250.0, 380.0, 60.0, 120.0),
    "Z04": (1070.0, 480.0, 60.0, 120.0),
    "Z02": (700.0, 380.0, 60.0, 120.0),
    "Z05": (300.0, 400.0, 60.0, 120.0),
}


@dataclass
class Received:
    at: float
    body: dict
    headers: dict


@dataclass
class Receiver:
    """A local webhook receiver answering each request with the next status of `script` (then 200)."""

    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(time.time(), json.loads(body), dict(self.headers)))
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def site_with_alerts(tmp: Path, alerts: dict, **extra) -> tuple[Path, Site]:
    """The demo site with this `alerts:` section (and other top-level overrides), written to a file."""
    doc = yaml.safe_load((REPO_ROOT / "site.yaml").read_text())
    doc["alerts"] = alerts
    doc["stream"] = {**doc.get("stream", {}), "max_lateness_days": 36500}  # tests stream dated data
    doc.update(extra)
    path = tmp / f"site-{abs(hash(json.dumps(alerts, sort_keys=True))) % 10**8}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, load_site(path)


def person(
    camera: str,
    track: int,
    zone: str,
    start: datetime,
    seconds: float,
    *,
    fps: float = 2.0,
    motion: float = 0.5,
    first_frame: int = 0,
) -> pl.DataFrame:
    """One person standing in `zone` for `seconds`, one detection per frame."""
    n = int(seconds * fps) + 1
    x, y, w, h = IN_ZONE[zone]
    return pl.DataFrame(
        {
            "ts": [start + timedelta(seconds=i / fps) for i in range(n)],
            "camera_id": camera,
            "frame_idx": [first_frame + round(i * 30 / fps) for i in range(n)],
            "track_id": track,
            "class_id": 0,
            "confidence": 0.9,
            "x": x,
            "y": y,
            "w": w,
            "h": h,
            "zone_id": zone,
            "motion_score": motion,
            "worker_id": None,
            "batch_id": "test",
        },
        schema=DETECTION_SCHEMA,
    )


def webhook_alerts(url_env: str, rules: list[dict], **channel) -> dict:
    return {
        "channels": [
            {"name": "hook", "type": "webhook", "url_env": url_env, "retry_seconds": 0.2, **channel}
        ],
        "rules": rules,
    }
