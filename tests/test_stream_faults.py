"""Fault tests of `sightline stream` against a real Mosquitto, real databases and real processes.

Each test runs its own broker (ingestion.stream.broker.PrivateMosquitto: queue limits lifted, see there)
and its own topic prefix. The expected rows come from the simulator (ground truth), the malformed messages
are made here; the consumer process only ever sees MQTT.
"""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date
from datetime import time as clock
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingestion.schema import DETECTION_SCHEMA
from ingestion.simulate import simulate
from ingestion.site import Site
from ingestion.stream.broker import PrivateMosquitto, free_port
from ingestion.stream.encode import encode_deepstream_minimal, encode_frames
from ingestion.stream.publish import Publisher
from ingestion.warehouse import connect

DAY = date(2025, 1, 15)
VALUE_COLUMNS = [c for c in DETECTION_SCHEMA.names() if c != "batch_id"]
CLI = [sys.executable, "-c", "import sys; from orchestration.cli import main; sys.exit(main(sys.argv[1:]))"]


@pytest.fixture
def pg_url(set_up_pg_url: str) -> str:
    """Deployed services run on a warehouse the owner set up (`sightline db setup`): they create no tables."""
    return set_up_pg_url


@pytest.fixture(scope="module")
def broker():
    with PrivateMosquitto() as b:
        yield b


@dataclass
class StreamSet:
    prefix: str
    messages: list[tuple[str, bytes]]  # in publish order, duplicates included
    expected: pl.DataFrame  # distinct valid rows (VALUE_COLUMNS), from the simulator
    malformed: set[str]  # distinct malformed payloads


def make_stream(
    site: Site,
    *,
    cameras: list[str],
    minutes: int,
    seed: int,
    malformed_share: float = 0.05,
    duplicate_share: float = 0.1,
) -> StreamSet:
    """Simulated frames as our JSON (zones left for the consumer to assign on half the cameras), ~5% of
    malformed messages of many kinds, and resent duplicates of both, shuffled a little."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    rows = simulate(
        site,
        start=DAY,
        cameras=cameras,
        fps=5.0,
        noise="realistic",
        seed=seed,
        window=(clock(9), clock(9, minutes)),
    ).detections
    with_zone = encode_frames(rows.filter(pl.col("camera_id").is_in(cameras[::2])), topic_prefix=prefix)
    without_zone = encode_frames(
        rows.filter(~pl.col("camera_id").is_in(cameras[::2])), topic_prefix=prefix, with_zone=False
    )
    frames = pl.concat([with_zone, without_zone]).sort("ts", "camera_id")
    valid = [(t, p.encode()) for t, p in frames.select("topic", "payload").iter_rows()]
    rng = random.Random(seed)
    bad = [malformed_message(i, rng.choice(valid)[1]) for i in range(round(len(valid) * malformed_share))]
    topic = f"{prefix}/CAM01/detections"
    messages = valid + [(topic, b) for b in bad]
    rng.shuffle(messages)
    messages.sort(key=lambda m: rng.random() < 0.9)  # most in order, some early: realistic disorder
    for _ in range(round(len(messages) * duplicate_share)):  # resent copies, later in the stream
        i = rng.randrange(len(messages))
        messages.insert(rng.randrange(i, len(messages) + 1), messages[i])
    malformed = {b.decode("utf-8", errors="backslashreplace") for b in bad}
    assert len(malformed) == len(bad)
    return StreamSet(prefix, messages, rows.select(VALUE_COLUMNS), malformed)


def malformed_message(i: int, valid: bytes) -> bytes:
    """One of many kinds of bad message, unique by `i`."""
    doc = json.loads(valid)
    doc["frame_idx"] = 10_000_000 + i
    kind = i % 8
    if kind == 0:
        return f"garbage {i}".encode()
    if kind == 1:
        return json.dumps({"n": i, **doc}).encode()[: -(1 + i % 20)]  # truncated JSON
    if kind == 2:
        doc["camera_id"] = "CAM99"
    elif kind == 3:
        doc["ts"] = doc["ts"].replace("Z", "+24:00")  # no such UTC offset
    elif kind == 4:
        doc["detections"] = [{"track_id": "seven", "class_id": 0}]
    elif kind == 5:
        doc["detections"] = [
            {
                "track_id": 1,
                "class_id": 0,
                "confidence": 1.5,
                "x": 1,
                "y": 1,
                "w": 10,
                "h": 10,
                "motion_score": 0.5,
            }
        ]
    elif kind == 6:
        doc = {
            "version": "4.0",
            "id": 10_000_000 + i,
            "@timestamp": "2025-01-15T02:00:00.000Z",
            "sensorId": "CAM01",
            "objects": [f"{i}|10|10|50|90|unicorn"],
        }
    else:
        doc = {"frames": [doc], "n": i}
    return json.dumps(doc).encode()


class Consumer:
    """`sightline stream` as a child process, its output in a file."""

    def __init__(self, tmp: Path, *args: str, verbose: bool = False):
        self.log = tmp / f"consumer-{uuid.uuid4().hex[:6]}.log"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in wait()
        cmd = [*CLI, *(["-v"] if verbose else []), "stream", *args]
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            if self.proc.poll() is not None:
                raise AssertionError(f"consumer exited {self.proc.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} from the consumer in {timeout} s:\n{self.text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()


@pytest.fixture(autouse=True)
def _streamable_site(streamable_site_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumers stream the simulator's 2025 days: they read a site that accepts frames that old."""
    monkeypatch.setenv("SIGHTLINE_SITE", str(streamable_site_file))


def consumer_args(broker: PrivateMosquitto, stream: StreamSet, warehouse: str, *extra: str) -> list[str]:
    return [
        "--source",
        f"{broker.url}/{stream.prefix}/+/detections",
        "--warehouse",
        warehouse,
        "--client-id",
        f"consumer-{stream.prefix}",
        "--batch-seconds",
        "0.3",
        *extra,
    ]


def landed_rows(url: str, site: Site) -> pl.DataFrame:
    with connect(url, site) as wh:
        return wh.query(f"SELECT {', '.join(VALUE_COLUMNS)} FROM raw.detections").cast(
            {c: DETECTION_SCHEMA[c] for c in VALUE_COLUMNS}
        )


def rejected_payloads(url: str, site: Site) -> list[str]:
    with connect(url, site) as wh:
        return wh.query("SELECT payload FROM raw.rejected_detections")["payload"].to_list()


def wait_until_landed(url: str, site: Site, stream: StreamSet, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with connect(url, site) as wh:
            n = wh.query("SELECT count(*) AS n FROM raw.detections")["n"][0]
            r = wh.query("SELECT count(*) AS n FROM raw.rejected_detections")["n"][0]
        if (n, r) == (stream.expected.height, len(stream.malformed)) or time.monotonic() > deadline:
            return
        time.sleep(0.3)


def assert_exactly_once(url: str, site: Site, stream: StreamSet) -> None:
    keys = ["camera_id", "ts", "track_id"]
    assert_frame_equal(landed_rows(url, site).sort(keys), stream.expected.sort(keys))
    rejected = rejected_payloads(url, site)
    assert len(rejected) == len(stream.malformed), "dead letters doubled or lost"
    assert set(rejected) == stream.malformed
    with connect(url, site) as wh:  # the ledger adds up to the rows landed
        ledger = wh.query("SELECT sum(row_count) AS n FROM raw.ingest_batches WHERE source = 'stream'")["n"][
            0
        ]
    assert ledger == stream.expected.height


def test_sigkill_at_random_points_lands_each_row_exactly_once(broker, pg_url, site, tmp_path):
    stream = make_stream(site, cameras=["CAM01", "CAM02", "CAM03"], minutes=4, seed=11)
    assert len(stream.messages) > 3000 and stream.malformed
    rng = random.Random(7)
    args = consumer_args(broker, stream, pg_url, "--batch-rows", "1500")
    consumer = Consumer(tmp_path, *args)
    consumer.wait_for("subscribed")  # the session exists from here: nothing published is missed

    with Publisher(port=broker.port) as publisher:
        sender = threading.Thread(
            target=publisher.publish,
            args=(stream.messages,),
            kwargs={"per_second": len(stream.messages) / 12},
        )
        sender.start()
        kills = 0
        while kills < 10 or sender.is_alive():
            time.sleep(rng.uniform(0.1, 1.2))
            consumer.kill()
            kills += 1
            consumer = Consumer(tmp_path, *args)
            consumer.wait_for("subscribed")
        sender.join()
        publisher.wait()
    wait_until_landed(pg_url, site, stream)
    assert consumer.terminate() == 0, consumer.text()
    assert "stopped:" in consumer.text()
    assert kills >= 10
    assert_exactly_once(pg_url, site, stream)


class TcpProxy:
    """A loopback TCP proxy that can cut every connection and refuse new ones, then come back."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self.unblock()

    def unblock(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def block(self) -> None:
        try:  # shutdown wakes the thread blocked in accept(); close alone would not stop it accepting
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_postgres_outage_pauses_consumption_and_loses_nothing(broker, pg_url, site, tmp_path):
    stream = make_stream(site, cameras=["CAM02", "CAM04"], minutes=3, seed=5)
    first, rest = stream.messages[:400], stream.messages[400:]
    proxy = TcpProxy(5432)
    via_proxy = re.sub(r"@127\.0\.0\.1:5432/", f"@127.0.0.1:{proxy.port}/", pg_url)
    assert via_proxy != pg_url
    receive_maximum = 100
    consumer = Consumer(
        tmp_path, *consumer_args(broker, stream, via_proxy, "--receive-maximum", str(receive_maximum))
    )
    consumer.wait_for("subscribed")
    with Publisher(port=broker.port) as publisher:
        publisher.publish(first)
        publisher.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(landed_rows(pg_url, site)) == 0:
            time.sleep(0.2)
        proxy.block()  # PostgreSQL unreachable for the consumer (the server itself keeps running)
        publisher.publish(rest)  # 20x the consumer's window arrives while it cannot commit
        publisher.wait()
        consumer.wait_for("warehouse unavailable")
        during = landed_rows(pg_url, site).height
        time.sleep(3.0)
        assert consumer.proc.poll() is None, "the consumer must wait for the warehouse, not exit"
        assert landed_rows(pg_url, site).height == during < stream.expected.height  # really cut off
        proxy.unblock()
    wait_until_landed(pg_url, site, stream)
    assert consumer.terminate() == 0, consumer.text()
    held = [int(n) for n in re.findall(r"holding (\d+) messages", consumer.text())]
    assert held, consumer.text()
    # Consumption paused: what it held stayed within its window (batch + bounded queue), far below
    # the thousands of messages published during the outage, which waited on the broker instead.
    assert max(held) <= 2.5 * receive_maximum < len(rest)
    assert_exactly_once(pg_url, site, stream)


def test_late_messages_land_and_mark_their_day_for_rebuild(broker, duckdb_url, site, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    rows = simulate(
        site, start=DAY, cameras=["CAM01"], fps=5.0, noise="none", seed=3, window=(clock(9), clock(9, 1))
    ).detections
    previous_day = simulate(
        site,
        start=date(2025, 1, 14),
        cameras=["CAM01"],
        fps=5.0,
        noise="none",
        seed=3,
        window=(clock(16), clock(16, 0, 10)),
    ).detections
    watermark = rows["ts"].max()
    slightly_late = rows.filter(pl.col("ts") > watermark - pl.duration(seconds=20)).with_columns(
        pl.col("track_id") + 1_000_000
    )  # new rows 0..20 s behind the watermark: within the lateness
    on_time = encode_frames(rows, topic_prefix=prefix)
    late = encode_frames(pl.concat([previous_day, slightly_late]), topic_prefix=prefix)
    expected = pl.concat([rows, previous_day, slightly_late]).select(VALUE_COLUMNS)
    stream = StreamSet(prefix, [], expected, set())
    consumer = Consumer(
        tmp_path,
        *consumer_args(broker, stream, duckdb_url, "--allowed-lateness", "60", "--stop-when-idle", "1.5"),
        verbose=True,
    )
    consumer.wait_for("subscribed")
    with Publisher(port=broker.port) as publisher:
        publisher.publish(on_time.select("topic", "payload").iter_rows())
        publisher.wait()
        consumer.wait_for(f"{on_time.height} messages in total")  # committed: the watermark has moved
        publisher.publish(late.select("topic", "payload").iter_rows())
        publisher.wait()
    assert consumer.wait() == 0, consumer.text()  # --stop-when-idle: drained, exits by itself
    assert_exactly_once(duckdb_url, site, stream)
    with connect(duckdb_url, site) as wh:
        marked = wh.query("SELECT camera_id, day FROM raw.days_to_rebuild").rows()
        wm = wh.query("SELECT camera_id, max_event_ts FROM raw.camera_watermarks").rows()
    assert marked == [("CAM01", date(2025, 1, 14))]  # 01-15 rows were within the allowed lateness
    assert wm == [("CAM01", watermark)]


def test_sigterm_flushes_what_was_received_and_exits_zero(broker, pg_url, site, tmp_path):
    stream = make_stream(site, cameras=["CAM03"], minutes=1, seed=2, duplicate_share=0.0)
    # Batches that never fill: only the stop can land them.
    consumer = Consumer(
        tmp_path,
        *consumer_args(
            broker,
            stream,
            pg_url,
            "--batch-seconds",
            "600",
            "--batch-rows",
            "1000000",
            "--receive-maximum",
            "5000",
        ),
    )
    consumer.wait_for("subscribed")
    with Publisher(port=broker.port) as publisher:
        publisher.publish(stream.messages)
        publisher.wait()
    time.sleep(1.5)  # loopback delivery of a few hundred messages
    assert landed_rows(pg_url, site).height == 0  # nothing flushed by size or time
    assert consumer.terminate() == 0, consumer.text()
    assert_exactly_once(pg_url, site, stream)
    # The acknowledgements reached the broker before the disconnect: the session has nothing to redeliver.
    again = Consumer(tmp_path, *consumer_args(broker, stream, pg_url, "--stop-when-idle", "1"))
    assert again.wait() == 0, again.text()
    assert "stopped: 0 messages" in again.text(), again.text()


def test_deepstream_and_our_json_share_a_topic(broker, duckdb_url, site, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    # Integer pixel boxes so right-left and bottom-top reproduce w and h exactly.
    rows = simulate(
        site,
        start=DAY,
        cameras=["CAM01", "CAM04"],
        fps=5.0,
        noise="none",
        seed=8,
        window=(clock(10, 30), clock(10, 31)),
    ).detections.with_columns(
        [pl.col(c).round(0) for c in ("x", "y", "w", "h")] + [pl.col("confidence").round(2)]
    )
    ours = encode_frames(rows.filter(pl.col("camera_id") == "CAM01"), topic_prefix=prefix)
    deepstream = encode_deepstream_minimal(rows.filter(pl.col("camera_id") == "CAM04"), topic_prefix=prefix)
    # What DeepStream's minimal schema cannot carry: motion (default 0), worker identity; zone is assigned.
    expected = (
        rows.with_columns(
            motion_score=pl.when(pl.col("camera_id") == "CAM04").then(0.0).otherwise(pl.col("motion_score")),
            worker_id=pl.when(pl.col("camera_id") == "CAM04").then(None).otherwise(pl.col("worker_id")),
        )
        .select(VALUE_COLUMNS)
        .cast({c: DETECTION_SCHEMA[c] for c in VALUE_COLUMNS})
    )
    stream = StreamSet(prefix, [], expected, set())
    consumer = Consumer(tmp_path, *consumer_args(broker, stream, duckdb_url, "--stop-when-idle", "1.5"))
    consumer.wait_for("subscribed")
    with Publisher(port=broker.port) as publisher:
        publisher.publish(pl.concat([ours, deepstream]).sort("ts").select("topic", "payload").iter_rows())
        publisher.wait()
    assert consumer.wait() == 0, consumer.text()
    assert_exactly_once(duckdb_url, site, stream)


def test_broker_restart_mid_stream_redelivers_without_doubling(pg_url, site, tmp_path):
    """Acknowledgements are fenced per connection: after the broker drops us, messages received before are
    not acked on the new connection but redelivered (session kept by the broker's persistence) and
    recognised as landed."""
    stream = make_stream(site, cameras=["CAM01", "CAM04"], minutes=2, seed=9)
    with PrivateMosquitto(persistent=True) as broker:
        consumer = Consumer(tmp_path, *consumer_args(broker, stream, pg_url, "--receive-maximum", "200"))
        consumer.wait_for("subscribed")
        with Publisher(port=broker.port) as publisher:
            publisher.publish(stream.messages)
            publisher.wait()
        broker.restart(down_seconds=1.0)
        consumer.wait_for(r"session present: True")
        wait_until_landed(pg_url, site, stream)
        assert consumer.terminate() == 0, consumer.text()
    assert "MQTT connection lost" in consumer.text()
    assert_exactly_once(pg_url, site, stream)
