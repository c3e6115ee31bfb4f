"""The long-running stream consumer: micro-batches by size or time, commit, then acknowledge.

    source (MQTT, network thread) -> bounded queue -> [this loop] parse + land batch -> commit -> ack

One loop, one thread talking to the warehouse. When the warehouse fails (down, slow, restarted), the
batch is kept and retried with backoff on a fresh connection; nothing is acknowledged meanwhile, so the
broker stops sending at its Receive Maximum and consumption pauses instead of buffering. A retried batch
keeps its batch id (derived from its messages), so a commit whose reply was lost is found in the ledger.

A batch that fails for any other reason (a message the checks let through but the warehouse refuses, a
bug) is split in halves and each half landed on its own, recursively, until the failing message is
isolated: it becomes a dead letter naming the error, every other message lands, and the loop goes on.
So one poison message can neither stop the consumer nor, redelivered after a restart, stop it forever.

SIGTERM / SIGINT: stop reading, land what was received, acknowledge it, disconnect, exit 0. If the
warehouse is down at that moment, the received messages stay unacknowledged (the broker redelivers them
to the next run) and the process exits with EXIT_WAREHOUSE_DOWN.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ingestion.stream.landing import BatchOutcome, StreamLander
from ingestion.stream.mqtt import Message, MqttSource

log = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_WAREHOUSE_DOWN = 75  # EX_TEMPFAIL: try again later; nothing was lost
PROGRESS_SECONDS = 30.0


class WarehouseUnavailable(RuntimeError):
    """The warehouse stayed unreachable while we were asked to stop; nothing was acknowledged."""


@dataclass
class BatchPolicy:
    rows: int = 5000  # land once this many detections are waiting...
    seconds: float = 1.0  # ...or once the oldest waiting message is this old
    max_messages: int = 1000  # and never hold more messages than this in one batch
    max_bytes: int = 32 << 20  # nor more payload bytes than this


@dataclass
class ConsumerStats:
    messages: int = 0
    batches: int = 0
    landed: int = 0
    duplicate_rows: int = 0
    rejected: int = 0
    retries: int = 0
    isolated: int = 0  # messages whose batch failed and that were dead-lettered on their own
    max_held: int = 0  # most messages held unacknowledged at once (batch + queue)
    started: float = field(default_factory=time.monotonic)


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the warehouse is unreachable right now", worth a retry on a new connection."""
    import duckdb
    import psycopg

    from ingestion.warehouse.base import WarehouseNotSetUp

    # WarehouseNotSetUp: tables dropped or grants revoked while running; wait for the operator instead of
    # turning every message into a dead letter (at start-up it is raised at once, see run()).
    return (
        psycopg.OperationalError,
        psycopg.InterfaceError,
        duckdb.IOException,
        duckdb.ConnectionException,
        ConnectionError,
        TimeoutError,
        WarehouseNotSetUp,
    )


class StreamConsumer:
    def __init__(
        self,
        source: MqttSource,
        lander: StreamLander,
        policy: BatchPolicy | None = None,
        *,
        stop_when_idle: float | None = None,
        max_backoff: float = 5.0,
        on_commit: Callable[[list[Message], BatchOutcome, float], None] | None = None,
    ):
        """`stop_when_idle`: exit after that many seconds without messages (drain a backlog and stop).
        `on_commit(messages, outcome, commit_time)` is called after each commit (benchmarks, metrics)."""
        self.source = source
        self.lander = lander
        self.policy = policy or BatchPolicy()
        self.stop_when_idle = stop_when_idle
        self.max_backoff = max_backoff
        self.on_commit = on_commit
        self.stats = ConsumerStats()
        self._stop = threading.Event()
        self._batch: list[Message] = []
        self._batch_rows = 0
        self._batch_bytes = 0
        self._batch_started = 0.0
        self._last_progress = time.monotonic()

    def stop(self, *_args) -> None:
        """Ask the loop to finish the current batch and return (signal-handler safe)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> ConsumerStats:
        self.lander.open()  # fail fast on a bad URL or schema before touching the broker
        self.lander.release()
        self.source.start()
        last_message = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                wait = self.policy.seconds - (now - self._batch_started) if self._batch else 0.25
                room = self.policy.max_messages - len(self._batch)
                room_bytes = self.policy.max_bytes - self._batch_bytes
                chunk = self.source.poll(min(max(wait, 0.0), 0.25), room, room_bytes)  # notice a stop
                now = time.monotonic()
                if chunk:
                    last_message = now
                    self._add(chunk)
                if self._batch and (
                    self._batch_rows >= self.policy.rows
                    or len(self._batch) >= self.policy.max_messages
                    or self._batch_bytes >= self.policy.max_bytes
                    or now - self._batch_started >= self.policy.seconds
                ):
                    self._flush()
                elif not self._batch and self.stop_when_idle and now - last_message >= self.stop_when_idle:
                    log.info("no messages for %.0f s: stopping", self.stop_when_idle)
                    break
            # Graceful stop: land and acknowledge what was received up to now (later arrivals stay
            # unacknowledged on the broker for the next run).
            remaining = self.source.queued
            while remaining > 0 and (
                chunk := self.source.poll(0, min(remaining, self.policy.max_messages), self.policy.max_bytes)
            ):
                remaining -= len(chunk)
                self._add(chunk)
                if len(self._batch) >= self.policy.max_messages or self._batch_bytes >= self.policy.max_bytes:
                    self._flush()
            if self._batch:
                self._flush()
        finally:
            self.source.close()
            self.lander.close()
        log.info(
            "stopped: %d messages, %d rows landed, %d duplicate rows skipped, %d messages rejected "
            "(%d isolated from failed batches), %d batches, %d retries",
            self.stats.messages,
            self.stats.landed,
            self.stats.duplicate_rows,
            self.stats.rejected,
            self.stats.isolated,
            self.stats.batches,
            self.stats.retries,
        )
        return self.stats

    def _add(self, chunk: list[Message]) -> None:
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.extend(chunk)
        self._batch_bytes += sum(len(m.payload) for m in chunk)
        # Row count without parsing twice: every detection of either format carries one of these markers.
        self._batch_rows += sum(m.payload.count(b"track_id") + m.payload.count(b"|") // 5 for m in chunk)
        self.stats.max_held = max(self.stats.max_held, len(self._batch) + self.source.queued)

    def _flush(self) -> None:
        batch, self._batch, self._batch_rows, self._batch_bytes = self._batch, [], 0, 0
        outcomes = self._land_isolating(batch)
        committed = time.time()
        self.source.ack(batch)
        self.stats.messages += len(batch)
        self.stats.batches += 1
        for outcome in outcomes:
            self.stats.landed += outcome.landed
            self.stats.duplicate_rows += outcome.duplicate_rows
            self.stats.rejected += outcome.rejected_messages
            log.debug(
                "batch %s: %d messages, %d rows landed, %d duplicates skipped, %d rejected; "
                "%d messages in total",
                outcome.batch_id,
                outcome.messages,
                outcome.landed,
                outcome.duplicate_rows,
                outcome.rejected_messages,
                self.stats.messages,
            )
        if self.on_commit:
            try:
                self.on_commit(batch, outcomes[0] if len(outcomes) == 1 else _combined(outcomes), committed)
            except Exception:  # noqa: BLE001 - a hook (alerts, metrics) must never stop the landing of data
                log.exception("after-commit hook failed; landing continues")
        # After the ack (closing an embedded file takes a moment) and the hook (live alerts evaluate on
        # this connection): the embedded file is free between micro-batches (kept a while under a backlog).
        self.lander.release(backlog=self.source.queued > 0)
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_SECONDS:  # a long-running service: progress in the log
            self._last_progress = now
            s = self.stats
            log.info(
                "%d messages, %d rows landed (%.0f rows/s), %d duplicate rows skipped, %d rejected, "
                "%d retries",
                s.messages,
                s.landed,
                s.landed / max(now - s.started, 1e-9),
                s.duplicate_rows,
                s.rejected,
                s.retries,
            )

    def _land_isolating(self, batch: list[Message]) -> list[BatchOutcome]:
        """Land the batch; if it fails for a reason other than the warehouse being unreachable, land its
        halves separately (recursively) so only the failing message is left out, as a dead letter."""
        try:
            payloads, topics = [m.payload for m in batch], [m.topic for m in batch]
            sizes = [m.size for m in batch]
            return [self._retrying(lambda: self.lander.land(payloads, topics, sizes), batch)]
        except WarehouseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of this batch's own: isolate it, keep going
            # A fresh connection for the halves: whatever state the failure left this one in. Opening it
            # checks the warehouse is set up and granted (WarehouseNotSetUp is retried, see
            # _transient_errors), so a warehouse broken as a whole pauses the stream instead of turning
            # every message into a dead letter.
            self.lander.reconnect()
            error = f"{type(exc).__name__}: {str(exc).strip()}"
            if len(batch) == 1:
                self.stats.isolated += 1
                log.error(
                    "a message could not be landed (%s): sent to raw.rejected_detections",
                    error.splitlines()[0][:300],
                )
                m = batch[0]
                reason = f"landing failed: {error}"
                written = self._retrying(lambda: self.lander.dead_letter(m.payload, reason, m.topic), batch)
                return [BatchOutcome(f"dead-letter:{m.mid}", 1, 0, 0, written, False)]
            log.warning(
                "a batch of %d messages failed (%s): landing its halves separately to isolate the "
                "bad message",
                len(batch),
                error.splitlines()[0][:300],
            )
            half = len(batch) // 2
            return self._land_isolating(batch[:half]) + self._land_isolating(batch[half:])

    def _retrying(self, action: Callable[[], T], batch: list[Message]) -> T:
        """Run `action`, retrying with backoff on a fresh connection while the warehouse is unreachable."""
        backoff = 0.2
        while True:
            try:
                return action()
            except _transient_errors() as exc:
                self.stats.retries += 1
                self.lander.reconnect()
                self.stats.max_held = max(self.stats.max_held, len(batch) + self.source.queued)
                if self._stop.is_set():  # asked to stop: do not wait for the warehouse forever
                    raise WarehouseUnavailable(
                        f"warehouse unavailable while stopping ({exc}); {len(batch) + self.source.queued} "
                        "messages left unacknowledged on the broker, they will be redelivered"
                    ) from exc
                log.warning(
                    "warehouse unavailable (%s); holding %d messages unacknowledged, retry in %.1f s",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    len(batch) + self.source.queued,
                    backoff,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)


def _combined(outcomes: list[BatchOutcome]) -> BatchOutcome:
    """The outcomes of a batch landed in parts (isolating a bad message) as one."""
    return BatchOutcome(
        "+".join(o.batch_id for o in outcomes),
        sum(o.messages for o in outcomes),
        sum(o.landed for o in outcomes),
        sum(o.duplicate_rows for o in outcomes),
        sum(o.rejected_messages for o in outcomes),
        all(o.replayed_batch for o in outcomes),
    )
