"""`sightline stream`: land a live detection stream (MQTT) or a live camera (RTSP / video file)."""

from __future__ import annotations

import argparse

from orchestration.cli.options import add_site_option, add_warehouse_option

EPILOG = """\
MQTT (--source mqtt://host:1883/topic/filter) accepts our JSON (one frame per message) and DeepStream's
minimal schema; see ingestion/stream/payloads.py. Topics are <prefix>/<camera_id>/detections: a message
for another camera than its topic's is a dead letter, as is one outside site.yaml's `stream:` bounds
(timestamps within [now - max_lateness_days, now + max_future_seconds], max_message_bytes). On a DuckDB
file the connection is released between micro-batches so Dagster and transforms can open it meanwhile.
Delivery is exactly-once: QoS 1 in a persistent session (keep --client-id stable across restarts),
acknowledged only after the micro-batch commits, replays made harmless by the landing checks.
Broker credentials: SIGHTLINE_MQTT_USERNAME / SIGHTLINE_MQTT_PASSWORD.
A video source (rtsp://..., or a file) needs --camera and runs the vision pipeline live.
Stops cleanly on SIGTERM / Ctrl-C (flush, commit, exit 0); exit 75 = warehouse down, nothing lost.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stream",
        help="land an MQTT detection stream or a live camera continuously",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--source",
        required=True,
        help="mqtt://host[:port]/topic (e.g. mqtt://127.0.0.1:1883/sightline/+/detections), "
        "rtsp://... or a video file",
    )
    add_warehouse_option(p)
    add_site_option(p)
    p.add_argument("--camera", help="camera id of a video source")
    p.add_argument("--batch-rows", type=int, default=5000, help="land when this many detections wait (5000)")
    p.add_argument(
        "--batch-seconds", type=float, default=1.0, help="...or when the oldest waits this long (1)"
    )
    p.add_argument(
        "--allowed-lateness",
        type=float,
        default=60.0,
        help="seconds behind a camera's watermark before a row's day is marked for rebuild (60)",
    )
    p.add_argument(
        "--client-id",
        help="MQTT client id = persistent session name (default: derived from the "
        "source; keep it stable across restarts)",
    )
    p.add_argument(
        "--receive-maximum",
        type=int,
        default=2000,
        help="unacknowledged messages the broker may send us: the memory bound (2000)",
    )
    p.add_argument(
        "--receive-maximum-bytes",
        type=int,
        default=64 << 20,
        help="...and payload bytes received but not yet landed (64 MiB); a larger payload than "
        "site.yaml stream.max_message_bytes is dead-lettered unparsed",
    )
    p.add_argument(
        "--session-expiry",
        type=int,
        default=86_400,
        help="seconds the broker keeps our session while we are down (86400)",
    )
    p.add_argument(
        "--stop-when-idle",
        type=float,
        default=None,
        help="exit after this many seconds without messages (drain a backlog, then stop)",
    )
    p.add_argument(
        "--detector",
        default="motion",
        choices=["motion", "yolo"],
        help="video sources: the detector (motion needs no weights; yolo needs --weights)",
    )
    p.add_argument("--weights", help="video sources: YOLO weights file (.pt)")
    p.add_argument("--fps", type=float, default=5.0, help="video sources: frames processed per second (5)")
    p.add_argument(
        "--deepstream-motion-score",
        type=float,
        default=0.0,
        help="motion_score for DeepStream minimal messages, which carry none (0.0)",
    )
    p.add_argument(
        "--no-alerts",
        dest="alerts",
        action="store_false",
        help="do not evaluate the site's live alert rules or deliver alerts from this process",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal
    from datetime import timedelta

    from ingestion.site import load_site
    from ingestion.stream.consumer import EXIT_WAREHOUSE_DOWN, WarehouseUnavailable
    from ingestion.warehouse import resolve_url

    for name in ("batch_rows", "receive_maximum", "receive_maximum_bytes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.batch_seconds <= 0 or args.allowed_lateness < 0:
        raise ValueError("--batch-seconds must be > 0 and --allowed-lateness >= 0")
    site = load_site(args.site)
    url = resolve_url(args.warehouse)
    lateness = timedelta(seconds=args.allowed_lateness)
    if not args.source.startswith("mqtt://"):
        from ingestion.stream.video import stream_video

        if not args.camera:
            raise ValueError("a video source needs --camera CAMxx (one of the site's cameras)")
        # Live frames carry the wall clock: never late, so no lateness applies. Chunks are >= 10 s.
        return stream_video(
            args.source,
            args.camera,
            url,
            site,
            detector=args.detector,
            weights=args.weights,
            fps=args.fps,
            batch_seconds=args.batch_seconds,
        )

    from ingestion.stream.consumer import BatchPolicy, StreamConsumer
    from ingestion.stream.landing import StreamLander
    from ingestion.stream.mqtt import MqttSource
    from ingestion.stream.payloads import DeepStreamDefaults

    source = MqttSource(
        args.source,
        client_id=args.client_id,
        receive_maximum=args.receive_maximum,
        session_expiry_seconds=args.session_expiry,
        max_queued_bytes=args.receive_maximum_bytes,
        max_message_bytes=site.stream.max_message_bytes,
    )
    lander = StreamLander(
        url,
        site,
        allowed_lateness=lateness,
        deepstream_defaults=DeepStreamDefaults(motion_score=args.deepstream_motion_score),
    )
    policy = BatchPolicy(
        rows=args.batch_rows,
        seconds=args.batch_seconds,
        max_messages=max(1, args.receive_maximum // 2),
        max_bytes=max(1, args.receive_maximum_bytes // 2),
    )
    alerts = None
    if args.alerts and site.alerts and site.alerts.rules:
        from ingestion.alerts.live import StreamAlerts

        alerts = StreamAlerts(url, site, lander)  # live rules after each commit; delivery in a thread
        alerts.start()
    consumer = StreamConsumer(source, lander, policy, stop_when_idle=args.stop_when_idle, on_commit=alerts)
    consumer.install_signal_handlers()
    try:
        consumer.run()
    except WarehouseUnavailable as exc:
        print(f"sightline stream: {exc}")
        return EXIT_WAREHOUSE_DOWN
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if alerts:
            alerts.close()
    return 0
