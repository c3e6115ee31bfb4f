"""Issue 11, hostile input: against a real Mosquitto, PostgreSQL and DuckDB, each row shown fixed.

- The stream under fire (rows 1, 4, 5, 7, 11): 1,000 valid frames with the poison messages of the issue
  mixed in, published while `sightline stream` runs. Afterwards the consumer is still alive, every valid row
  landed exactly once, every poison message is exactly one dead letter with its reason, no watermark is
  past now. On DuckDB the test process reads the file while the stream runs and holds its lock for a while.
- A property-based fuzz test of the payload parser: any bytes in, rows or dead letters out, never an error.
- Byte-bounded receive window, oversized payloads cut on receipt (row 5).
- JSON-lines and stream timestamps: ISO-8601 per value, no offset = site-local time (row 8).
- Detectors without the vision extra, Ultralytics offline (row 12).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from payload_support import GOOD, frame, frame_payload
from polars.testing import assert_frame_equal

from ingestion.detection_logs import ingest_detection_log
from ingestion.schema import DETECTION_SCHEMA
from ingestion.simulate import simulate
from ingestion.site import Site, SiteConfigError, StreamSettings, parse_site
from ingestion.stream.broker import PrivateMosquitto
from ingestion.stream.encode import encode_frames
from ingestion.stream.mqtt import MqttSource
from ingestion.stream.payloads import (
    MAX_STRING_CHARS,
    MESSAGE_COLUMN,
    oversized_stub,
    parse_messages,
    payload_text,
)
from ingestion.stream.publish import Publisher
from ingestion.warehouse import connect

VALUE_COLUMNS = [c for c in DETECTION_SCHEMA.names() if c != "batch_id"]
KEY = ["camera_id", "ts", "track_id"]
CLI = [sys.executable, "-c", "import sys; from orchestration.cli import main; sys.exit(main(sys.argv[1:]))"]
REFUSED_WORKER = "refused-by-the-warehouse"  # a rule of the warehouse's that the stream's checks don't know

# Hypothesis caches (constants, unicode tables) in a temporary directory, not .hypothesis/ in the repo; it
# must be set before the first test runs (database=None on the fuzz test keeps no examples either).
_HYPOTHESIS_HOME = tempfile.TemporaryDirectory(prefix="sightline-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME.name)


@pytest.fixture(scope="module")
def broker():
    with PrivateMosquitto() as b:
        yield b


# --- the stream under fire -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Poison:
    kind: str
    topic_camera: str
    payload: bytes
    reason: str  # in its dead letter's reason

    @property
    def stored(self) -> str:
        """The payload text its dead letter keeps (a stub of an oversized one)."""
        too_big = len(self.payload) > 262_144
        return payload_text(oversized_stub(self.payload) if too_big else self.payload)


def valid_frames(site: Site, now: datetime, n: int = 1000) -> tuple[pl.DataFrame, pl.DataFrame, datetime]:
    """`n` simulated frames of four cameras moved to the minutes before `now`: (rows, frames, newest ts)."""
    rows = simulate(
        site, start=date(2025, 1, 15), fps=5.0, noise="realistic", seed=21, window=(clock(9), clock(9, 1))
    ).detections
    frames = rows.select("camera_id", "ts").unique().sort("ts", "camera_id").head(n)
    rows = rows.join(frames, on=["camera_id", "ts"], how="semi")
    shift = timedelta(seconds=int((now - timedelta(minutes=2) - rows["ts"].max()).total_seconds()))
    rows = rows.with_columns(pl.col("ts") + shift)
    return rows, frames, rows["ts"].max()


def encode(rows: pl.DataFrame, prefix: str) -> list[tuple[str, bytes]]:
    with_zone = encode_frames(rows.filter(pl.col("camera_id").is_in(["CAM01", "CAM03"])), topic_prefix=prefix)
    without = encode_frames(
        rows.filter(pl.col("camera_id").is_in(["CAM02", "CAM04"])), topic_prefix=prefix, with_zone=False
    )
    return [
        (t, p.encode())
        for t, p in pl.concat([with_zone, without]).sort("ts").select("topic", "payload").iter_rows()
    ]


def poison_messages(template: dict, now: datetime) -> list[Poison]:
    """The issue's poison messages, each distinct. `template`: a valid frame of CAM01."""
    counter = iter(range(10_000_000, 20_000_000))

    def doc(**changes) -> dict:  # a new frame index and track id: no key shared with the valid frames
        k = next(counter)
        det = template["detections"][0] | {"track_id": k} | changes.pop("det", {})
        return template | {"frame_idx": k, "detections": [det]} | changes

    def msg(kind: str, reason: str, d: dict | bytes, topic_camera: str = "CAM01") -> Poison:
        return Poison(kind, topic_camera, d if isinstance(d, bytes) else json.dumps(d).encode(), reason)

    def iso(ts: datetime) -> str:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    deep = b"[" * 100_000 + b"]" * 100_000
    out = [
        # row 1: each of these stopped the consumer, forever (redelivered on restart)
        msg("NUL in a string", "worker_id contains a NUL character", doc(det={"worker_id": "w\x00x"})),
        msg("JSON nested 100k deep", "not valid JSON", deep),
        msg(
            "JSON nested 100k deep inside a frame",
            "not valid JSON",
            json.dumps(doc()).encode().replace(b'"detections": [', b'"detections": [' + deep + b", "),
        ),
        msg("integer >= 2^63 (frame_idx)", "frame_idx: must be an integer 0..2^53", doc(frame_idx=2**63)),
        msg("integer >= 2^63 (track_id)", "track_id", doc(det={"track_id": 2**63})),
        msg("integer < -2^63 (class_id)", "class_id", doc(det={"class_id": -(2**64)})),
        msg("ts 0001-01-01Z", "ts: '0001-01-01Z' is not an ISO-8601 date-time", doc(ts="0001-01-01Z")),
        msg("ts 0001-01-01T00:00:00Z", "is outside 1970-01-01..2199-12-31", doc(ts="0001-01-01T00:00:00Z")),
        msg("ts 9999-12-31T23:00Z", "is outside 1970-01-01..2199-12-31", doc(ts="9999-12-31T23:00Z")),
        # a message every check passes but the warehouse refuses: its batch is bisected to isolate it
        msg("refused by the warehouse", "landing failed:", doc(det={"worker_id": REFUSED_WORKER})),
        # row 4: timestamps that would poison the watermarks
        msg("an hour ahead", "is in the future", doc(ts=iso(now + timedelta(hours=1)))),
        msg(
            "eight days old",
            "is older than stream.max_lateness_days (7)",
            doc(ts=iso(now - timedelta(days=8))),
        ),
        # row 5: size
        msg(
            "300 KB payload",
            "exceeds stream.max_message_bytes (262144)",
            doc(det={"worker_id": "w" * 300_000}),
        ),
        msg(
            "4 MB payload",
            "exceeds stream.max_message_bytes (262144)",
            doc(det={"worker_id": "x" * 4_000_000}),
        ),
        msg(
            "long worker_id",
            f"worker_id longer than {MAX_STRING_CHARS} characters",
            doc(det={"worker_id": "y" * 10_000}),
        ),
        # row 7: CAM02's data on CAM01's topic
        msg("camera differs from its topic", "differs from the camera of topic", doc(camera_id="CAM02")),
    ]
    # row 4: four messages dated 2099, and 60 spanning 1990-2049 (one of the day-partition floods)
    out += [msg("dated 2099", "is in the future", doc(ts=f"2099-0{k + 1}-01T00:00:00Z")) for k in range(4)]
    for year in range(1990, 2050):
        ts = datetime(year, 6, 1, tzinfo=UTC)
        reason = "is in the future" if ts > now else "is older than stream.max_lateness_days"
        out.append(msg(f"dated {year}", reason, doc(ts=iso(ts))))
    assert len({p.payload for p in out}) == len(out)
    return out


def add_warehouse_refusal(url: str, site: Site) -> None:
    """A CHECK constraint on raw.detections the stream's checks do not mirror (DuckDB cannot add one to an
    existing table: recreate the still empty table with it)."""
    check = f"CHECK (worker_id IS DISTINCT FROM '{REFUSED_WORKER}')"
    with connect(url, site) as wh:
        wh.require_setup()
        if wh.backend == "postgres":
            wh.conn.execute(f"ALTER TABLE raw.detections ADD CONSTRAINT test_refusal {check}")
            return
        create = wh.con.execute(
            "SELECT sql FROM duckdb_tables() WHERE schema_name = 'raw' AND table_name = 'detections'"
        ).fetchone()[0]
        wh.con.execute("DROP TABLE raw.detections")
        wh.con.execute(create.rstrip().removesuffix(";").removesuffix(")") + f", {check})")


class Consumer:
    """`sightline stream` as a child process (the test only talks to it through MQTT and the warehouse)."""

    def __init__(self, tmp: Path, *args: str):
        self.log = tmp / f"consumer-{uuid.uuid4().hex[:6]}.log"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*CLI, "-v", "stream", *args], stdout=self._out, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            assert self.proc.poll() is None, f"consumer exited {self.proc.returncode}:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {pattern!r} in {timeout} s:\n{self.text()[-3000:]}"
            time.sleep(0.05)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            self._out.close()


def counts(url: str, site: Site) -> tuple[int, int]:
    with connect(url, site) as wh:
        n = wh.query("SELECT count(*) AS n FROM raw.detections")["n"][0]
        r = wh.query("SELECT count(*) AS n FROM raw.rejected_detections")["n"][0]
    return int(n), int(r)


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_poison_messages_mixed_into_a_live_stream(backend, broker, site, tmp_path, request):
    url = (
        f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        if backend == "duckdb"
        else request.getfixturevalue("set_up_pg_url")
    )
    prefix = f"h{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    rows, frames, newest = valid_frames(site, now)
    valid = encode(rows, prefix)
    assert len(valid) == frames.height == 1000
    template = json.loads(next(p for t, p in valid if "/CAM01/" in t))
    poison = poison_messages(template, now)
    messages = valid + [(f"{prefix}/{p.topic_camera}/detections", p.payload) for p in poison]
    random.Random(11).shuffle(messages)
    add_warehouse_refusal(url, site)

    consumer = Consumer(
        tmp_path,
        "--source",
        f"{broker.url}/{prefix}/+/detections",
        "--warehouse",
        url,
        "--client-id",
        f"consumer-{prefix}",
        "--batch-seconds",
        "0.3",
    )
    consumer.wait_for("subscribed")
    reads: list[tuple[int, int]] = []  # (rows, dead letters) seen by this process while the stream ran
    with Publisher(port=broker.port) as publisher:
        sender = threading.Thread(target=publisher.publish, args=(messages,), kwargs={"per_second": 300})
        sender.start()
        if backend == "duckdb":  # row 11: hold the file for a while; the consumer must wait, not die
            deadline = time.monotonic() + 60
            while counts(url, site)[0] == 0:
                assert time.monotonic() < deadline and consumer.proc.poll() is None, consumer.text()[-3000:]
                time.sleep(0.1)
            with connect(url, site) as wh:
                held = wh.query("SELECT count(*) AS n FROM raw.detections")["n"][0]
                time.sleep(2.0)
            assert consumer.proc.poll() is None
            reads.append((int(held), -1))
        sender.join()
        deadline = time.monotonic() + 120
        while (seen := counts(url, site)) != (rows.height, len(poison)) and time.monotonic() < deadline:
            reads.append(seen)
            assert consumer.proc.poll() is None, consumer.text()[-3000:]
            if len(reads) > 150 and len(set(reads[-150:])) == 1:  # nothing moved for 30 s: see what is wrong
                break
            time.sleep(0.2)
        publisher.wait()

    # The consumer survived all of it and is still running.
    assert consumer.proc.poll() is None, consumer.text()[-3000:]
    if backend == "duckdb":  # row 11: another process read the file while the stream was landing into it
        assert any(0 < n < rows.height for n, _ in reads), reads
    with connect(url, site) as wh:
        landed = wh.query(f"SELECT {', '.join(VALUE_COLUMNS)} FROM raw.detections").cast(
            {c: DETECTION_SCHEMA[c] for c in VALUE_COLUMNS}
        )
        dead = wh.query("SELECT source, payload, reason FROM raw.rejected_detections")
        ledger = wh.query("SELECT sum(row_count) AS n FROM raw.ingest_batches WHERE source = 'stream'")["n"][
            0
        ]
        watermarks = wh.query("SELECT camera_id, max_event_ts FROM raw.camera_watermarks")
        partitions = (
            set()
            if wh.backend != "postgres"
            else set(
                wh.query(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'raw.detections'::regclass"
                )["relname"]
            )
        )
    # Every valid row landed exactly once (rows lost: 0), and the ledger adds up.
    assert_frame_equal(
        landed.sort(KEY),
        rows.select(VALUE_COLUMNS).cast({c: DETECTION_SCHEMA[c] for c in VALUE_COLUMNS}).sort(KEY),
    )
    assert ledger == rows.height
    # Every poison message is exactly one dead letter, with its reason.
    unexpected = dead.filter(~pl.col("payload").is_in([p.stored for p in poison]))
    assert unexpected.height == 0, unexpected.select("reason", pl.col("payload").str.slice(0, 300)).rows()
    assert dead.height == len(poison) and set(dead["source"]) == {"stream"}
    reasons = dict(zip(dead["payload"], dead["reason"], strict=True))
    for p in poison:
        assert p.stored in reasons, f"{p.kind}: no dead letter"
        assert p.reason in reasons[p.stored], f"{p.kind}: {reasons[p.stored]}"
    # No watermark moved past now: each camera's is its newest valid frame.
    assert watermarks.height == 4
    newest_watermark = watermarks["max_event_ts"].dt.convert_time_zone("UTC").max()
    assert newest_watermark == newest <= datetime.now(UTC)
    if backend == "postgres":  # and no day partitions for the dates of the refused messages (1990-2049...)
        days = {site.local_day(ts) for ts in rows["ts"].to_list()}
        assert {p for p in partitions if re.fullmatch(r"detections_\d{8}", p)} == {
            f"detections_{d:%Y%m%d}" for d in days
        }

    assert consumer.stop() == 0, consumer.text()[-3000:]
    log = consumer.text()
    assert "landing its halves separately" in log and "(1 isolated from failed batches)" in log, log[-3000:]


# --- the payload parser, fuzzed ------------------------------------------------------------------------

NOW = datetime(2025, 1, 15, 2, tzinfo=UTC)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_frames(draw) -> bytes:
    """Our JSON with a field (of the frame or of a detection) replaced, removed or added."""
    doc = json.loads(json.dumps(GOOD))
    target = draw(st.sampled_from(["frame", "detection"]))
    obj = doc if target == "frame" else doc["detections"][0]
    key = draw(st.sampled_from(sorted(obj) + ["zone_id", "worker_id", "extra"]))
    if draw(st.booleans()) and key in obj:
        del obj[key]
    else:
        obj[key] = draw(json_values)
    return json.dumps(doc).encode()


@st.composite
def deepstream_frames(draw) -> bytes:
    objects = draw(st.lists(st.text(alphabet="0123456789.-|#ePersonca ", max_size=40), max_size=4))
    return json.dumps(
        {
            "version": "4.0",
            "id": draw(json_values),
            "@timestamp": draw(
                st.sampled_from(["2025-01-15T01:00:00.2Z", "2025-01-15T08:00:00", "2025-01-15T01:00Z"])
                | st.text()
            ),
            "sensorId": draw(st.sampled_from(["CAM01", "CAM02", "CAM99"])),
            "objects": objects,
        }
    ).encode()


payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_frames(),
    deepstream_frames(),
    st.just(json.dumps(GOOD).encode()),
)


@settings(
    derandomize=True,
    database=None,
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(payloads, max_size=6), with_topics=st.booleans())
def test_fuzzed_payloads_become_rows_or_dead_letters_never_an_exception(site, batch, with_topics):
    topics = [f"sightline/{'CAM01' if i % 2 else 'CAM02'}/detections" for i in range(len(batch))]
    outcomes = []
    for fast in (True, False):
        parsed = parse_messages(batch, site, fast=fast, now=NOW, topics=topics if with_topics else None)
        rejected = [r.message for r in parsed.rejected]
        assert len(set(rejected)) == len(rejected)
        assert parsed.valid_messages + len(rejected) == len(batch)
        assert set(parsed.detections[MESSAGE_COLUMN].to_list()).isdisjoint(rejected)
        for r in parsed.rejected:  # storable as text in both warehouses
            assert r.reason and "\x00" not in r.reason and "\x00" not in r.payload
            r.reason.encode("utf-8")
            r.payload.encode("utf-8")
        outcomes.append((sorted(rejected), parsed.detections.sort(MESSAGE_COLUMN, "track_id")))
    # The fast (polars) path and the strict (per message) path agree.
    assert outcomes[0][0] == outcomes[1][0]
    assert_frame_equal(outcomes[0][1], outcomes[1][1])


# --- row 5: the receive window is bounded in bytes; oversized payloads are cut on receipt ------------------


def _receive_all(source: MqttSource, count: int, timeout: float = 30) -> list:
    """Poll and acknowledge until `count` messages came or the timeout ran out (the caller checks them)."""
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        chunk = source.poll(0.2, 100)
        source.ack(chunk)
        got += chunk
    return got


def test_receive_window_is_bounded_in_bytes_and_oversized_payloads_are_stubbed(broker):
    topic = f"h{uuid.uuid4().hex[:10]}/CAM01/detections"
    source = MqttSource(
        f"{broker.url}/{topic}",
        client_id=f"bytes-{uuid.uuid4().hex[:8]}",
        max_queued_bytes=1 << 20,
        max_message_bytes=262_144,
    )
    source.start()
    sent = [bytes([65 + i % 26]) * 200_000 for i in range(40)] + [b"z" * 3_000_000]
    try:
        with Publisher(port=broker.port) as publisher:
            publisher.publish((topic, p) for p in sent)
            publisher.wait()
            deadline = time.monotonic() + 10
            while source.queued_bytes < 800_000 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # the broker keeps sending if it can: give it the chance to overshoot
            assert 800_000 <= source.queued_bytes <= 1 << 20  # 40 x 200 KB = 8 MB waits on the broker
            assert source.queued <= 5
            first = source.poll(0.2, 100, max_bytes=0)  # a byte limit counts beyond the first message
            assert len(first) == 1
            source.ack(first)
            got = first + _receive_all(source, len(sent) - 1)
    finally:
        source.close()
    assert [m.payload for m in got[:40]] == sent[:40]
    big = got[40]
    assert big.size == 3_000_000 and len(big.payload) < 2_000  # never held whole
    assert big.payload == oversized_stub(sent[40])


def test_close_returns_while_the_network_thread_waits_for_room_and_nothing_is_lost(broker):
    """A full receive window blocks the network thread (backpressure); closing the source must still return,
    and what was received but never acknowledged comes back on the session's next connection."""
    topic = f"h{uuid.uuid4().hex[:10]}/CAM01/detections"
    client_id = f"full-{uuid.uuid4().hex[:8]}"
    url = f"{broker.url}/{topic}"
    source = MqttSource(url, client_id=client_id, max_queued_bytes=1 << 20, session_expiry_seconds=60)
    source.start()
    sent = [bytes([65 + i]) * 200_000 for i in range(10)]
    with Publisher(port=broker.port) as publisher:
        publisher.publish((topic, p) for p in sent)
        publisher.wait()
    deadline = time.monotonic() + 10
    while source.queued < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert source.queued == 5  # 1 MB of 200 KB messages: the network thread waits with the sixth
    closing = threading.Thread(target=source.close, daemon=True)
    closing.start()
    closing.join(10)
    assert not closing.is_alive(), "close() hung on the network thread waiting for room"

    again = MqttSource(url, client_id=client_id, session_expiry_seconds=0)
    again.start()
    try:
        got = _receive_all(again, len(sent))
    finally:
        again.close()
    assert sorted(m.payload for m in got) == sent


# --- row 8: timestamps, one value at a time, no offset = site-local ----------------------------------------


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Asia/Bangkok")).astimezone(UTC)


def test_jsonl_timestamps_each_parse_on_their_own(warehouse_url, site, tmp_path):
    lines = [
        {"ts": "2025-01-15T08:00:00", "track_id": 1},  # no offset: site-local (Asia/Bangkok, UTC+7)
        {"ts": "2025-01-15T08:00:00.200+07:00", "track_id": 2},  # the next line: was "ts is null"
        {"ts": "2025-01-15T01:00:00.400Z", "track_id": 3},
        {"ts": "2025-01-15 08:00:00.6", "track_id": 4},
        {"ts": "2025-01-15T03:00:00.8+0200", "track_id": 5},
        {"ts": "15/01/2025 08:00", "track_id": 6},
        {"ts": "2025-02-30T08:00:00Z", "track_id": 7},
        {"ts": "9999-12-31T23:00Z", "track_id": 8},
        {"ts": 1736899200, "track_id": 9},
    ]
    base = {"x": 100.0, "y": 300.0, "w": 50.0, "h": 100.0}
    log = tmp_path / "mixed.jsonl"
    log.write_text("\n".join(json.dumps(base | line) for line in lines) + "\n")
    with connect(warehouse_url, site) as wh:
        wh.require_setup()  # DuckDB: sets itself up; PostgreSQL: the owner did (fixture)
        summary = ingest_detection_log(wh, log, "jsonl", camera_id="CAM01")
        got = wh.query("SELECT track_id, ts FROM raw.detections ORDER BY track_id")
        dead = wh.query("SELECT payload, reason FROM raw.rejected_detections ORDER BY reason")
    expected = [
        local(2025, 1, 15, 8),
        local(2025, 1, 15, 8, 0, 0, 200_000),
        datetime(2025, 1, 15, 1, 0, 0, 400_000, tzinfo=UTC),
        local(2025, 1, 15, 8, 0, 0, 600_000),
        datetime(2025, 1, 15, 1, 0, 0, 800_000, tzinfo=UTC),
    ]
    assert got["track_id"].to_list() == [1, 2, 3, 4, 5]
    assert [t.astimezone(UTC) for t in got["ts"].to_list()] == expected
    assert summary.landed == 5 and summary.malformed_lines == 4
    assert dead["reason"].to_list() == [
        "line 6: ts '15/01/2025 08:00' is not an ISO-8601 date-time (YYYY-MM-DDTHH:MM[:SS[.ffffff]] with Z "
        "or an offset like +07:00)",
        "line 7: ts '2025-02-30T08:00:00Z' is not a valid date and time",
        "line 8: ts '9999-12-31T23:00Z' is outside 1970-01-01..2199-12-31",
        "line 9: ts '1736899200' is not an ISO-8601 date-time (YYYY-MM-DDTHH:MM[:SS[.ffffff]] with Z or an "
        "offset like +07:00)",
    ]


def test_stream_timestamps_without_offset_are_site_local(site):
    docs = [
        frame(ts="2025-01-15T08:00:00.2", frame_idx=1),
        frame(ts="2025-01-15T01:00:00.4+00:00", frame_idx=2),
        frame(ts="2025-01-15T08:00:00.6+07:00", frame_idx=3),
    ]
    for fast in (True, False):
        parsed = parse_messages([json.dumps(d).encode() for d in docs], site, fast=fast, now=NOW)
        assert parsed.rejected == []
        assert parsed.detections.sort(MESSAGE_COLUMN)["ts"].to_list() == [
            local(2025, 1, 15, 8, 0, 0, 200_000),
            datetime(2025, 1, 15, 1, 0, 0, 400_000, tzinfo=UTC),
            local(2025, 1, 15, 8, 0, 0, 600_000),
        ]


# --- row 12: detectors without the vision extra; Ultralytics offline ---------------------------------------

WITHOUT_VISION = """
import sys
class NoVision:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ultralytics", "torch", "torchvision", "lap"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoVision())
"""


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path(__file__).parents[1]))}
    env.pop("YOLO_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.parametrize("detector", ["yolo"])
def test_detector_without_the_vision_extra_names_the_extra(detector, tmp_path):
    cli = WITHOUT_VISION + "from orchestration.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    done = run_python(
        cli,
        "stream",
        "--source",
        str(tmp_path / "cam.mp4"),
        "--camera",
        "CAM01",
        "--detector",
        detector,
        "--weights",
        "yolo11n.yaml",
        "--warehouse",
        f"duckdb:///{tmp_path / 'w.duckdb'}",
    )
    assert done.returncode == 1, done.stderr
    assert f"the {detector} detector needs the vision extra" in done.stderr
    assert "pip install -e '.[vision]'" in done.stderr and "Traceback" not in done.stderr


def test_motion_detector_runs_without_the_vision_extra():
    """The motion detector tracks with OpenCV and SciPy (BlobTracker): no Ultralytics, no PyTorch."""
    done = run_python(
        WITHOUT_VISION + "import numpy as np\n"
        "from ingestion.detectors import make_detector\n"
        "det = make_detector('motion', fps=5.0)\n"
        "print(len(det.update(np.zeros((90, 160, 3), np.uint8), np.zeros((90, 160), np.uint8))))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"]


def test_ultralytics_runs_offline():
    done = run_python(
        "from ingestion.detectors import require_ultralytics\n"
        "require_ultralytics('yolo')\n"
        "import os, ultralytics.utils as u\n"
        "print(os.environ['YOLO_OFFLINE'], u.ONLINE, u.AUTOINSTALL, u.SETTINGS['sync'])\n"
    )
    assert done.returncode == 0, done.stderr
    # The last line: on a fresh machine Ultralytics first prints that it created its settings file.
    assert done.stdout.strip().splitlines()[-1].split() == ["1", "False", "False", "False"]


READERS = {  # a second process reading the file: Sightline's own connections, and SQLMesh's (transforms)
    "warehouse": (
        "from ingestion.warehouse.duckdb import open_duckdb",
        "print(open_duckdb(sys.argv[1]).execute('SELECT v FROM t').fetchone()[0])",
    ),
    "sqlmesh": (
        "from ingestion.site import load_site\nfrom ingestion.transform import sqlmesh_config\n"
        "config = sqlmesh_config('duckdb:///' + sys.argv[1], load_site())",
        "adapter = config.gateways['duckdb'].connection.create_engine_adapter()\n"
        "print(adapter.fetchone('SELECT v FROM t')[0])",
    ),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_duckdb_open_waits_for_another_process_to_release_the_file(reader, tmp_path):
    """Row 11, the lock itself: while one process holds the file (the stream during a micro-batch), another
    one opening it waits and reads as soon as it is released, instead of failing."""
    path = str(tmp_path / "w.duckdb")
    holder = duckdb.connect(path)
    holder.execute("CREATE TABLE t AS SELECT 42 AS v")
    holder.commit()
    plain = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1])", path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode != 0 and "Could not set lock" in plain.stderr  # what waiting avoids
    setup, read = READERS[reader]
    code = f"import sys\n{setup}\nprint('opening', flush=True)\n{read}\n"
    env = {**os.environ, "SIGHTLINE_DUCKDB_LOCK_WAIT": "120"}
    waiting = subprocess.Popen(
        [sys.executable, "-c", code, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert waiting.stdout.readline().strip() == "opening"
    time.sleep(1.0)
    assert waiting.poll() is None  # waiting for the lock, not failed
    holder.close()
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert out.strip().splitlines()[-1] == "42"


def test_a_stream_holding_the_duckdb_file_under_a_backlog_hands_it_over_when_asked(site, tmp_path):
    """Row 11 under a backlog: the stream keeps the file across micro-batches (closing and reopening costs
    more than a batch) but a process of ours waiting for the lock asks for it (the handover marker) and gets
    it at the next batch boundary, long before `hold_seconds` would let it go."""
    from ingestion.stream.landing import StreamLander
    from ingestion.warehouse.duckdb import handover_marker

    path = tmp_path / "w.duckdb"
    url = f"duckdb:///{path}"
    with connect(url, site) as wh:
        wh.setup()
    lander = StreamLander(url, site, hold_seconds=3600)
    lander.open()
    lander.release()
    assert lander.wh is None  # nothing waiting: let go after the batch
    lander.open()
    lander.release(backlog=True)
    assert lander.wh is not None  # a backlog, held for less than hold_seconds: kept
    code = (
        "import sys\nfrom ingestion.warehouse.duckdb import open_duckdb\n"
        "print(open_duckdb(sys.argv[1]).execute('SELECT count(*) FROM raw.detections').fetchone()[0])"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SIGHTLINE_DUCKDB_LOCK_WAIT": "60"},
    )
    try:
        deadline = time.monotonic() + 60
        while not handover_marker(str(path)).exists():  # waiting for the lock, it asks for the file
            assert reader.poll() is None and time.monotonic() < deadline, reader.communicate()
            time.sleep(0.02)
        lander.release(backlog=True)  # the next batch boundary
        assert lander.wh is None
        out, err = reader.communicate(timeout=60)
    finally:
        reader.kill()
        lander.close()
    assert reader.returncode == 0 and out.strip() == "0", err
    assert not handover_marker(str(path)).exists()  # served: the request is withdrawn


def test_a_batch_that_fails_leaves_no_dead_letters_behind(warehouse_url, site):
    """The consumer lands a failed batch again in halves, where a message's verdict can differ (a conflict
    within the batch needs both messages in it): the failed attempt must not have written its dead letters."""
    from ingestion.stream.landing import StreamLander

    add_warehouse_refusal(warehouse_url, site)
    now = datetime.now(UTC) - timedelta(minutes=1)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    refused = frame_payload({"worker_id": REFUSED_WORKER}, ts=ts)
    same_key = frame_payload(ts=ts, frame_idx=8)  # the same detection key, other values: a conflict
    lander = StreamLander(warehouse_url, site)
    try:
        with pytest.raises(Exception, match="refused-by-the-warehouse|test_refusal"):
            lander.land([refused, same_key])
        lander.reconnect()
        assert counts(warehouse_url, site) == (0, 0)
        assert lander.land([same_key]).landed == 1  # on its own it is no conflict at all
    finally:
        lander.close()
    assert counts(warehouse_url, site) == (1, 0)


def test_shipped_mosquitto_conf_caps_the_message_size(broker):
    """Row 5 at the broker: the shipped mosquitto.conf's message_size_limit, in a real Mosquitto. A payload
    under it is delivered (and dead-lettered by the consumer above 256 KB), a larger one never arrives."""
    conf = (Path(__file__).parents[1] / "ingestion" / "stream" / "mosquitto.conf").read_text()
    limit = int(re.search(r"^message_size_limit (\d+)$", conf, re.M).group(1))
    assert 262_144 < limit <= 16 << 20
    topic = f"h{uuid.uuid4().hex[:10]}/CAM01/detections"
    with PrivateMosquitto(message_size_limit=str(limit)) as capped:
        source = MqttSource(f"{capped.url}/{topic}", client_id=f"cap-{uuid.uuid4().hex[:8]}")
        source.start()
        try:
            with Publisher(port=capped.port) as publisher:  # the broker may end this one's session
                publisher.publish([(topic, b"a" * (limit + 1))])
                try:
                    publisher.wait(timeout=5)
                except TimeoutError:
                    pass
            with Publisher(port=capped.port) as publisher:
                publisher.publish([(topic, b"b" * limit), (topic, b"end")])
                publisher.wait()
            got = []
            deadline = time.monotonic() + 20
            while (not got or got[-1].payload != b"end") and time.monotonic() < deadline:
                got += source.poll(0.2, 10)
        finally:
            source.close()
    assert [m.size for m in got] == [limit, 3]  # the one over the limit was dropped at the broker
    assert got[0].payload == oversized_stub(b"b" * limit)  # and this one is cut to a stub on receipt


# --- site.yaml `stream:` -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "key", "fix"),
    [
        ({"max_lateness_days": 0}, "stream.max_lateness_days", "positive number of days"),
        ({"max_lateness_days": float("nan")}, "stream.max_lateness_days", "finite number"),
        ({"max_future_seconds": -1}, "stream.max_future_seconds", "between 0"),
        ({"max_future_seconds": "5m"}, "stream.max_future_seconds", "give a number"),
        ({"max_message_bytes": 100}, "stream.max_message_bytes", "between 1024"),
        ({"max_message_bytes": 2.5e5}, "stream.max_message_bytes", "give an integer"),
        ({"max_lateness": 3}, "stream.max_lateness", "use only max_lateness_days"),
    ],
)
def test_stream_section_is_validated(stream, key, fix):
    doc = yaml.safe_load((Path(__file__).parents[1] / "site.yaml").read_text())
    doc["stream"] = stream
    with pytest.raises(SiteConfigError) as err:
        parse_site(doc, "site.yaml")
    assert err.value.key == key and fix in err.value.fix, str(err.value)
    assert str(err.value).startswith(f"site.yaml: {key}: ")


def test_stream_section_defaults_and_shipped_values(site):
    assert site.stream == StreamSettings() == StreamSettings(7, 300, 262_144)
    doc = yaml.safe_load((Path(__file__).parents[1] / "site.yaml").read_text())
    del doc["stream"]
    assert parse_site(doc).stream == StreamSettings()  # the section is optional


def test_a_broken_warehouse_pauses_the_stream_not_dead_letters(broker, site, tmp_path, set_up_pg_url):
    """The bisect must not mistake a broken warehouse for poison: with raw.detections gone (dropped, renamed,
    grants revoked) every message would fail on its own. The consumer checks the warehouse before it writes a
    dead letter, waits while it is not set up, and lands everything once it is back."""
    import psycopg

    prefix = f"h{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    rows, _, _ = valid_frames(site, now, n=40)
    consumer = Consumer(
        tmp_path,
        "--source",
        f"{broker.url}/{prefix}/+/detections",
        "--warehouse",
        set_up_pg_url,
        "--client-id",
        f"consumer-{prefix}",
        "--batch-seconds",
        "0.3",
    )
    consumer.wait_for("subscribed")
    with psycopg.connect(set_up_pg_url, autocommit=True) as admin:
        admin.execute("ALTER TABLE raw.detections RENAME TO detections_away")
        with Publisher(port=broker.port) as publisher:
            publisher.publish(encode(rows, prefix))
            publisher.wait()
        consumer.wait_for("warehouse unavailable.*not set up")
        assert counts_pg(admin) == (0, 0)  # nothing dead-lettered while the table was away
        admin.execute("ALTER TABLE raw.detections_away RENAME TO detections")
        deadline = time.monotonic() + 60
        while counts_pg(admin) != (rows.height, 0):
            assert time.monotonic() < deadline and consumer.proc.poll() is None, consumer.text()[-3000:]
            time.sleep(0.2)
    assert consumer.stop() == 0, consumer.text()[-3000:]


def counts_pg(conn) -> tuple[int, int]:
    table = "raw.detections" if conn.execute("SELECT to_regclass('raw.detections')").fetchone()[0] else None
    n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if table else 0
    return n, conn.execute("SELECT count(*) FROM raw.rejected_detections").fetchone()[0]


def test_parquet_naive_times_are_site_local_aware_ones_are_kept(warehouse_url, site, tmp_path):
    base = {"x": [100.0], "y": [300.0], "w": [50.0], "h": [100.0]}
    naive = tmp_path / "naive.parquet"
    pl.DataFrame(base | {"ts": [datetime(2025, 1, 15, 8)], "track_id": [1]}).write_parquet(naive)
    aware = tmp_path / "aware.parquet"
    pl.DataFrame(base | {"ts": [datetime(2025, 1, 15, 8, tzinfo=UTC)], "track_id": [2]}).write_parquet(aware)
    text = tmp_path / "text.parquet"
    pl.DataFrame(base | {"ts": ["2025-01-15T08:00:00.5"], "track_id": [3]}).write_parquet(text)
    with connect(warehouse_url, site) as wh:
        wh.require_setup()
        for path in (naive, aware, text):
            ingest_detection_log(wh, path, "parquet", camera_id="CAM02")
        got = wh.query("SELECT track_id, ts FROM raw.detections ORDER BY track_id")
    assert [t.astimezone(UTC) for t in got["ts"].to_list()] == [
        local(2025, 1, 15, 8),
        datetime(2025, 1, 15, 8, tzinfo=UTC),
        local(2025, 1, 15, 8, 0, 0, 500_000),
    ]


def test_jsonl_lines_with_nul_bytes_and_bad_utf8_are_dead_letters(warehouse_url, site, tmp_path):
    log = tmp_path / "hostile.jsonl"
    log.write_bytes(
        b'{"ts": "2025-01-15T08:00:00Z", "x": 1, "y": 2, "w": 3, "h": 4, "track_id": 1}\n'
        b'{"ts": "2025-01-15T08:00:00Z", "worker_id": "a\x00b"}\n'
        b"\xff\xfe not utf-8\n"
    )
    with connect(warehouse_url, site) as wh:
        wh.require_setup()
        summary = ingest_detection_log(wh, log, "jsonl", camera_id="CAM01")
        dead = wh.query("SELECT payload, reason FROM raw.rejected_detections ORDER BY reason")
    assert (summary.landed, summary.malformed_lines) == (1, 2)
    assert dead["payload"].to_list()[0] == '{"ts": "2025-01-15T08:00:00Z", "worker_id": "a\\x00b"}'
    assert [r.split(":")[0] for r in dead["reason"]] == ["line 2", "line 3"]


def test_video_stream_on_duckdb_lets_other_processes_read_between_chunks(site, tmp_path):
    """Row 11 for `sightline stream --source <video>`: the file is held only while a chunk lands."""
    from ingestion.simulate.render import render_video
    from ingestion.warehouse.duckdb import open_duckdb

    video = render_video(
        site, tmp_path / "video", window=(clock(9), clock(9, 1)), cameras=["CAM01"], fps=5.0, scale=0.5
    ).segments[0]
    path = tmp_path / "stream.duckdb"
    log = tmp_path / "video.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *CLI,
                "stream",
                "--source",
                str(video),
                "--camera",
                "CAM01",
                "--warehouse",
                f"duckdb:///{path}",
                "--batch-seconds",
                "10",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not re.search(r"batch stream-video:\S+: \d+ rows landed", log.read_text()):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            with open_duckdb(str(path), wait=30) as con:  # in between two chunks, not after the run
                landed = con.execute("SELECT count(*) FROM raw.detections").fetchone()[0]
            assert proc.poll() is None, log.read_text()
            assert landed > 0
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log.read_text()
