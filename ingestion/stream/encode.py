"""Detections -> stream messages, for producers (our vision workers, the simulator, demos, tests, bench).

The inverse of `ingestion.stream.payloads`: one message per (camera, frame), in our JSON or in DeepStream's
minimal schema, built columnar with polars (JSON encoding included) rather than row by row.
"""

from __future__ import annotations

import polars as pl

from ingestion.stream.payloads import COCO_NAMES

DEFAULT_TOPIC = "sightline/{camera_id}/detections"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
_DETECTION_FIELDS = (
    "track_id",
    "class_id",
    "confidence",
    "x",
    "y",
    "w",
    "h",
    "motion_score",
    "zone_id",
    "worker_id",
)


def _topic(prefix: str) -> pl.Expr:
    return pl.format(f"{prefix}/{{}}/detections", pl.col("camera_id"))


def encode_frames(
    detections: pl.DataFrame,
    *,
    topic_prefix: str = "sightline",
    with_zone: bool = True,
) -> pl.DataFrame:
    """One `sightline.detections` message per frame: columns camera_id, ts, frame_idx, topic, payload (bytes
    as str). `with_zone=False` leaves zone_id out so the consumer assigns it from the site's zones."""
    fields = [f for f in _DETECTION_FIELDS if with_zone or f != "zone_id"]
    frames = (
        detections.sort("camera_id", "ts", "track_id")
        .group_by("camera_id", "ts", "frame_idx", maintain_order=True)
        .agg(pl.struct(fields).alias("detections"))
    )
    return frames.select(
        "camera_id",
        "ts",
        "frame_idx",
        topic=_topic(topic_prefix),
        payload=pl.struct(
            pl.col("camera_id"),
            pl.col("ts").dt.strftime(_TS_FORMAT),
            pl.col("frame_idx"),
            pl.col("detections"),
        ).struct.json_encode(),
    )


def encode_deepstream_minimal(detections: pl.DataFrame, *, topic_prefix: str = "sightline") -> pl.DataFrame:
    """One DeepStream minimal-schema message per frame (label from class_id, confidence as an attribute)."""
    label = (
        pl.col("class_id")
        .cast(pl.Int64)
        .replace_strict(dict(enumerate(COCO_NAMES)), default="unknown", return_dtype=pl.String)
    )
    objects = pl.format(
        "{}|{}|{}|{}|{}|{}|#|{}",
        pl.col("track_id"),
        pl.col("x"),
        pl.col("y"),
        pl.col("x") + pl.col("w"),
        pl.col("y") + pl.col("h"),
        label,
        pl.col("confidence"),
    )
    frames = (
        detections.sort("camera_id", "ts", "track_id")
        .group_by("camera_id", "ts", "frame_idx", maintain_order=True)
        .agg(objects.alias("objects"))
    )
    return frames.select(
        "camera_id",
        "ts",
        "frame_idx",
        topic=_topic(topic_prefix),
        payload=pl.struct(
            pl.lit("4.0").alias("version"),
            pl.col("frame_idx").alias("id"),
            pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("@timestamp"),
            pl.col("camera_id").alias("sensorId"),
            pl.col("objects"),
        ).struct.json_encode(),
    )
