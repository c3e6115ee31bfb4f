"""Streaming end to end: MQTT publish on loopback -> parsed, checked, landed and committed -> acknowledged.

    .venv/bin/python bench/streaming.py [--minutes 10] [--batch-rows 5000] [--rounds 3]
                                        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]

For DuckDB and PostgreSQL, with the same simulated frames (4 cameras at 5 fps, one message per frame):
- floor: the landing layer's own `append_batch` on the same rows, in batches of --batch-rows;
- backlog: every message already waiting at a private Mosquitto in the consumer's persistent session (as
  after a restart or an outage), rows/s from the consumer's start to its last commit, through
  `StreamConsumer` (parse, idempotence checks, ledger, acks). This is the consumer's own throughput: the
  publisher has finished, so it takes no CPU from the consumer on this machine's two cores;
- MQTT only: the same backlog received and acknowledged by `MqttSource` alone (no parsing, no landing):
  the ceiling the consumer cannot pass with this MQTT client, as a ratio to the floor;
- live: every message published at once while the consumer runs, rows/s from the first publish to the
  last commit (bounded by the publisher, a paho process on the same two cores);
- latency: messages paced at half the backlog message rate; publish -> commit p50 / p99.
Each round measures them in turn (A/B alternated, so a change of the machine's load hits all); the table
shows medians over the rounds: of the ratios to the floor of each round, and of each round's p50 / p99.
"CPU ratio": CPU seconds of this process for the floor over those for the backlog run (the consumer, MQTT
receive included): the work per row, much less moved by the machine's load than the wall-clock ratio
(PostgreSQL's server CPU is in neither). The publisher runs in its own process; the consumer in this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from datetime import time as dtime
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.simulate import simulate  # noqa: E402
from ingestion.site import Site, StreamSettings, load_site  # noqa: E402
from ingestion.stream.broker import PrivateMosquitto  # noqa: E402
from ingestion.stream.consumer import BatchPolicy, StreamConsumer  # noqa: E402
from ingestion.stream.encode import encode_frames  # noqa: E402
from ingestion.stream.landing import StreamLander  # noqa: E402
from ingestion.stream.mqtt import MqttSource  # noqa: E402
from ingestion.stream.publish import Publisher  # noqa: E402
from ingestion.warehouse import connect  # noqa: E402

DAY = date(2025, 1, 15)


def _publish(port: int, messages: list[tuple[str, bytes]], per_second: float | None, stamps=None) -> None:
    """Child process: publish (paced or not), stamping each message's publish time into `stamps` if given."""
    with Publisher(port=port) as pub:
        start = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            if per_second:
                delay = start + i / per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if stamps is not None:
                stamps[i] = time.time()
            pub.publish([(topic, payload)])
        pub.wait(600)


def _publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish every message in a child process and wait for the broker's acknowledgements."""
    publisher = mp.get_context("fork").Process(target=_publish, args=(port, messages, None))
    publisher.start()
    publisher.join()
    if publisher.exitcode != 0:
        raise RuntimeError(f"the publisher failed (exit code {publisher.exitcode})")


def _queued_session(broker: PrivateMosquitto, topic: str, messages: list[tuple[str, bytes]]) -> str:
    """A persistent session holding every message (its consumer away while they were published)."""
    client_id = f"bench-{uuid.uuid4().hex[:8]}"
    source = MqttSource(f"{broker.url}/{topic}", client_id=client_id, session_expiry_seconds=600)
    source.start()
    source.close()
    _publish_all(broker.port, messages)
    return client_id


def mqtt_only(broker: PrivateMosquitto, frames: pl.DataFrame, total_rows: int) -> float:
    """rows/s of receiving and acknowledging the queued backlog with `MqttSource` alone."""
    topic = f"{frames['topic'][0].split('/')[0]}/+/detections"
    messages = [(t, p.encode()) for t, p in frames.select("topic", "payload").iter_rows()]
    client_id = _queued_session(broker, topic, messages)
    source = MqttSource(
        f"{broker.url}/{topic}", client_id=client_id, receive_maximum=4000, session_expiry_seconds=0
    )
    started = time.perf_counter()
    source.start()
    received = 0
    while received < len(messages):
        chunk = source.poll(1.0, 2000)
        source.ack(chunk)
        received += len(chunk)
    elapsed = time.perf_counter() - started
    source.close()
    return total_rows / elapsed


class Warehouses:
    """Fresh, empty warehouses of one backend, cleaned up at the end."""

    def __init__(self, backend: str, admin_url: str, tmp: Path):
        self.backend, self.admin_url, self.tmp = backend, admin_url, tmp
        self.created: list[str] = []

    def fresh(self) -> str:
        if self.backend == "duckdb":
            return f"duckdb:///{self.tmp / f'{uuid.uuid4().hex[:8]}.duckdb'}"
        name = f"sightline_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def floor_rate(url: str, site: Site, rows: pl.DataFrame, batch_rows: int) -> tuple[float, float]:
    """(rows/s, CPU seconds of this process: polars' and DuckDB's worker threads included)."""
    with connect(url, site) as wh:
        wh.setup()
        started, cpu = time.perf_counter(), time.process_time()
        for i, start in enumerate(range(0, rows.height, batch_rows)):
            wh.append_batch(f"floor:{i}", rows.slice(start, batch_rows), source="bench")
        return rows.height / (time.perf_counter() - started), time.process_time() - cpu


def end_to_end(
    url: str,
    site: Site,
    broker: PrivateMosquitto,
    frames: pl.DataFrame,
    total_rows: int,
    batch_rows: int,
    per_second: float | None,
    label: str,
    backlog: bool = False,
) -> tuple[float, np.ndarray, float]:
    """Publish every frame, wait until all rows are committed; returns (rows/s, latencies in s, CPU seconds
    of this process meanwhile: the consumer's loop and its MQTT network thread; the publisher is another
    process). `backlog`: everything is published before the consumer starts, and the rate is timed from
    its start (latencies are then meaningless)."""
    prefix = frames["topic"][0].split("/")[0]
    with connect(url, site) as wh:  # what a deployment's owner does once (`sightline db setup`)
        wh.setup()
    messages = [(t, p.encode()) for t, p in frames.select("topic", "payload").iter_rows()]
    index = {payload: i for i, (_, payload) in enumerate(messages)}
    committed = np.full(len(messages), np.nan)
    bar = tqdm(total=total_rows, desc=label, unit="rows", leave=False, disable=not sys.stderr.isatty())

    def on_commit(batch, outcome, at: float) -> None:
        committed[[index[m.payload] for m in batch]] = at  # per message of the batch, not per detection
        bar.update(outcome.landed)

    topic = f"{prefix}/+/detections"
    client_id = _queued_session(broker, topic, messages) if backlog else f"bench-{uuid.uuid4().hex[:8]}"
    source = MqttSource(
        f"{broker.url}/{topic}", client_id=client_id, receive_maximum=4000, session_expiry_seconds=0
    )
    consumer = StreamConsumer(
        source,
        StreamLander(url, site),
        BatchPolicy(rows=batch_rows, seconds=1.0, max_messages=2000),
        on_commit=on_commit,
    )
    runner = threading.Thread(target=consumer.run)
    cpu, started = time.process_time(), time.time()
    runner.start()
    if backlog:
        while consumer.stats.landed < total_rows and runner.is_alive():
            time.sleep(0.05)
        consumer.stop()
        runner.join()
        bar.close()
        return total_rows / (np.nanmax(committed) - started), np.array([]), time.process_time() - cpu
    while not source.connected:  # subscribed before the first publish
        time.sleep(0.05)
    stamps = mp.get_context("fork").Array("d", len(messages), lock=False)
    publisher = mp.get_context("fork").Process(
        target=_publish, args=(broker.port, messages, per_second, stamps)
    )
    publisher.start()
    while consumer.stats.landed < total_rows and publisher.exitcode in (None, 0):
        time.sleep(0.05)
    publisher.join()
    consumer.stop()
    runner.join()
    bar.close()
    published = np.frombuffer(stamps, dtype=np.float64)
    rate = total_rows / (np.nanmax(committed) - published.min())
    return rate, committed - published, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, default=10, help="simulated minutes of 4 cameras at 5 fps")
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per backend (medians reported)")
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    # The simulated day is in 2025: accept frames that old (the shipped stream.max_lateness_days is 7).
    site = dataclasses.replace(load_site(), stream=StreamSettings(max_lateness_days=36_500))
    rows = simulate(
        site,
        start=DAY,
        fps=5.0,
        noise="realistic",
        seed=0,
        window=(dtime(9), dtime(9 + args.minutes // 60, args.minutes % 60)),
    ).detections
    frames = encode_frames(rows, topic_prefix=f"bench{uuid.uuid4().hex[:6]}")
    per_message = rows.height / frames.height
    print(
        f"{rows.height:,} detections in {frames.height:,} messages ({per_message:.1f} per message), "
        f"batches of {args.batch_rows} rows, {args.rounds} rounds\n"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp, PrivateMosquitto() as broker:
        for backend in args.backends.split(","):
            warehouses = Warehouses(backend, args.pg_admin_url, Path(tmp))
            samples: list[tuple[float, ...]] = []
            try:
                for r in range(args.rounds):
                    by_ts = rows.sort("ts", "camera_id")
                    floor, floor_cpu = floor_rate(warehouses.fresh(), site, by_ts, args.batch_rows)

                    stream = partial(
                        end_to_end,
                        site=site,
                        broker=broker,
                        frames=frames,
                        total_rows=rows.height,
                        batch_rows=args.batch_rows,
                    )
                    drained, _, stream_cpu = stream(
                        warehouses.fresh(), per_second=None, label=f"{backend} backlog {r + 1}", backlog=True
                    )
                    ceiling = mqtt_only(broker, frames, rows.height)
                    live, _, _ = stream(warehouses.fresh(), per_second=None, label=f"{backend} live {r + 1}")
                    paced = 0.5 * drained / per_message
                    label = f"{backend} paced {r + 1}"
                    _, latency, _ = stream(warehouses.fresh(), per_second=paced, label=label)
                    p50, p99 = np.percentile(latency, [50, 99]) * 1000
                    cpu_ratio = floor_cpu / stream_cpu
                    ratios = (drained / floor, ceiling / floor, live / floor)
                    samples.append((floor, drained, *ratios, cpu_ratio, paced, p50, p99))
                    print(
                        f"  {backend} round {r + 1}: floor {floor:,.0f} rows/s, backlog {drained:,.0f} "
                        f"rows/s "
                        f"(ratio {drained / floor:.2f}, CPU ratio {cpu_ratio:.2f}), MQTT only "
                        f"{ceiling / floor:.2f}, live {live / floor:.2f}; paced {paced:,.0f} msg/s: "
                        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms",
                        flush=True,
                    )
            finally:
                warehouses.drop_all()
            results[backend] = np.median(np.array(samples), axis=0)
    print(f"\nmedians over {args.rounds} rounds (ratios: to the floor, within each round)")
    print(
        f"{'backend':<10} {'floor rows/s':>13} {'backlog rows/s':>15} {'ratio':>6} {'MQTT only':>10} "
        f"{'live':>6} {'CPU ratio':>10} {'paced msg/s':>12} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for backend, (floor, drained, ratio, ceiling, live, cpu_ratio, paced, p50, p99) in results.items():
        print(
            f"{backend:<10} {floor:>13,.0f} {drained:>15,.0f} {ratio:>6.2f} {ceiling:>10.2f} {live:>6.2f} "
            f"{cpu_ratio:>10.2f} {paced:>12,.0f} {p50:>8.0f} {p99:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
