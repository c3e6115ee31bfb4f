"""Streaming ingestion: detection messages (MQTT) and live cameras landed continuously, exactly once.

- `payloads`: our JSON and DeepStream's minimal schema -> validated rows (vectorised) + dead letters.
- `landing`: one micro-batch -> `append_batch`, made idempotent per message (replays change nothing).
- `mqtt`: QoS 1, persistent session, acknowledgements deferred until commit, bounded in-flight window.
- `consumer`: the loop (micro-batches by rows or seconds, retries while the warehouse is down, clean stop).
- `video`: `ingestion.video.VideoPipeline` run live from RTSP or a file, stoppable.
- `encode`, `publish`, `broker`: producing messages, a QoS 1 publisher, broker settings / a private broker.

Entry point: `sightline stream` (orchestration/cli/stream.py).
"""
