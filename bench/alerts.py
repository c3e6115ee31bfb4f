"""Live alert latency: message arrival on the broker -> alert delivered to a webhook receiver.

    .venv/bin/python bench/alerts.py [--seconds 40] [--intrusions 16] [--all-rules]
                                     [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]

For DuckDB and PostgreSQL: a private Mosquitto, `StreamConsumer` with the stream's alert hook
(`ingestion.alerts.live.StreamAlerts`, exactly as `sightline stream` wires it), a local HTTP receiver.
Four cameras publish live frames (5 fps, three people each, data time = wall time); every few seconds a new
track walks into the restricted Robot Cell (Z04). For each intrusion: its first message's publish time ->
the webhook request's arrival, p50 / p99; beside it, the same messages' publish -> batch commit latency
(the landing the alert waits for), measured in the same run, and their ratio.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.alerts.live import StreamAlerts  # noqa: E402
from ingestion.schema import DETECTION_SCHEMA  # noqa: E402
from ingestion.site import load_site  # noqa: E402
from ingestion.stream.broker import PrivateMosquitto  # noqa: E402
from ingestion.stream.consumer import BatchPolicy, StreamConsumer  # noqa: E402
from ingestion.stream.encode import encode_frames  # noqa: E402
from ingestion.stream.landing import StreamLander  # noqa: E402
from ingestion.stream.mqtt import MqttSource  # noqa: E402
from ingestion.stream.publish import Publisher  # noqa: E402
from ingestion.warehouse import connect  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV = "SIGHTLINE_BENCH_ALERT_HOOK"
BOXES = {
    "Z01": (250, 380),
    "Z02": (700, 380),
    "Z05": (300, 400),
    "Z06": (800, 400),
    "Z08": (300, 400),
    "Z09": (750, 400),
    "Z11": (250, 400),
    "Z12": (620, 400),
    "Z04": (1070, 480),
}
CAMERA_ZONES = {
    "CAM01": ["Z01", "Z02"],
    "CAM02": ["Z05", "Z06"],
    "CAM03": ["Z08", "Z09"],
    "CAM04": ["Z11", "Z12"],
}


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}  # track id -> first request time
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                owner.arrivals.setdefault(body["alert"]["track_id"], time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def frames(t0: datetime, seconds: float, intrusions: int, fps: float = 5.0) -> pl.DataFrame:
    n = int(seconds * fps)
    rows = []
    for cam, zones in CAMERA_ZONES.items():
        for p in range(3):
            zone = zones[p % 2]
            x, y = BOXES[zone]
            for i in range(n):
                rows.append((t0 + timedelta(seconds=i / fps), cam, i, p + 1, zone, x + p * 5, y, 0.5))
    every = seconds / (intrusions + 1)
    for k in range(intrusions):
        start = int((k + 1) * every * fps)
        for i in range(start, min(start + int(2 * fps), n)):
            rows.append((t0 + timedelta(seconds=i / fps), "CAM01", i, 1000 + k, "Z04", *BOXES["Z04"], 0.5))
    frame = pl.DataFrame(
        rows,
        schema=["ts", "camera_id", "frame_idx", "track_id", "zone_id", "x", "y", "motion_score"],
        orient="row",
    )
    return (
        frame.with_columns(
            pl.col("ts").dt.replace_time_zone("UTC"),
            class_id=pl.lit(0),
            confidence=pl.lit(0.9),
            w=pl.lit(60.0),
            h=pl.lit(120.0),
            worker_id=pl.lit(None, pl.String),
            batch_id=pl.lit("bench"),
        )
        .select(DETECTION_SCHEMA.names())
        .cast(dict(DETECTION_SCHEMA))
    )


def run(backend: str, url: str, site_path: Path, seconds: float, intrusions: int) -> dict:
    site = load_site(site_path)
    receiver = Receiver()
    os.environ[ENV] = receiver.url
    with connect(url, site) as wh:
        wh.setup()
    commits: dict[bytes, float] = {}
    with PrivateMosquitto() as broker:
        prefix = f"b{uuid.uuid4().hex[:8]}"
        source = MqttSource(f"{broker.url}/{prefix}/+/detections", client_id=f"bench-{prefix}")
        lander = StreamLander(url, site)
        alerts = StreamAlerts(url, site, lander)

        def on_commit(batch, outcome, committed):
            for m in batch:
                commits.setdefault(m.payload, committed)
            alerts(batch, outcome, committed)

        consumer = StreamConsumer(source, lander, BatchPolicy(seconds=0.2), on_commit=on_commit)
        alerts.start()
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        time.sleep(1.5)
        t0 = datetime.now(UTC) + timedelta(seconds=1)
        data = frames(t0, seconds, intrusions)
        encoded = encode_frames(data, topic_prefix=prefix).sort("ts")
        first_intrusion = {}  # payload -> track id, the first frame each intruder appears in
        for k in range(intrusions):
            ts = data.filter(pl.col("track_id") == 1000 + k)["ts"].min()
            first_intrusion[ts] = 1000 + k
        published: dict[int, float] = {}
        stamps: dict[bytes, float] = {}
        with Publisher(port=broker.port) as pub:
            for ts, topic, payload, cam in encoded.select("ts", "topic", "payload", "camera_id").iter_rows():
                delay = ts.timestamp() - time.time()
                if delay > 0:
                    time.sleep(delay)
                body = payload.encode()
                stamps[body] = time.time()
                pub.publish([(topic, body)])
                if cam == "CAM01" and ts in first_intrusion:
                    published[first_intrusion[ts]] = stamps[body]
            pub.wait()
        deadline = time.monotonic() + 30
        while len(receiver.arrivals) < intrusions and time.monotonic() < deadline:
            time.sleep(0.1)
        consumer.stop()
        thread.join(60)
        alerts.close()
        receiver.server.shutdown()
    alert_lat = np.array([receiver.arrivals[t] - published[t] for t in published if t in receiver.arrivals])
    commit_lat = np.array([commits[p] - stamps[p] for p in stamps if p in commits])

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q))

    return {
        "backend": backend,
        "delivered": len(alert_lat),
        "intrusions": intrusions,
        "alert_p50": pct(alert_lat, 50),
        "alert_p99": pct(alert_lat, 99),
        "commit_p50": pct(commit_lat, 50),
        "commit_p99": pct(commit_lat, 99),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--intrusions", type=int, default=16)
    ap.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument(
        "--all-rules",
        action="store_true",
        help="also evaluate the demo site's idle, zone_overflow and camera_down rules",
    )
    args = ap.parse_args()
    doc = yaml.safe_load((ROOT / "site.yaml").read_text())
    rules = [
        {
            "name": "robot-cell",
            "type": "restricted_zone_entry",
            "zone_types": ["restricted"],
            "severity": "critical",
            "channels": ["hook"],
        }
    ]
    if args.all_rules:  # the demo site's other live rules evaluated too (idle over 180 s reads the most)
        rules += [
            {**r, "channels": []}
            for r in doc["alerts"]["rules"]
            if r["type"] in ("idle", "zone_overflow", "camera_down")
        ]
    doc["alerts"] = {
        "channels": [{"name": "hook", "type": "webhook", "url_env": ENV, "rate_limit_per_minute": 1000}],
        "rules": rules,
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        site_path = Path(tmp) / "site.yaml"
        site_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        results.append(
            run("duckdb", f"duckdb:///{tmp}/bench.duckdb", site_path, args.seconds, args.intrusions)
        )
        name = f"sightline_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            results.append(
                run(
                    "postgres",
                    args.pg_admin_url.rsplit("/", 1)[0] + f"/{name}",
                    site_path,
                    args.seconds,
                    args.intrusions,
                )
            )
        finally:
            with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print("| backend | delivered | alert p50 s | alert p99 s | commit p50 s | commit p99 s | p50 ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['backend']} | {r['delivered']}/{r['intrusions']} | {r['alert_p50']:.2f} | "
            f"{r['alert_p99']:.2f} | {r['commit_p50']:.2f} | {r['commit_p99']:.2f} | "
            f"{r['alert_p50'] / r['commit_p50']:.1f}x |"
        )


if __name__ == "__main__":
    main()
