"""Stream payload parsing and idempotent micro-batch landing (no broker needed here)."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, date, datetime
from datetime import time as clock

import polars as pl
import pytest
from payload_support import GOOD, frame_payload
from polars.testing import assert_frame_equal

from ingestion.schema import DETECTION_SCHEMA
from ingestion.simulate import simulate
from ingestion.site import Site, StreamSettings
from ingestion.stream.encode import encode_frames
from ingestion.stream.landing import StreamLander
from ingestion.stream.payloads import MESSAGE_COLUMN, DeepStreamDefaults, parse_messages
from ingestion.warehouse import connect

VALUE_COLUMNS = [c for c in DETECTION_SCHEMA.names() if c != "batch_id"]
KEY = ["camera_id", "ts", "track_id"]
NOW = datetime(2025, 1, 16, tzinfo=UTC)  # the simulated data below is "recent" relative to this clock


@pytest.fixture(scope="module")
def site(site) -> Site:
    """The demo site, accepting the simulated 2025 frames (stream.max_lateness_days: 10 years) where a
    test lands through StreamLander, whose clock is the real one."""
    return dataclasses.replace(site, stream=StreamSettings(max_lateness_days=3650))


@pytest.fixture(scope="module")
def sim_rows(site) -> pl.DataFrame:
    return simulate(
        site,
        start=date(2025, 1, 15),
        cameras=["CAM01", "CAM03"],
        fps=5.0,
        noise="realistic",
        seed=4,
        window=(clock(8), clock(8, 1)),
    ).detections


def _payloads(frames: pl.DataFrame) -> list[bytes]:
    return [p.encode() for p in frames["payload"]]


@pytest.mark.parametrize("with_zone", [True, False])
def test_our_json_round_trips_the_simulator_rows(site, sim_rows, with_zone):
    payloads = _payloads(encode_frames(sim_rows, with_zone=with_zone))
    parsed = parse_messages(payloads, site)
    assert parsed.rejected == []
    assert_frame_equal(parsed.detections, parse_messages(payloads, site, fast=False).detections)
    # Zones left out are assigned from the site's polygons, which is where the simulator put people.
    expected = sim_rows.select(VALUE_COLUMNS).sort(KEY)
    assert_frame_equal(parsed.detections.select(VALUE_COLUMNS).sort(KEY), expected)


def test_deepstream_minimal_schema(site):
    # The vehicle example of NVIDIA's nvmsgconv (secondary attributes end with the confidence), pretty
    # printed as nvmsgconv does, and a person without attributes.
    vehicle = json.dumps(
        {
            "version": "4.0",
            "id": 1234,
            "@timestamp": "2018-04-11T04:59:59.828Z",
            "sensorId": "CAM02",
            "objects": ["957|1834|150|1918|215|Vehicle|#|sedan|Bugatti|M|blue|CA 444|California|0.8"],
        },
        indent=2,
    )
    person = json.dumps(
        {
            "version": "4.0",
            "id": "17",
            "@timestamp": "2018-04-11T05:00:00.000+07:00",
            "sensorId": "CAM01",
            "objects": ["3|100.5|200|150.5|420|Person"],
        }
    )
    empty = json.dumps(
        {
            "version": "4.0",
            "id": 18,
            "@timestamp": "2018-04-11T05:00:00.2Z",
            "sensorId": "CAM01",
            "objects": [],
        }
    )
    parsed = parse_messages(
        [vehicle.encode(), person.encode(), empty.encode()],
        site,
        DeepStreamDefaults(confidence=1.0, motion_score=0.25),
    )
    assert parsed.rejected == [] and parsed.valid_messages == 3
    got = parsed.detections.sort("track_id").to_dicts()
    assert [(r["track_id"], r["class_id"], r["frame_idx"], r["camera_id"]) for r in got] == [
        (3, 0, 17, "CAM01"),
        (957, 2, 1234, "CAM02"),
    ]
    assert got[0]["ts"] == datetime(2018, 4, 10, 22, 0, tzinfo=UTC)
    assert got[1]["ts"] == datetime(2018, 4, 11, 4, 59, 59, 828000, tzinfo=UTC)
    assert (got[0]["x"], got[0]["y"], got[0]["w"], got[0]["h"]) == (100.5, 200, 50, 220)
    assert (got[1]["x"], got[1]["w"], got[1]["h"]) == (1834, 84, 65)
    assert got[1]["confidence"] == pytest.approx(0.8) and got[0]["confidence"] == 1.0
    assert got[0]["motion_score"] == 0.25
    assert got[0]["zone_id"] == "Z01"  # bottom-centre (125.5, 420) lies in Z01's polygon


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "unrecognised payload"),
        (json.dumps({"camera": "CAM01"}).encode(), "unrecognised payload"),
        (frame_payload(camera_id="CAM99"), "camera_id 'CAM99' is not a camera of the site"),
        (frame_payload(ts="2025-01-15T01:00:00+25:00"), "has an invalid UTC offset"),
        (frame_payload(ts="yesterday"), "ts:"),
        (frame_payload(frame_idx=-1), "frame_idx: must be an integer 0..2^53"),
        (frame_payload(detections="none"), "detections must be a list"),
        (frame_payload(det={"track_id": "seven"}), "track_id must be a number"),
        (frame_payload(det={"track_id": 7.5}), "track_id 7.5 must be an integer"),
        (frame_payload(det={"confidence": 1.5}), "confidence 1.5 outside [0, 1]"),
        (frame_payload(det={"motion_score": None}), "motion_score is missing"),
        (frame_payload(det={"w": 0}), "bbox size"),
        (frame_payload(det={"zone_id": "Z05"}), "zone_id 'Z05' is not a zone of camera CAM01"),
        (frame_payload(det={"worker_id": 5}), "worker_id must be a string or null"),
        (frame_payload(det={"class_id": True}), "class_id must be a number"),
        (frame_payload(det={"x": "12"}), "x must be a number"),
        (json.dumps(GOOD | {"detections": GOOD["detections"] * 2}).encode(), "appears twice in one frame"),
        (
            json.dumps(
                {
                    "@timestamp": "2025-01-15T01:00:00Z",
                    "sensorId": "CAM01",
                    "id": 1,
                    "objects": ["1|2|3|4|5|unicorn"],
                }
            ).encode(),
            "unknown label 'unicorn'",
        ),
        (
            json.dumps(
                {"@timestamp": "2025-01-15T01:00:00Z", "sensorId": "CAM01", "id": 1, "objects": ["1|2|3"]}
            ).encode(),
            "object must be 'trackingId|left|top|right|bottom|label",
        ),
    ],
)
@pytest.mark.parametrize("fast", [True, False])
def test_malformed_messages_are_rejected_with_a_reason_and_the_raw_payload(site, payload, reason, fast):
    good = json.dumps(GOOD).encode()
    parsed = parse_messages([good, payload, good], site, fast=fast)
    assert len(parsed.rejected) == 1
    bad = parsed.rejected[0]
    assert bad.message == 1 and reason in bad.reason, bad.reason
    assert bad.payload == payload.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    assert parsed.detections[MESSAGE_COLUMN].unique().sort().to_list() == [0, 2]  # neighbours unaffected


@pytest.mark.parametrize(
    "payload",
    [
        frame_payload(det={"extra": "\udcff"}).replace(
            b'"\\udcff"', b'"\xff"'
        ),  # not UTF-8, in a key nobody reads
        frame_payload(
            det={"worker_id": "\ud800"}
        ),  # lone surrogates (json.loads takes them, msgspec does not)
        frame_payload(det={"zone_id": "Z01\udfff"}),
        frame_payload(ts="2025-01-15T01:00:00\ud800Z"),
        frame_payload(det={"unknown": "\ud800"}),
        json.dumps({"@timestamp": "\ud800", "sensorId": "CAM01", "id": 1, "objects": []}).encode(),
        json.dumps(
            {
                "@timestamp": "2025-01-15T01:00:00Z",
                "sensorId": "CAM01",
                "id": 1,
                "objects": ["1|2|3|4|5|Person\ud800"],
            }
        ).encode(),
        b"\xef\xbb\xbf" + frame_payload(),  # a UTF-8 byte order mark
        frame_payload(det={"x": float("nan")}),  # NaN / Infinity literals (json.loads reads them)
        frame_payload(det={"y": float("inf")}),
        frame_payload(det={"x": 1}).replace(b'"x": 1', b'"x": 1e400'),  # beyond float range
        frame_payload(frame_idx="8"),  # a digit string (nvmsgconv writes frame numbers so)
        json.dumps(GOOD, indent=2).encode("utf-16"),  # json.loads detects UTF-16
    ],
)
def test_what_the_typed_decoder_reads_differently_gets_the_strict_verdict(site, payload):
    """The fast path (msgspec) leaves every message it cannot read exactly as `json.loads` does to the
    strict path: same rows, same reasons, never an exception (a lone surrogate is no text for UTF-8)."""
    good = json.dumps(GOOD).encode()
    fast, strict = (parse_messages([good, payload], site, fast=f) for f in (True, False))
    assert [(r.message, r.reason) for r in fast.rejected] == [(r.message, r.reason) for r in strict.rejected]
    assert_frame_equal(fast.detections, strict.detections)


def test_redelivered_messages_in_new_batches_change_nothing(site, sim_rows, warehouse_url):
    """The crash-between-commit-and-ack case: the same messages come back mixed with new ones."""
    valid = _payloads(encode_frames(sim_rows))
    bad = [b"garbage %d" % i for i in range(5)]
    conflicting = json.dumps(json.loads(valid[3]) | {"frame_idx": 999_999}).encode()  # same keys, new values
    rng = random.Random(1)
    messages = valid + bad
    rng.shuffle(messages)
    lander = StreamLander(warehouse_url, site)
    try:
        half = len(messages) // 2
        lander.land(messages[:half])
        lander.land(messages[:half])  # retried as is: the ledger skips it
        redelivered = messages[half // 2 :] + messages[:10] + [conflicting, conflicting]
        rng.shuffle(redelivered)
        outcomes = [lander.land(redelivered[i : i + 97]) for i in range(0, len(redelivered), 97)]
    finally:
        lander.close()
    # Counted by the outcomes: rows of messages landed before are skipped as duplicates, the rest land.
    landed_first = set(messages[:half]) & set(valid)
    rows_of = {m: len(json.loads(m)["detections"]) for m in valid}
    assert sum(o.duplicate_rows for o in outcomes) == sum(rows_of[m] for m in set(redelivered) & landed_first)
    assert sum(o.landed for o in outcomes) == sum(rows_of[m] for m in set(messages[half:]) & set(valid))
    with connect(warehouse_url, site) as wh:
        landed = wh.query(f"SELECT {', '.join(VALUE_COLUMNS)} FROM raw.detections").cast(
            {c: DETECTION_SCHEMA[c] for c in VALUE_COLUMNS}
        )
        rejected = wh.query("SELECT payload, reason FROM raw.rejected_detections")
    assert_frame_equal(landed.sort(KEY), sim_rows.select(VALUE_COLUMNS).sort(KEY))
    assert sorted(rejected["payload"].to_list()) == sorted([b.decode() for b in bad] + [conflicting.decode()])
    conflict_reason = rejected.filter(pl.col("payload") == conflicting.decode())["reason"][0]
    assert conflict_reason.startswith("conflicting detection: track_id")
