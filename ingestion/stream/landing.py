"""Land one micro-batch of stream messages so that replaying any of them changes nothing.

A message can reach us more than once: the broker redelivers everything not yet acknowledged after a
crash (possibly batched with different neighbours, so under a different batch id), and producers resend.
The ledger alone (`append_batch` skips a batch id already committed) covers only a batch retried as is,
so every batch is also made idempotent message by message, before anything is committed:

- rows identical to rows already landed (same key and values) are skipped: a replay lands nothing twice;
- a row whose key (camera_id, ts, track_id) is already landed with different values, or that
  conflicts with an earlier message of the same batch, rejects its whole message as a conflict;
- dead letters already written for the same payload by this source are not written again.

The landed rows are looked up only when needed: the batch is landed with `if_landed="raise"`, and the
landing layer's own duplicate check (free on PostgreSQL, where the unique key finds them during the COPY)
rolls it back whole if any row's key is already landed; then the rows are judged as above and the batch
landed again. A first delivery, the common case, pays no lookup.

So after any sequence of crashes and redeliveries, raw.detections holds each distinct valid row once and
raw.rejected_detections each distinct bad message once. Writes are two transactions (rows + ledger +
watermarks, then dead letters); a crash between them is repaired by the same checks on redelivery. Dead
letters come second so that a batch that fails to land leaves none behind: the consumer then lands the
batch in halves, whose verdicts (a conflict within the batch) may differ.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import polars as pl

from ingestion.schema import DETECTION_KEY, DETECTION_SCHEMA
from ingestion.site import Site
from ingestion.stream.payloads import (
    MAX_REASON_CHARS,
    MESSAGE_COLUMN,
    DeepStreamDefaults,
    Rejected,
    parse_messages,
    payload_text,
    storable_text,
    topic_camera,
)
from ingestion.warehouse import LandingResult, Warehouse, connect
from ingestion.warehouse.base import RowsAlreadyLanded
from ingestion.warehouse.duckdb import HANDOVER_FRESH_SECONDS, handover_requested

log = logging.getLogger(__name__)

STREAM_SOURCE = "stream"
_VALUE_COLUMNS = [c for c in DETECTION_SCHEMA.names() if c != "batch_id"]


@dataclass(frozen=True)
class BatchOutcome:
    batch_id: str
    messages: int
    landed: int  # rows committed by this batch
    duplicate_rows: int  # rows already landed identically (redelivered or resent): skipped
    rejected_messages: int  # dead letters written by this batch (excluding ones already written before)
    replayed_batch: bool  # the ledger already had this batch id


def batch_id_for(payloads: Sequence[bytes], source: str = STREAM_SOURCE) -> str:
    """Deterministic from the messages' content: retrying the same batch finds it in the ledger."""
    digest = hashlib.sha256()
    for payload in payloads:
        digest.update(hashlib.sha256(payload).digest())
    return f"{source}:{digest.hexdigest()[:32]}"


class StreamLander:
    """Parses and lands micro-batches into one warehouse connection (reopened by `reconnect`).

    On an embedded DuckDB file the connection is let go of between micro-batches (`release`): DuckDB lets
    one process hold a file for writing, and Dagster, `sightline transform` and checks must be able to open
    the warehouse while the stream runs. Closing and reopening costs more than landing a batch (the close
    checkpoints, the reopened connection starts cold), so while more messages are already waiting (a
    backlog) the file is kept for up to `hold_seconds` since it was opened, unless another process asks for
    it: our processes waiting for the lock say so (`duckdb.handover_marker`), and the stream then lets go
    at the next batch boundary and waits for the waiter to get in before opening again. With nothing
    waiting, the file is let go of after every batch. Opening again retries while another process holds
    the lock."""

    def __init__(
        self,
        url: str,
        site: Site,
        *,
        source: str = STREAM_SOURCE,
        allowed_lateness: timedelta | None = timedelta(seconds=60),
        deepstream_defaults: DeepStreamDefaults | None = None,
        hold_seconds: float = 2.0,
    ):
        self.url, self.site, self.source = url, site, source
        self.allowed_lateness = allowed_lateness
        self.deepstream_defaults = deepstream_defaults or DeepStreamDefaults()
        self.wh: Warehouse | None = None
        self.release_between_batches = url.startswith("duckdb:///") and url != "duckdb:///:memory:"
        self.hold_seconds = hold_seconds
        self._opened_at = 0.0
        self._handed_over = False  # let go because another process asked: let it in before reopening

    def open(self) -> Warehouse:
        if self.wh is None:
            if self._handed_over:
                self._handed_over = False
                path = self.url[len("duckdb:///") :]
                deadline = time.monotonic() + HANDOVER_FRESH_SECONDS
                while handover_requested(path) and time.monotonic() < deadline:
                    time.sleep(0.02)
            wh = connect(self.url, self.site)
            try:
                wh.require_setup()  # no DDL here: `sightline db setup` ran as the owner (DuckDB: runs it)
            except BaseException:
                wh.close()
                raise
            self.wh = wh
            self._opened_at = time.monotonic()
        return self.wh

    def reconnect(self) -> None:
        """Drop the connection (after an error); the next `land` opens a fresh one."""
        if self.wh is not None:
            try:
                self.wh.close()
            except Exception:  # noqa: BLE001 - the connection is already broken; closing is best effort
                pass
            self.wh = None

    def close(self) -> None:
        self.reconnect()

    def release(self, *, backlog: bool = False) -> None:
        """Between micro-batches: let go of an embedded file so other processes can open it. `backlog`:
        more messages are already waiting; the file is then kept (see the class doc)."""
        if not self.release_between_batches or self.wh is None:
            return
        path = self.url[len("duckdb:///") :]
        if handover_requested(path):
            self._handed_over = True
        elif backlog and time.monotonic() - self._opened_at < self.hold_seconds:
            return
        self.reconnect()

    def dead_letter(self, payload: bytes, reason: str, topic: str | None = None) -> int:
        """A message that could not be landed (its batch failed for a reason of its own): one dead letter."""
        camera = topic_camera(topic) if topic else None
        camera = camera if camera in self.site.camera_ids else None
        rejected = Rejected(0, camera, payload_text(payload), storable_text(reason[:MAX_REASON_CHARS]))
        return self._write_dead_letters(self.open(), [rejected])

    def land(
        self,
        payloads: Sequence[bytes],
        topics: Sequence[str] | None = None,
        sizes: Sequence[int] | None = None,
    ) -> BatchOutcome:
        """Parse and land one micro-batch. `topics`: the topic of each message (its camera must be the
        message's); `sizes`: each payload's size on receipt where the source kept only a stub of it."""
        parsed = parse_messages(payloads, self.site, self.deepstream_defaults, topics=topics, sizes=sizes)
        wh = self.open()  # after parsing: an embedded file is held no longer than needed
        rows = parsed.detections
        rejected = {r.message: r for r in parsed.rejected}

        # Identical rows within the batch (a message resent next to itself) are one row.
        rows = rows.unique(subset=_VALUE_COLUMNS, keep="first", maintain_order=True)
        rows = self._reject_conflicts_within(rows, rejected)
        batch_id = batch_id_for(payloads, self.source)
        # Optimistic: a batch holds no landed rows unless it is a redelivery or a replay, and the landing
        # layer's own duplicate check finds them at no extra cost. Only then look at what is landed.
        try:
            result, duplicates = self._append(wh, batch_id, rows, rejected, "raise"), 0
        except RowsAlreadyLanded:
            rows, duplicates = self._skip_landed(wh, rows, rejected)
            result = self._append(wh, batch_id, rows, rejected, "reject")
        for i, r in rejected.items():  # conflicts found here carry no payload yet
            if not r.payload:
                rejected[i] = replace(r, payload=payload_text(payloads[i]))
        written = self._write_dead_letters(wh, [rejected[i] for i in sorted(rejected)])
        if result.rejected:  # our checks mirror the landing layer's; a difference is a bug worth seeing
            log.error(
                "batch %s: the landing layer rejected %d rows that passed the stream checks",
                batch_id,
                result.rejected,
            )
        return BatchOutcome(batch_id, len(payloads), result.landed, duplicates, written, result.skipped)

    def _append(
        self, wh: Warehouse, batch_id: str, rows: pl.DataFrame, rejected: dict[int, Rejected], if_landed: str
    ) -> LandingResult:
        """The rows of the messages not rejected, landed under the batch's id."""
        rows = rows.filter(~pl.col(MESSAGE_COLUMN).is_in(list(rejected)))
        return wh.append_batch(
            batch_id,
            rows.drop(MESSAGE_COLUMN),
            source=self.source,
            allowed_lateness=self.allowed_lateness,
            if_landed=if_landed,
        )

    # --- idempotence checks ----------------------------------------------------------------------

    @staticmethod
    def _reject_conflicts_within(rows: pl.DataFrame, rejected: dict[int, Rejected]) -> pl.DataFrame:
        """Two different rows for one key in the batch: the later message is the conflicting one."""
        key = list(DETECTION_KEY)
        later = rows.filter(pl.col(MESSAGE_COLUMN) != pl.col(MESSAGE_COLUMN).first().over(key))
        if later.height == 0:
            return rows
        first = rows.group_by(key).agg(pl.col(MESSAGE_COLUMN).first().alias("_first"))
        clashes = later.join(first, on=key).group_by(MESSAGE_COLUMN, maintain_order=True).first()
        for msg, cam, ts, track, other in clashes.select(
            MESSAGE_COLUMN, "camera_id", "ts", "track_id", "_first"
        ).iter_rows():
            rejected.setdefault(
                msg,
                _conflict(
                    msg,
                    cam,
                    f"track_id {track} at {ts.isoformat()} differs from message #{other} of the same batch",
                ),
            )
        return rows

    def _skip_landed(
        self,
        wh: Warehouse,
        rows: pl.DataFrame,
        rejected: dict[int, Rejected],
    ) -> tuple[pl.DataFrame, int]:
        """Drop rows already landed identically; reject messages whose rows clash with landed ones."""
        stored = self._landed_rows(wh, rows)
        if stored.height == 0:
            return rows, 0
        key = list(DETECTION_KEY)
        joined = rows.join(stored, on=key, how="left", suffix="_stored")
        found = pl.col("frame_idx_stored").is_not_null()
        same = pl.all_horizontal(
            [pl.col(c).eq_missing(pl.col(f"{c}_stored")) for c in _VALUE_COLUMNS if c not in key]
        )
        joined = joined.with_columns(_found=found, _same=found & same)
        clashes = (
            joined.filter(pl.col("_found") & ~pl.col("_same"))
            .group_by(MESSAGE_COLUMN, maintain_order=True)
            .first()
        )
        for msg, cam, ts, track in clashes.select(MESSAGE_COLUMN, "camera_id", "ts", "track_id").iter_rows():
            detail = f"track_id {track} at {ts.isoformat()} is already landed with different values"
            rejected.setdefault(msg, _conflict(msg, cam, detail))
        keep = joined.filter(~pl.col("_same")).select(rows.columns)
        return keep, joined["_same"].sum()

    def _landed_rows(self, wh: Warehouse, rows: pl.DataFrame) -> pl.DataFrame:
        """The stored rows with the batch's keys (one query; the ts bounds prune partitions/row groups)."""
        schema = {c: DETECTION_SCHEMA[c] for c in _VALUE_COLUMNS}
        if rows.height == 0:
            return pl.DataFrame(schema=schema)
        cols = ", ".join(f"d.{c}" for c in _VALUE_COLUMNS)
        # The keys travel as three integer arrays, each one text parameter the server parses (an array of
        # Python values is converted element by element on the client), the cameras as positions in a
        # short list of the batch's cameras.
        pg = wh.backend == "postgres"
        cameras = rows["camera_id"].unique().sort()
        positions = rows["camera_id"].replace_strict(
            cameras, pl.int_range(1, cameras.len() + 1, eager=True), return_dtype=pl.Int64
        )
        params = [
            cameras.to_list(),
            _int_array(positions, pg),
            _int_array(rows["ts"].dt.epoch("us"), pg),
            _int_array(rows["track_id"], pg),
            rows["ts"].min(),
            rows["ts"].max(),
        ]
        if pg:
            sql = (
                f"SELECT {cols} FROM raw.detections d JOIN (SELECT (%s::text[])[u.c] AS camera_id, "
                "u.ts_us, u.track_id FROM unnest(%s::int[], %s::bigint[], %s::bigint[]) "
                "AS u(c, ts_us, track_id)) k "
                "ON d.camera_id = k.camera_id AND d.track_id = k.track_id "
                "AND d.ts = 'epoch'::timestamptz + k.ts_us * interval '1 microsecond' "
                "WHERE d.ts BETWEEN %s AND %s"
            )
        else:
            sql = (
                f"SELECT {cols} FROM raw.detections d JOIN (SELECT (?::VARCHAR[])[u.c] AS camera_id, "
                "u.ts_us, u.track_id FROM (SELECT unnest(?::INTEGER[]) AS c, "
                "unnest(?::BIGINT[]) AS ts_us, unnest(?::BIGINT[]) AS track_id) u) k "
                "ON d.camera_id = k.camera_id AND d.track_id = k.track_id AND epoch_us(d.ts) = k.ts_us "
                "WHERE d.ts BETWEEN ? AND ?"
            )
        found = wh.query(sql, params)
        if found.height == 0:
            return pl.DataFrame(schema=schema)
        found = found.with_columns(pl.col("ts").dt.convert_time_zone("UTC")).cast(schema)
        return found.unique(subset=list(DETECTION_KEY))  # a key asked for twice comes back twice

    def _write_dead_letters(self, wh: Warehouse, rejected: list[Rejected]) -> int:
        """Write each distinct payload's dead letter once, even across redeliveries."""
        if not rejected:
            return 0
        fresh: dict[str, Rejected] = {}
        for r in rejected:
            fresh.setdefault(r.payload, r)
        p = "%s" if wh.backend == "postgres" else "?"
        any_of = f"= ANY({p}::text[])" if wh.backend == "postgres" else f"IN (SELECT unnest({p}::VARCHAR[]))"
        known = wh.query(
            f"SELECT DISTINCT payload FROM raw.rejected_detections WHERE source = {p} AND payload {any_of}",
            [self.source, list(fresh)],
        )
        for payload in known["payload"].to_list() if known.height else []:
            fresh.pop(payload, None)
        by_camera: dict[str | None, list[Rejected]] = {}
        for r in fresh.values():
            by_camera.setdefault(r.camera_id, []).append(r)
        for camera_id, items in by_camera.items():
            wh.reject(self.source, camera_id, [r.payload for r in items], [r.reason for r in items])
        if fresh:
            log.warning("%d malformed messages sent to raw.rejected_detections", len(fresh))
        return len(fresh)


def _int_array(values: pl.Series, postgres: bool) -> str:
    """An integer column as an array literal (PostgreSQL {1,2}, DuckDB [1,2]), built in polars."""
    body = values.cast(pl.String).str.join(",").item()
    return f"{{{body}}}" if postgres else f"[{body}]"


def _conflict(message: int, camera_id: str, detail: str) -> Rejected:
    return Rejected(message, camera_id, "", f"conflicting detection: {detail}")
